"""A month billed before it has ended: up to an instant, as if every user left then."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Iterable

from shared.billing.observations import Observation


def month_to_date(observations: Iterable[Observation], as_of: datetime) -> list[Observation]:
    """The observations as they stand at `as_of`, with every user leaving at `as_of`: so the
    core counts exactly the days that have ended by then (a day counts when the item is held at
    its last moment, which for a day still running has not come)."""
    kept = [o for o in observations if o.at <= as_of]
    last: dict[str, Observation] = {}
    for observation in sorted(kept, key=lambda o: o.at):
        last[observation.user_id] = observation
    return kept + [replace(state, at=as_of, deleted=True) for state in last.values() if not state.deleted]
