"""Observations of a user's state: what the ledger records and what `quote` reads (JSONL)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Iterator, Mapping

from shared.billing.errors import InputError

MAX_OBSERVED_TEXT = 1024  # Entra allows 256 for a display name and 113 for a UPN
OBSERVATION_FIELDS = ("at", "user_id", "user_principal_name", "display_name", "user_type",
                      "account_enabled", "skus", "deleted")


@dataclass(frozen=True, slots=True)
class Observation:
    """A user's full state from `at` until that user's next observation."""
    at: datetime  # timezone-aware, normalised to UTC
    user_id: str
    user_principal_name: str = ""
    display_name: str = ""
    user_type: str = "Member"
    account_enabled: bool = True
    skus: tuple[str, ...] = ()
    deleted: bool = False

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(f"observation of {self.user_id}: time {self.at} has no offset")
        skus = tuple(sorted(set(self.skus)))
        if skus != self.skus:
            object.__setattr__(self, "skus", skus)

    @property
    def is_guest(self) -> bool:
        return self.user_type.lower() == "guest"

    def same_state(self, other: "Observation | None") -> bool:
        """True when nothing billing-relevant differs (the time does not count)."""
        return other is not None and self.state_key() == other.state_key()

    def state_key(self) -> tuple:
        return (self.user_id, self.user_principal_name, self.display_name, self.user_type,
                self.account_enabled, self.skus, self.deleted)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": format_instant(self.at), "user_id": self.user_id,
            "user_principal_name": self.user_principal_name, "display_name": self.display_name,
            "user_type": self.user_type, "account_enabled": self.account_enabled,
            "skus": list(self.skus), "deleted": self.deleted,
        }


def format_instant(at: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the microsecond only when there is one."""
    text = at.astimezone(timezone.utc).isoformat()
    return text.replace("+00:00", "Z")


def parse_instant(value: object, field: str = "at") -> datetime:
    if not isinstance(value, str) or not value:
        raise InputError(f"must be an ISO 8601 time with an offset, got {value!r}", field=field)
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"not an ISO 8601 time: {value[:60]!r}", field=field) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InputError(f"time has no UTC offset: {value!r} (add Z or +hh:mm)", field=field)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        raise InputError(f"time out of range: {value!r}", field=field) from None


def _optional(data: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    value = data.get(name, default)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InputError(f"must be a {kind.__name__}, got {value!r}", field=name)
    return value


def parse_observation(data: object, previous: Observation | None = None) -> Observation:
    """Reads one observation. Fields other than `at` and `user_id` may be left out; they then
    keep the value of the user's previous observation (a deletion notice often names only the id)."""
    if not isinstance(data, Mapping):
        raise InputError("an observation must be a JSON object")
    for name in data:
        if name not in OBSERVATION_FIELDS:
            raise InputError(f"unknown observation field (known: {', '.join(OBSERVATION_FIELDS)})", field=name)
    if "at" not in data:
        raise InputError("is required", field="at")
    user_id = data.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise InputError("is required and must be a non-empty string", field="user_id")
    base = previous if previous is not None and previous.user_id == user_id else Observation(
        at=datetime.min.replace(tzinfo=timezone.utc), user_id=user_id)
    skus = _optional(data, "skus", list, list(base.skus))
    if not all(isinstance(sku, str) and sku for sku in skus):
        raise InputError("must be a list of SKU names or ids", field="skus")
    upn = _optional(data, "user_principal_name", str, base.user_principal_name)
    for name in ("user_id", "user_principal_name", "display_name", "user_type"):
        if isinstance(data.get(name), str) and len(data[name]) > MAX_OBSERVED_TEXT:
            raise InputError(f"is too long (at most {MAX_OBSERVED_TEXT} characters)", field=name)
    return Observation(
        at=parse_instant(data["at"]),
        user_id=user_id,
        user_principal_name=upn,
        display_name=_optional(data, "display_name", str, base.display_name) or upn or user_id,
        user_type=_optional(data, "user_type", str, base.user_type),
        account_enabled=_optional(data, "account_enabled", bool, base.account_enabled),
        skus=tuple(sorted(set(skus))),
        deleted=_optional(data, "deleted", bool, base.deleted),
    )


def parse_observations_jsonl(lines: Iterable[str], source: str = "observations") -> list[Observation]:
    """Reads JSONL; a bad line raises an InputError naming the source, the line and the field."""
    last_by_user: dict[str, Observation] = {}
    raw: list[tuple[int, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw.append((number, json.loads(line, parse_float=Decimal)))
        except json.JSONDecodeError as error:
            raise InputError(f"not valid JSON ({error.msg} at column {error.colno})",
                             source=source, line=number) from None
        except (RecursionError, ValueError) as error:  # nested too deeply; an integer too long
            reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:80]
            raise InputError(f"not valid JSON ({reason})", source=source, line=number) from None
    # Omitted fields carry forward in time order, so sort (stably) by instant before reading them.
    parsed_at: list[tuple[datetime, int, Any]] = []
    for number, data in raw:
        try:
            if not isinstance(data, Mapping):
                raise InputError("an observation must be a JSON object")
            if "at" not in data:
                raise InputError("is required", field="at")
            parsed_at.append((parse_instant(data["at"]), number, data))
        except InputError as error:
            raise error.located(source, number) from None
    parsed_at.sort(key=lambda item: item[0])
    result: list[tuple[int, Observation]] = []
    for _, number, data in parsed_at:
        try:
            observation = parse_observation(data, last_by_user.get(data.get("user_id")))
        except InputError as error:
            raise error.located(source, number) from None
        last_by_user[observation.user_id] = observation
        result.append((number, observation))
    result.sort(key=lambda item: item[0])  # back to file order: ties keep it
    return [observation for _, observation in result]


def iter_jsonl(observations: Iterable[Observation]) -> Iterator[str]:
    for observation in observations:
        yield json.dumps(observation.to_dict(), ensure_ascii=False)
