"""Counting billable days and pricing them: the `daily` and `none` policies."""
from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Sequence

from shared.billing.holdings import items_held
from shared.billing.money import round_half_up
from shared.billing.observations import Observation
from shared.billing.plan import Plan


def days_held(plan: Plan, timeline: Sequence[Observation], day_ends: Sequence[datetime]) -> Counter[str]:
    """Days of the period on which each item is held, for one user's time-ordered observations.

    Rule: a day counts when the item is held at the day's last moment, i.e. in the state in force
    just before the next local midnight; an observation made exactly at midnight belongs to the new
    day. So the state observed at `a` and replaced at `b` covers the days whose end e has a < e <= b.
    """
    counts: Counter[str] = Counter()
    for index, state in enumerate(timeline):
        first = bisect_left(day_ends, state.at)
        if first < len(day_ends) and day_ends[first] == state.at:
            first += 1  # made exactly at a midnight: it belongs to the new day
        if index + 1 < len(timeline):
            last = bisect_left(day_ends, timeline[index + 1].at)  # day ends strictly before next
            if last < len(day_ends) and day_ends[last] == timeline[index + 1].at:
                last += 1  # the next state starts exactly at this midnight: this day is ours
        else:
            last = len(day_ends)
        if last > first:
            for item in items_held(plan, state):
                counts[item] += last - first
    return counts


def line_amount(plan: Plan, unit_price: Decimal, days: int, days_in_month: int) -> Decimal:
    """The amount of one line, rounded once, half-up, to the currency's minor units.

    daily: amount = unit_price × days ÷ days_in_month (a full month is exactly the unit price).
    none:  the full unit price for an item held at the end of at least one day.
    """
    if plan.proration == "none":
        exact = Fraction(unit_price) if days > 0 else Fraction(0)
    else:
        exact = Fraction(unit_price) * days / days_in_month
    return round_half_up(exact, plan.currency)
