"""The invoice of one client tenant for one period: lines, subtotal, tax and total."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Iterable, Iterator

from shared.billing.holdings import CHARGE_ITEM, USER_ITEM
from shared.billing.money import format_money, format_price, round_half_up
from shared.billing.observations import Observation
from shared.billing.period import Period
from shared.billing.plan import Plan
from shared.billing.proration import PricedDays, line_amount, priced_days


@dataclass(frozen=True)
class InvoiceLine:
    user_id: str
    user_principal_name: str
    display_name: str
    item: str
    unit_price: Decimal
    days: int
    amount: Decimal


@dataclass(frozen=True)
class Invoice:
    plan: Plan
    period: Period
    lines: tuple[InvoiceLine, ...]
    subtotal: Decimal
    tax: Decimal
    total: Decimal

    @property
    def currency(self) -> str:
        return self.plan.currency

    @property
    def billable_users(self) -> int:
        return len({line.user_id for line in self.lines if line.item != CHARGE_ITEM})

    def to_json(self) -> dict[str, Any]:
        """The invoice as the spec's JSON: money as strings with the currency's minor digits."""
        currency = self.currency
        return {
            "tenant_id": self.plan.tenant_id, "name": self.plan.name, "period": str(self.period),
            "period_start": self.period.first_day.isoformat(),
            "period_end": self.period.last_day.isoformat(),
            "days_in_period": self.period.days, "currency": currency,
            "lines": [{
                "user_id": line.user_id, "user_principal_name": line.user_principal_name,
                "display_name": line.display_name, "item": line.item,
                "unit_price": format_price(line.unit_price, currency), "days": line.days,
                "amount": format_money(line.amount, currency),
            } for line in self.lines],
            "subtotal": format_money(self.subtotal, currency), "tax_rate": str(self.plan.tax_rate),
            "tax": format_money(self.tax, currency), "total": format_money(self.total, currency),
        }


def timelines(observations: Iterable[Observation]) -> dict[str, list[Observation]]:
    """Each user's observations in order of `at`; ties keep input order (sorted() is stable)."""
    by_user: dict[str, list[Observation]] = defaultdict(list)
    for observation in observations:
        by_user[observation.user_id].append(observation)
    return {user: sorted(items, key=lambda o: o.at) for user, items in by_user.items()}


def line_order(line: InvoiceLine, then: object) -> tuple:
    # Sorted by display name, then user principal name, then item (`user` first, then SKUs A→Z),
    # then by the first day each unit price applied (plan versions).
    return (line.display_name.casefold(), line.display_name, line.user_principal_name.casefold(),
            line.user_id, line.item != USER_ITEM, line.item, then)


def compute_invoice(plan: Plan, observations: Iterable[Observation], period: Period) -> Invoice:
    day_ends = period.day_ends(plan.timezone)
    period_end = day_ends[-1]
    runs = plan.terms_by_days([period.first_day + timedelta(days=n) for n in range(period.days)])
    keyed: list[tuple[tuple, InvoiceLine]] = []
    for user_id, timeline in timelines(observations).items():
        held = priced_days(runs, timeline, day_ends)
        if not held:
            continue
        # The name on the invoice is the latest one known within the period.
        named = next((o for o in reversed(timeline) if o.at < period_end), timeline[0])
        for item, price, days, first_day in _priced_lines(plan, held):
            line = InvoiceLine(
                user_id=user_id, user_principal_name=named.user_principal_name,
                display_name=named.display_name, item=item, unit_price=price, days=days,
                amount=line_amount(plan, price, days, period.days))
            keyed.append((line_order(line, first_day), line))
    keyed.sort(key=lambda pair: pair[0])
    lines = [line for _, line in keyed]
    # subtotal = sum of the rounded lines; tax = subtotal × tax_rate, rounded half-up; total = sum.
    subtotal = sum((line.amount for line in lines), Decimal(0))
    tax = round_half_up(Fraction(subtotal) * Fraction(plan.tax_rate), plan.currency)
    return Invoice(plan=plan, period=period, lines=tuple(lines), subtotal=subtotal, tax=tax,
                   total=subtotal + tax)


def _priced_lines(plan: Plan, held: dict[tuple[str, Decimal], PricedDays]) -> Iterator[tuple[str, Decimal, int, int]]:
    """(item, unit price, days, first day) of each line of one user.

    daily: one line per item and unit price. none: one line per item; days counts every day
    held, and the unit price is the one in force on the last day held.
    """
    if plan.proration != "none":
        for (item, price), days in held.items():
            yield item, price, days.days, days.first
        return
    by_item: dict[str, list[tuple[Decimal, PricedDays]]] = defaultdict(list)
    for (item, price), days in held.items():
        by_item[item].append((price, days))
    for item, priced in by_item.items():
        last_price, _ = max(priced, key=lambda pair: pair[1].last)
        yield item, last_price, sum(d.days for _, d in priced), min(d.first for _, d in priced)
