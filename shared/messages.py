"""The queues between Prorata's functions and the shape of their messages.

Triggers and services both import these; the composition root (shared/app.py) only sends them.
Messages are JSON objects, base64-encoded on the queue (host.json: `messageEncoding`).

- `tenant-sync`: one `SyncRequest`, or several stored together by the webhook as
  `{"requests": [...]}` (group commit, shared/services/notifications.py).
- `tenant-close`: one `CloseRequest`, a client's month to close.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

SYNC_QUEUE = "tenant-sync"
CLOSE_QUEUE = "tenant-close"

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]
JsonObject = dict[str, JsonValue]


class BadMessage(ValueError):
    """A queue message that is not what its queue carries (it goes to the poison queue)."""


@dataclass(frozen=True)
class SyncRequest:
    """A delta of one tenant is wanted: a notification (`received_at`, epoch seconds, lets a
    delta that began later cover it), a lifecycle event of a subscription, the daily timer..."""
    tenant_id: str
    reason: str = ""
    received_at: float | None = None
    subscription_id: str | None = None
    lifecycle_events: tuple[str, ...] = field(default_factory=tuple)
    user_ids: tuple[str, ...] = field(default_factory=tuple)  # notified users, checked again if a delta misses them
    recheck: int = 0  # how many re-checks came before this one (shared/services/sync.py)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> "SyncRequest":
        tenant_id = data.get("tenant_id")
        if not isinstance(tenant_id, str) or not tenant_id:
            raise BadMessage(f"sync message without tenant_id: {dict(data)!r}")
        received = data.get("received_at")
        subscription_id = data.get("subscription_id")
        events = data.get("lifecycle_events") or []
        users = data.get("user_ids") or []
        recheck = data.get("recheck")
        return cls(tenant_id=tenant_id, reason=str(data.get("reason") or ""),
                   received_at=float(received) if isinstance(received, (int, float)) and not isinstance(received, bool)
                   else None,
                   subscription_id=subscription_id if isinstance(subscription_id, str) and subscription_id else None,
                   lifecycle_events=tuple(str(e) for e in events) if isinstance(events, list) else (),
                   user_ids=tuple(str(u) for u in users) if isinstance(users, list) else (),
                   recheck=recheck if isinstance(recheck, int) and not isinstance(recheck, bool) and recheck > 0 else 0)

    def to_json(self) -> JsonObject:
        data: JsonObject = {"tenant_id": self.tenant_id, "reason": self.reason}
        if self.received_at is not None:
            data["received_at"] = self.received_at
        if self.subscription_id:
            data["subscription_id"] = self.subscription_id
        if self.lifecycle_events:
            data["lifecycle_events"] = list(self.lifecycle_events)
        if self.user_ids:
            data["user_ids"] = list(self.user_ids)
        if self.recheck:
            data["recheck"] = self.recheck
        return data


def sync_requests(message: Mapping[str, object]) -> list[SyncRequest]:
    """The requests of one `tenant-sync` message (one, or a group-commit batch)."""
    batch = message.get("requests")
    if isinstance(batch, list):
        items = batch
    else:
        items = [message]
    requests = []
    for item in items:
        if not isinstance(item, Mapping):
            raise BadMessage(f"sync message item is not an object: {item!r}")
        requests.append(SyncRequest.from_json(item))
    return requests


@dataclass(frozen=True)
class CloseRequest:
    """Close one client's month (`period` YYYY-MM), counted on run `run_id` if there is one;
    `member_etag`: the ETag of the client's member row as the run was created (its outcome is
    then written without reading the run first)."""
    tenant_id: str
    period: str
    run_id: str | None = None
    member_etag: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> "CloseRequest":
        tenant_id, period, run_id = data.get("tenant_id"), data.get("period"), data.get("run_id")
        etag = data.get("member_etag")
        if not isinstance(tenant_id, str) or not tenant_id or not isinstance(period, str):
            raise BadMessage(f"close message without tenant_id and period: {dict(data)!r}")
        return cls(tenant_id, period, run_id if isinstance(run_id, str) and run_id else None,
                   etag if isinstance(etag, str) and etag else None)

    def to_json(self) -> JsonObject:
        data: JsonObject = {"tenant_id": self.tenant_id, "period": self.period, "run_id": self.run_id or ""}
        if self.member_etag:
            data["member_etag"] = self.member_etag
        return data
