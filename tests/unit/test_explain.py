"""The audit trail of an invoice line: runs of days and the ledger records that began and ended them."""
from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from hypothesis import given, settings, strategies as st

from shared.billing import Observation, Period, compute_invoice, parse_plan
from shared.billing.explain import explain_runs
from shared.billing.observations import parse_instant

OCTOBER = Period(2026, 10)
PLAN = parse_plan({"tenant_id": "t", "name": "Contoso", "currency": "USD", "timezone": "UTC",
                   "per_user_price": "45.00", "sku_prices": {"SPB": "22.00"},
                   "versions": [{"effective_from": "2026-10-15", "sku_prices": {"SPB": "24.00"}}]})


def seen(at, **fields):
    return Observation(at=parse_instant(at), user_id="u-ann", user_principal_name="ann@c.com", display_name="Ann Lee",
                       **fields)


def test_each_run_names_the_record_that_began_it_and_the_one_that_ended_it():
    joined = seen("2026-09-20T10:00:00Z", skus=("SPB",))
    left = seen("2026-10-10T09:00:00Z", deleted=True)
    back = seen("2026-10-20T12:00:00Z", skus=("SPB",))
    runs = [(r.item, str(r.unit_price), r.first_day.day, r.last_day.day, r.began.at.day, r.ended and r.ended.at.day,
             r.price_changed) for r in explain_runs(PLAN, [joined, left, back], OCTOBER)]
    assert runs == [
        ("SPB", "22.00", 1, 9, 20, 10, False),     # from the join (20 Sept) to the deletion on the 10th
        ("SPB", "24.00", 20, 31, 20, None, False),  # back on the 20th at the new price, to the month's end
        ("user", "45.00", 1, 9, 20, 10, False),
        ("user", "45.00", 20, 31, 20, None, False),
    ]


def test_a_price_change_ends_a_run_without_a_record():
    runs = explain_runs(PLAN, [seen("2026-09-20T10:00:00Z", skus=("SPB",))], OCTOBER)
    spb = [(r.first_day.day, r.last_day.day, r.price_changed) for r in runs if r.item == "SPB"]
    assert spb == [(1, 14, True), (15, 31, False)]


@st.composite
def histories(draw):
    result = []
    for user in draw(st.lists(st.sampled_from(["u-1", "u-2"]), min_size=1, max_size=2, unique=True)):
        for day in draw(st.lists(st.integers(0, 40), min_size=1, max_size=5, unique=True)):
            result.append(Observation(at=parse_instant("2026-09-25T00:00:00Z") +
                                      timedelta(days=day, hours=draw(st.integers(0, 23))),
                                      user_id=user, display_name=user, deleted=draw(st.booleans()),
                                      skus=tuple(sorted(draw(st.sets(st.sampled_from(["SPB"])))))))
    return result


@settings(max_examples=150, deadline=None)
@given(histories())
def test_the_runs_of_a_line_add_up_to_its_days(history):
    invoice = compute_invoice(PLAN, history, OCTOBER)
    days = defaultdict(int)
    for run in explain_runs(PLAN, history, OCTOBER):
        days[(run.user_id, run.item, run.unit_price)] += run.days
    assert days == {(l.user_id, l.item, l.unit_price): l.days for l in invoice.lines}
