"""What the services need of the ledger, whatever stores it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Protocol

from shared.billing import Observation, Period


@dataclass(frozen=True)
class MonthSlice:
    """What one tenant's month is billed from: the state of every user at the start of the
    slice, then every record up to the month's end, each at its effective time."""
    opening: tuple[Observation, ...]
    records: tuple[Observation, ...]

    @property
    def observations(self) -> list[Observation]:
        return [*self.opening, *self.records]


class LedgerPort(Protocol):
    def append(self, tenant_id: str, observations: Iterable[Observation], *, observed_at: datetime,
               source: str) -> int:
        """Appends the observations that really change a user; returns how many records it wrote.
        Replays and duplicates write nothing."""

    def read_month(self, tenant_id: str, period: Period, zone: str) -> MonthSlice: ...

    def current_states(self, tenant_id: str) -> dict[str, Observation]: ...

    def states_of(self, tenant_id: str, user_ids: set[str]) -> dict[str, Observation]: ...
