"""Timer triggers: NCRONTAB schedules (six fields, seconds first) through croniter, or a
TimeSpan ("00:05:00") interval; one thread per timer that, like the host, computes the next
occurrence after each run finishes (a run that overruns skips the occurrences it missed)."""
from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from azure.functions.timer import TimerRequest
from croniter import croniter

from .index import FunctionInfo
from .settings import TIMESPAN, parse_timespan, resolve

if TYPE_CHECKING:
    from .core import DevHost

log = logging.getLogger("devtools.host")
LATE_AFTER = timedelta(seconds=1)  # fired later than this after its occurrence: past due


def host_timezone() -> tzinfo:
    """WEBSITE_TIME_ZONE (an IANA name on Linux) or UTC, as the host uses for schedules."""
    name = os.environ.get("WEBSITE_TIME_ZONE", "").strip()
    return ZoneInfo(name) if name else timezone.utc


class Schedule:
    """A resolved timer schedule: next_after(moment) gives the following occurrence."""

    def __init__(self, expression: str, tz: tzinfo | None = None) -> None:
        self.expression = expression.strip()
        self.tz = tz or timezone.utc
        self.interval = None
        if TIMESPAN.fullmatch(self.expression):
            self.interval = timedelta(seconds=parse_timespan(self.expression))
            if self.interval <= timedelta(0):
                raise ValueError(f"timer interval must be positive: {expression!r}")
        elif len(self.expression.split()) != 6:
            raise ValueError(f"NCRONTAB needs six fields, seconds first: {expression!r}")
        elif not croniter.is_valid(self.expression, second_at_beginning=True):
            raise ValueError(f"invalid NCRONTAB expression {expression!r}")

    def next_after(self, moment: datetime) -> datetime:
        moment = moment.astimezone(self.tz)
        if self.interval is not None:
            return moment + self.interval
        # NCRONTAB needs both day-of-month and day-of-week to match (day_or=False), unlike cron.
        return croniter(self.expression, moment, ret_type=datetime, day_or=False,
                        second_at_beginning=True).get_next()

    def upcoming(self, count: int, moment: datetime) -> list[datetime]:
        out = []
        for _ in range(count):
            moment = self.next_after(moment)
            out.append(moment)
        return out


def timer_request(past_due: bool, last: datetime | None, following: datetime | None) -> TimerRequest:
    """The TimerRequest the worker would build, with a schedule status like the host's."""
    now = datetime.now(timezone.utc).isoformat()
    status = {"Last": last.isoformat() if last else None,
              "Next": following.isoformat() if following else None, "LastUpdated": now}
    return TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})


class TimerRunner:
    """Runs one timer function on its schedule in a background thread."""

    def __init__(self, host: "DevHost", info: FunctionInfo) -> None:
        self.host, self.info = host, info
        self.schedule = Schedule(resolve(info.schedule), host_timezone())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"timer-{info.name}", daemon=True)
        self.last: datetime | None = None

    def describe(self) -> str:
        coming = self.schedule.upcoming(5, datetime.now(self.schedule.tz))
        kind = "TimeSpan" if self.schedule.interval else "Cron"
        return (f"The next 5 occurrences of the '{self.info.name}' schedule ({kind}: "
                f"'{self.schedule.expression}') will be:\n" + "\n".join(m.isoformat() for m in coming))

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def fire(self, occurrence: datetime, past_due: bool = False):
        """Invoke the function for one occurrence; returns the Invocation."""
        following = self.schedule.next_after(occurrence)
        request = timer_request(past_due, self.last, following)
        self.last = occurrence
        return self.host.invoke(self.info, request, f"Timer fired at {occurrence.isoformat()}")

    def _run(self) -> None:
        if self.info.run_on_startup:
            self.fire(datetime.now(self.schedule.tz))
        while not self._stop.is_set():
            due = self.schedule.next_after(datetime.now(self.schedule.tz))
            while not self._stop.is_set():
                left = (due - datetime.now(self.schedule.tz)).total_seconds()
                if left <= 0:
                    break
                self._stop.wait(left)
            if self._stop.is_set():
                return
            self.fire(due, past_due=datetime.now(self.schedule.tz) - due > LATE_AFTER)
