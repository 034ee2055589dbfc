"""Billing periods: a calendar month in the client's time zone, and the instants its days end."""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from shared.billing.errors import InputError
from shared.billing.limits import check_year

_PERIOD = re.compile(r"([0-9]{4})-([0-9]{2})")


@dataclass(frozen=True, order=True)
class Period:
    year: int
    month: int

    @classmethod
    def parse(cls, text: object) -> "Period":
        match = _PERIOD.fullmatch(text) if isinstance(text, str) else None
        if not match or not 1 <= int(match.group(2)) <= 12:
            shown = text[:40] if isinstance(text, str) else text
            raise InputError(f"period must be YYYY-MM, got {shown!r}", field="period")
        return cls(check_year(int(match.group(1)), "period"), int(match.group(2)))

    @classmethod
    def containing(cls, day: date) -> "Period":
        return cls(day.year, day.month)

    @classmethod
    def current(cls, zone: str, now: datetime) -> "Period":
        """The month under way in the zone at `now` (a client's "this month" is in its own zone)."""
        local = now.astimezone(ZoneInfo(zone))
        return cls(local.year, local.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, self.days)

    def next(self) -> "Period":
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> "Period":
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def start(self, zone: str) -> datetime:
        """00:00 local on the 1st, as a UTC instant."""
        return local_midnight(self.first_day, zone)

    def end(self, zone: str) -> datetime:
        """00:00 local on the 1st of the next month, as a UTC instant (exclusive)."""
        return local_midnight(self.next().first_day, zone)

    def day_ends(self, zone: str) -> tuple[datetime, ...]:
        """For each local day of the month, the instant it ends (the next local midnight), in UTC."""
        return _day_ends(self, zone)


def local_midnight(day: date, zone: str) -> datetime:
    """The first instant of a local calendar day, in UTC. Where a DST jump skips midnight,
    zoneinfo maps the missing 00:00 to the instant of the jump, which is when the day starts."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)


@lru_cache(maxsize=4096)
def _day_ends(period: Period, zone: str) -> tuple[datetime, ...]:
    first = period.first_day
    return tuple(local_midnight(first + timedelta(days=n + 1), zone) for n in range(period.days))
