"""The simulator's clock and Graph's date-time text formats."""
from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta, timezone

UTC = timezone.utc


class SimClock:
    """Real UTC now by default. `set_now` pins the clock (frozen unless `freeze=False`, in which
    case it keeps running from the new instant); `advance` moves it either way."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frozen_at: datetime | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return datetime.now(UTC) + self._offset

    def set_now(self, when: datetime, *, freeze: bool = True) -> None:
        when = as_utc(when)
        with self._lock:
            if freeze:
                self._frozen_at = when
                self._offset = timedelta(0)
            else:
                self._frozen_at = None
                self._offset = when - datetime.now(UTC)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += delta
                return self._frozen_at
            self._offset += delta
            return datetime.now(UTC) + self._offset

    def reset(self) -> None:
        with self._lock:
            self._frozen_at = None
            self._offset = timedelta(0)


def as_utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("the simulator wants timezone-aware datetimes")
    return when.astimezone(UTC)


_ISO = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$", re.I
)


def parse_graph_datetime(text: str) -> datetime:
    """Parses what clients send as Edm.DateTimeOffset: `2026-11-20T10:00:00Z`,
    `...00.1234567Z`, `...+00:00`. A value without an offset is taken as UTC, as Graph does.
    Raises ValueError on anything else."""
    if not isinstance(text, str):
        raise ValueError(f"not a date-time: {text!r}")
    m = _ISO.match(text.strip())
    if not m:
        raise ValueError(f"not a date-time: {text!r}")
    day, clock, fraction, zone = m.groups()
    if clock.count(":") == 1:
        clock += ":00"
    micro = (fraction or "0")[:6].ljust(6, "0")
    if not zone or zone.upper() == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    return datetime.fromisoformat(f"{day}T{clock}.{micro}{zone}").astimezone(UTC)


def graph_datetime(when: datetime, *, fraction: bool = False) -> str:
    """Graph's output format: `2026-11-20T10:00:00Z`, or with seven fraction digits
    (`2026-11-20T10:00:00.1234560Z`) as Graph writes subscription expirations."""
    when = as_utc(when)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += f".{when.microsecond:06d}0"
    return text + "Z"
