"""The audit trail of an invoice line: the runs of days it charged, and the ledger records that
began and ended each run (what an accountant asks for when a client disputes a line).

The same rules as the invoice (proration.py): a day counts when the item is held at its last
moment, by the plan version in force that day. A run is a stretch of consecutive days on which
a user held an item at one unit price; it begins with the record in force on its first day and
ends with the record that took the item away (or changed its price), or at the month's end.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Iterable

from shared.billing.holdings import items_held, unit_price
from shared.billing.invoice import timelines
from shared.billing.observations import Observation
from shared.billing.period import Period
from shared.billing.plan import Plan
from shared.billing.proration import state_spans


@dataclass(frozen=True)
class Run:
    user_id: str
    item: str
    unit_price: Decimal
    first_day: date
    last_day: date
    began: Observation               # the record in force on the first day
    ended: Observation | None        # the record that ended the run (None: it lasted to the month's end
    price_changed: bool = False      # or it ended because a plan version changed the price)
    last: Observation | None = None  # the record in force on the last day

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


def explain_runs(plan: Plan, observations: Iterable[Observation], period: Period) -> list[Run]:
    """Every run of every user and item of the month, in order of user, item and first day."""
    day_ends = period.day_ends(plan.timezone)
    days = [period.first_day + timedelta(days=n) for n in range(period.days)]
    terms_of_day: list[Plan] = [plan] * len(days)
    for first, end, terms in plan.terms_by_days(days):
        terms_of_day[first:end] = [terms] * (end - first)
    runs: list[Run] = []
    for user_id, timeline in sorted(timelines(observations).items()):
        deciding: list[Observation | None] = [None] * len(days)  # the state in force at each day's end
        for first, end, state in state_spans(timeline, day_ends):
            deciding[first:end] = [state] * (end - first)
        held = [{} if state is None else {item: unit_price(terms_of_day[d], item)
                                          for item in items_held(terms_of_day[d], state)}
                for d, state in enumerate(deciding)]
        for item in sorted({item for day in held for item in day}):
            d = 0
            while d < len(days):
                price = held[d].get(item)
                if price is None:
                    d += 1
                    continue
                first = d
                while d < len(days) and held[d].get(item) == price:
                    d += 1
                began = deciding[first]
                assert began is not None
                after = deciding[d] if d < len(days) else None
                price_changed = after is not None and item in held[d]
                runs.append(Run(user_id=user_id, item=item, unit_price=price, first_day=days[first],
                                last_day=days[d - 1], began=began,
                                ended=None if price_changed else after, price_changed=price_changed,
                                last=deciding[d - 1]))
    return sorted(runs, key=lambda r: (r.user_id, r.item, r.first_day))
