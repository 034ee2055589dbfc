"""Counting billable days and pricing them: the `daily` and `none` policies."""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Iterator, Sequence

from shared.billing.holdings import items_held, unit_price
from shared.billing.money import round_half_up
from shared.billing.observations import Observation
from shared.billing.plan import Plan


@dataclass
class PricedDays:
    """The days one item was held at one unit price: how many, and the first and last of them
    (indices into the period's days)."""
    days: int
    first: int
    last: int


def state_spans(timeline: Sequence[Observation], day_ends: Sequence[datetime]) -> Iterator[tuple[int, int, Observation]]:
    """For each state of one user's time-ordered observations, the days of the period it decides:
    (first index, end index exclusive, state).

    Rule: a day counts when the item is held at the day's last moment, i.e. in the state in force
    just before the next local midnight; an observation made exactly at midnight belongs to the new
    day. So the state observed at `a` and replaced at `b` covers the days whose end e has a < e <= b.
    """
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
            yield first, last, state


def priced_days(runs: Sequence[tuple[int, int, Plan]], timeline: Sequence[Observation],
                day_ends: Sequence[datetime]) -> dict[tuple[str, Decimal], PricedDays]:
    """Days held per (item, unit price) for one user. Rule (plan versions): each day is billed by
    the version in force on that local day, both for which items are held (the plan's rules) and
    at which price; `runs` are the period's runs of days sharing one version."""
    result: dict[tuple[str, Decimal], PricedDays] = {}
    for first, last, state in state_spans(timeline, day_ends):
        for run_start, run_end, terms in runs:
            start, end = max(first, run_start), min(last, run_end)
            if end <= start:
                continue
            for item in items_held(terms, state):
                key = (item, unit_price(terms, item))
                held = result.get(key)
                if held is None:
                    result[key] = PricedDays(end - start, start, end - 1)
                else:
                    held.days += end - start
                    held.first, held.last = min(held.first, start), max(held.last, end - 1)
    return result


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
