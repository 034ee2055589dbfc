"""Invariants of the billing core that must hold for any history, any zone and any month."""
from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings, strategies as st

from shared.billing import Observation, Period, compute_invoice, parse_plan
from shared.billing.money import round_half_up
from tests.unit.strategies import histories, periods, plans

def _days(invoice, user=None):
    return {(l.user_id, l.item): l.days for l in invoice.lines if user is None or l.user_id == user}


@settings(max_examples=150, deadline=None)
@given(plans, periods, st.sampled_from([(), ("SPB",), ("SPB", "E3")]))
def test_a_user_holding_items_every_day_pays_exactly_each_unit_price(plan, period, skus):
    joined = datetime(period.year, period.month, 1, tzinfo=timezone.utc) - timedelta(days=2)
    user = Observation(at=joined, user_id="u", user_principal_name="ann@c.com", display_name="Ann", skus=skus)
    invoice = compute_invoice(replace(plan, exclude_upn_patterns=()), [user], period)
    for line in invoice.lines:
        # exactly the unit price (a price finer than the currency's minor unit is rounded once)
        assert line.days == period.days and line.amount == round_half_up(Fraction(line.unit_price), plan.currency)


@settings(max_examples=150, deadline=None)
@given(st.data(), plans, periods)
def test_days_never_exceed_the_month_and_no_amount_is_negative(data, plan, period):
    invoice = compute_invoice(plan, data.draw(histories(period)), period)
    for line in invoice.lines:
        assert 0 < line.days <= period.days
        assert line.amount >= 0
    assert invoice.subtotal >= 0 and invoice.tax >= 0 and invoice.total == invoice.subtotal + invoice.tax


@settings(max_examples=150, deadline=None)
@given(st.data(), plans, periods)
def test_cutting_a_history_into_two_users_gives_days_that_add_up(data, plan, period):
    history = data.draw(histories(period, users=("u-1",)))
    ordered = sorted(history, key=lambda o: o.at)
    lo, hi = ordered[0].at - timedelta(days=2), ordered[-1].at + timedelta(days=2)
    cut = lo + timedelta(minutes=data.draw(st.integers(0, int((hi - lo).total_seconds() // 60))))
    before = [o for o in ordered if o.at < cut]
    after = [replace(o, user_id="u-2") for o in ordered if o.at >= cut]
    in_force = before[-1] if before else None
    if in_force is not None:
        before.append(replace(in_force, at=cut, deleted=True))  # the first user ends at the cut
        if not after or after[0].at != cut:
            after.insert(0, replace(in_force, at=cut, user_id="u-2"))  # the second picks up from it
    whole = _days(compute_invoice(plan, ordered, period))
    split = _days(compute_invoice(plan, before + after, period))
    for item in {item for _, item in whole} | {item for _, item in split}:
        if plan.proration == "daily":
            assert whole.get(("u-1", item), 0) == split.get(("u-1", item), 0) + split.get(("u-2", item), 0)


@settings(max_examples=150, deadline=None)
@given(st.data(), plans, periods, st.randoms(use_true_random=False))
def test_the_order_of_input_lines_never_changes_the_invoice(data, plan, period, rnd: random.Random):
    history = data.draw(histories(period))
    shuffled = list(history)
    rnd.shuffle(shuffled)
    assert compute_invoice(plan, shuffled, period).to_json() == compute_invoice(plan, history, period).to_json()


def test_amounts_are_decimals_never_floats():
    plan = parse_plan({"tenant_id": "t", "name": "n", "currency": "USD", "timezone": "UTC", "per_user_price": "9.99"})
    user = Observation(at=datetime(2026, 1, 5, tzinfo=timezone.utc), user_id="u")
    invoice = compute_invoice(plan, [user], Period(2026, 1))
    assert all(isinstance(v, Decimal) for v in (invoice.lines[0].amount, invoice.subtotal, invoice.total))
