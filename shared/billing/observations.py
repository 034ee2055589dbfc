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
        if len(self.skus) > 1 or type(self.skus) is not tuple:  # none or one: already a sorted tuple
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


def _optional(data: Mapping[str, Any], name: str, kind: type) -> Any:
    """The field's value, or None when left out or null (the previous value then carries)."""
    value = data.get(name)
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        raise InputError(f"must be a {kind.__name__}, got {value!r}", field=name)
    return value


_FIELD_SET = frozenset(OBSERVATION_FIELDS)
_Fields = tuple  # (user_id, upn, display_name, user_type, account_enabled, skus, deleted); None = left out


def _read_fields(data: Mapping[str, Any], sku_sets: dict[tuple, tuple[str, ...]]) -> _Fields:
    """Checks an observation's fields other than `at`; gives the ones it sets. `sku_sets` holds the
    sorted, de-duplicated tuple of each SKU list seen: one check and one tuple per distinct list."""
    if not data.keys() <= _FIELD_SET:
        for name in data:
            if name not in _FIELD_SET:
                raise InputError(f"unknown observation field (known: {', '.join(OBSERVATION_FIELDS)})", field=name)
    get = data.get
    user_id = get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise InputError("is required and must be a non-empty string", field="user_id")
    skus = get("skus")
    if skus is not None:
        if type(skus) is not list:
            skus = _optional(data, "skus", list)
        key = tuple(skus)
        canonical = sku_sets.get(key)
        if canonical is None:
            if not all(isinstance(sku, str) and sku for sku in skus):
                raise InputError("must be a list of SKU names or ids", field="skus")
            canonical = sku_sets.setdefault(key, tuple(sorted(set(skus))))
        skus = canonical
    upn, display, user_type = get("user_principal_name"), get("display_name"), get("user_type")
    enabled, deleted = get("account_enabled"), get("deleted")
    if not (type(upn) is str and type(display) is str and type(user_type) is str and type(enabled) is bool
            and type(deleted) is bool):  # some left out, null or of the wrong type: check each
        upn, display, user_type = (_optional(data, field, str) for field in OBSERVATION_FIELDS[2:5])
        enabled, deleted = _optional(data, "account_enabled", bool), _optional(data, "deleted", bool)
    return (user_id, upn, display, user_type, enabled, skus, deleted)


_new = object.__new__
_SETTERS = tuple(Observation.__dict__[name].__set__ for name in OBSERVATION_FIELDS)
_set_at, _set_id, _set_upn, _set_name, _set_type, _set_enabled, _set_skus, _set_deleted = _SETTERS


def _observation(at: datetime, fields: _Fields, base: Observation | None) -> Observation:
    """The observation a line's fields make at `at`, fields left out taken from `base` (the user's
    previous observation in time) or the defaults. Checked fields only: built without __init__."""
    user_id, upn, name, user_type, enabled, skus, deleted = fields
    if base is None:
        upn = "" if upn is None else upn
        user_type = "Member" if user_type is None else user_type
        enabled = True if enabled is None else enabled
        skus = () if skus is None else skus
        deleted = False if deleted is None else deleted
    else:
        user_id = base.user_id  # equal values share one string: a user's history costs little memory
        upn = base.user_principal_name if upn is None or upn == base.user_principal_name else upn
        if name is None or name == base.display_name:
            name = base.display_name
        if user_type is None or user_type == base.user_type:
            user_type = base.user_type
        enabled = base.account_enabled if enabled is None else enabled
        skus = base.skus if skus is None else skus
        deleted = base.deleted if deleted is None else deleted
    name = name or upn or user_id
    observation = _new(Observation)
    _set_at(observation, at)
    _set_id(observation, user_id)
    _set_upn(observation, upn)
    _set_name(observation, name)
    _set_type(observation, user_type)
    _set_enabled(observation, enabled)
    _set_skus(observation, skus)
    _set_deleted(observation, deleted)
    return observation


