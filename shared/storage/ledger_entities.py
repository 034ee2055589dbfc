"""How observations, records and snapshots are laid out in the ledger table.

One partition per client tenant holds:
- `user|<id>`: the user's current state (its ETag guards every change of that user);
- `rec|<effective time>|<id>|<seq>`: one append-only record per real change;
- `snap|<YYYY-MM>|<chunk>`: every user's state at 00:00 UTC on the 1st (the opening state of a
  month), so that reading a month costs that month's records and the tenant's users, not history;
- `meta|snapshots`: touched by every batch of records, so that a snapshot built meanwhile from
  an older history is not stored (its store is guarded by this row's ETag).
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from datetime import datetime, timezone
from typing import Any

from shared.billing import Observation

USER, RECORD, SNAPSHOT = "user|", "rec|", "snap|"
_SAFE_KEY = re.compile(r"^[A-Za-z0-9._@:+=-]+$")


def key_part(user_id: str) -> str:
    """A user id usable inside a RowKey (Table keys forbid / \\ # ? and control characters)."""
    return user_id if _SAFE_KEY.match(user_id) else "~" + user_id.encode("utf-8").hex()


def stamp(at: datetime) -> str:
    """A fixed-width UTC time that sorts as text in time order."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def unstamp(text: str) -> datetime:
    if len(text) != 27 or text[-1] != "Z":  # stamp()'s fixed width; fromisoformat is 20x strptime's speed
        raise ValueError(f"not a ledger time stamp: {text!r}")
    return datetime.fromisoformat(text)  # "Z" reads as UTC (Python 3.11), a tenth of a replace(tzinfo=)'s cost


def month_key(at: datetime) -> str:
    utc = at.astimezone(timezone.utc)
    return f"{utc.year:04d}-{utc.month:02d}"


def month_start(key: str) -> datetime:
    year, month = key.split("-")
    return datetime(int(year), int(month), 1, tzinfo=timezone.utc)


def next_month(key: str) -> str:
    year, month = int(key[:4]), int(key[5:7])
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def record_key(observation: Observation, seq: int) -> str:
    return f"{RECORD}{stamp(observation.at)}|{key_part(observation.user_id)}|{seq:03d}"


def state_fields(observation: Observation) -> dict[str, Any]:
    return {"user_id": observation.user_id, "at": stamp(observation.at),
            "upn": observation.user_principal_name, "name": observation.display_name,
            "type": observation.user_type, "enabled": observation.account_enabled,
            "skus": json.dumps(list(observation.skus)), "deleted": observation.deleted}


def from_entity(entity: dict[str, Any]) -> Observation:
    return Observation(at=unstamp(entity["at"]), user_id=entity["user_id"],
                       user_principal_name=entity.get("upn", ""), display_name=entity.get("name", ""),
                       user_type=entity.get("type", "Member"), account_enabled=entity.get("enabled", True),
                       skus=_skus(entity.get("skus") or "[]"), deleted=entity.get("deleted", False))


@lru_cache(maxsize=1024)
def _skus(text: str) -> tuple[str, ...]:
    """A stored SKU list (a client has a handful of distinct ones: each is parsed once)."""
    return tuple(json.loads(text))


def to_row(observation: Observation) -> list[Any]:
    """A compact form for snapshots."""
    return [observation.user_id, stamp(observation.at), observation.user_principal_name,
            observation.display_name, observation.user_type, observation.account_enabled,
            list(observation.skus), observation.deleted]


def row_deleted(row: list[Any]) -> bool:
    """Whether a snapshot row (to_row) is a deleted user's."""
    return bool(row[7])


def from_row(row: list[Any]) -> Observation:
    user_id, at, upn, name, kind, enabled, skus, deleted = row
    return Observation(at=unstamp(at), user_id=user_id, user_principal_name=upn, display_name=name,
                       user_type=kind, account_enabled=enabled, skus=tuple(skus), deleted=deleted)