def parse_observation(data: object, previous: Observation | None = None) -> Observation:
    """Reads one observation. Fields other than `at` and `user_id` may be left out; they then
    keep the value of the user's previous observation (a deletion notice often names only the id)."""
    if not isinstance(data, Mapping):
        raise InputError("an observation must be a JSON object")
    if "at" not in data:
        raise InputError("is required", field="at")
    fields = _read_fields(data, {})
    base = previous if previous is not None and previous.user_id == fields[0] else None
    return _observation(parse_instant(data["at"]), fields, base)


_DECODER = json.JSONDecoder(parse_float=Decimal)
_scan = _DECODER.scan_once  # type: ignore[attr-defined]  # the C scanner of one decoder, reused for every line


def _decode(line: str) -> Any:
    """One JSON line; json.loads itself (and its error) for anything unusual."""
    try:
        data, end = _scan(line, 0)
    except (StopIteration, ValueError, RecursionError):
        data, end = None, -1
    if end == len(line) or (end > 0 and not line[end:].strip(" \t\n\r")):
        return data
    return json.loads(line, parse_float=Decimal)


def parse_observations_jsonl(lines: Iterable[str], source: str = "observations") -> list[Observation]:
    """Reads JSONL; a bad line raises an InputError naming the source, the line and the field.

    Omitted fields carry forward in time order (a stable sort by instant). One pass reads every
    line; a user whose lines are in time order in the file (the usual case) carries forward in
    file order, which is the same; the lines of any other user are read again in time order.
    Which error is reported when there are several: the first invalid JSON line, else the first
    line without a readable `at`, else the earliest (in time) line with a bad field."""
    result: list[Observation] = []
    latest: dict[str, Observation] = {}  # each user's observation read last
    unordered: set[str] = set()  # users with a line earlier in time than one above it
    sku_sets: dict[tuple, tuple[str, ...]] = {}
    partial: dict[int, tuple[datetime, _Fields]] = {}  # index -> fields, of lines that leave some out
    shape_error: InputError | None = None
    field_error: tuple[datetime, int, InputError] | None = None
    for number, line in enumerate(lines, start=1):
        if line[:1] != "{" and not line.strip():
            continue
        try:
            data = _decode(line)
        except json.JSONDecodeError as error:
            raise InputError(f"not valid JSON ({error.msg} at column {error.colno})",
                             source=source, line=number) from None
        except (RecursionError, ValueError) as error:  # nested too deeply; an integer too long
            reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:80]
            raise InputError(f"not valid JSON ({reason})", source=source, line=number) from None
        if shape_error is not None:
            continue  # only an invalid JSON line can still come before it
        try:
            if type(data) is not dict and not isinstance(data, Mapping):
                raise InputError("an observation must be a JSON object")
            if "at" not in data:
                raise InputError("is required", field="at")
            at = parse_instant(data["at"])
        except InputError as error:
            shape_error = error.located(source, number)
            continue
        try:
            fields = _read_fields(data, sku_sets)
        except InputError as error:
            if field_error is None or (at, number) < field_error[:2]:
                field_error = (at, number, error.located(source, number))
            continue
        if field_error is not None:
            continue
        user_id = fields[0]
        previous = latest.get(user_id)
        if previous is not None and at < previous.at:
            unordered.add(user_id)
        if None in fields:
            partial[len(result)] = (at, fields)
        observation = _observation(at, fields, previous)
        latest[user_id] = observation
        result.append(observation)
    if shape_error is not None:
        raise shape_error
    if field_error is not None:
        raise field_error[2]
    if unordered:
        _carry_in_time_order(result, partial, unordered)
    return result


def _carry_in_time_order(result: list[Observation], partial: dict[int, tuple[datetime, _Fields]],
                         unordered: set[str]) -> None:
    """Reads again, in time order (ties in file order), the lines of users not in time order."""
    indexes = [index for index, observation in enumerate(result) if observation.user_id in unordered]
    indexes.sort(key=lambda index: result[index].at)  # stable: equal instants keep file order
    previous: dict[str, Observation] = {}
    for index in indexes:
        observation = result[index]
        if index in partial:
            at, fields = partial[index]
            observation = result[index] = _observation(at, fields, previous.get(observation.user_id))
        previous[observation.user_id] = observation


def iter_jsonl(observations: Iterable[Observation]) -> Iterator[str]:
    for observation in observations:
        yield json.dumps(observation.to_dict(), ensure_ascii=False)
