"""Corrections of an issued invoice: supplementary invoices for more owed, credit notes for less,
line key by line key (user, item, unit price), tax at the original invoice's rate."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from shared.billing import Observation, Period, compute_invoice, parse_plan
from shared.billing.corrections import DocumentKind, compute_corrections, within_reach
from shared.billing.money import minor_units
from shared.billing.observations import parse_instant

OCTOBER = Period(2026, 10)
PLAN = parse_plan({"tenant_id": "t-1", "name": "Contoso Dental", "currency": "USD", "timezone": "UTC",
                   "per_user_price": "30.00", "sku_prices": {"SPB": "22.00"}, "tax_rate": "0.0825"})


def seen(at, user, name, **fields):
    return Observation(at=parse_instant(at), user_id=user, user_principal_name=f"{user}@contoso.com",
                       display_name=name, **fields)


ANN = seen("2026-09-01T00:00:00Z", "u-ann", "Ann Lee", skus=("SPB",))
BOB = seen("2026-09-01T00:00:00Z", "u-bob", "Bob Ray")


def corrections(known_then, known_now, plan=PLAN):
    invoice = compute_invoice(plan, known_then, OCTOBER)
    return invoice, compute_corrections(invoice.lines, compute_invoice(plan, known_now, OCTOBER),
                                        corrects="INV-2026-00042", tax_rate=plan.tax_rate)


def test_a_user_who_left_on_the_20th_learned_late_gives_a_credit_note_for_the_days_removed():
    left = seen("2026-10-20T09:00:00Z", "u-ann", "Ann Lee", deleted=True)
    _, [credit] = corrections([ANN, BOB], [ANN, BOB, left])
    assert credit.kind is DocumentKind.CREDIT_NOTE and credit.corrects == "INV-2026-00042"
    assert [(l.display_name, l.item, l.days, str(l.amount)) for l in credit.lines] == [
        ("Ann Lee", "user", -12, "-11.61"),   # 30.00 − round(30 × 19/31 = 18.387…) = 30.00 − 18.39
        ("Ann Lee", "SPB", -12, "-8.52"),     # 22.00 − round(22 × 19/31 = 13.483…) = 22.00 − 13.48
    ]
    assert (str(credit.subtotal), str(credit.tax), str(credit.total)) == ("-20.13", "-1.66", "-21.79")


def test_a_user_added_late_gives_a_supplementary_invoice():
    joined = seen("2026-10-15T10:00:00Z", "u-cy", "Cy Fox")
    _, [more] = corrections([ANN], [ANN, joined])
    assert more.kind is DocumentKind.SUPPLEMENTARY_INVOICE
    assert [(l.display_name, l.item, l.days, str(l.amount)) for l in more.lines] == [("Cy Fox", "user", 17, "16.45")]
    assert (str(more.tax), str(more.total)) == ("1.36", "17.81")


def test_more_and_less_owed_in_one_month_give_one_document_of_each_kind():
    left = seen("2026-10-20T09:00:00Z", "u-ann", "Ann Lee", deleted=True)
    joined = seen("2026-10-15T10:00:00Z", "u-cy", "Cy Fox")
    _, documents = corrections([ANN, BOB], [ANN, BOB, left, joined])
    assert [d.kind for d in documents] == [DocumentKind.SUPPLEMENTARY_INVOICE, DocumentKind.CREDIT_NOTE]
    assert all(l.amount > 0 for l in documents[0].lines) and all(l.amount < 0 for l in documents[1].lines)


def test_nothing_changed_means_no_correction_and_a_second_run_issues_nothing():
    assert corrections([ANN, BOB], [ANN, BOB])[1] == []
    left = seen("2026-10-20T09:00:00Z", "u-ann", "Ann Lee", deleted=True)
    invoice, first = corrections([ANN, BOB], [ANN, BOB, left])
    billed = list(invoice.lines) + [line for document in first for line in document.lines]
    fresh = compute_invoice(PLAN, [ANN, BOB, left], OCTOBER)
    assert compute_corrections(billed, fresh, corrects="INV-2026-00042", tax_rate=PLAN.tax_rate) == []


def test_tax_is_at_the_original_invoices_rate():
    joined = seen("2026-10-15T10:00:00Z", "u-cy", "Cy Fox")
    invoice = compute_invoice(PLAN, [ANN], OCTOBER)
    [more] = compute_corrections(invoice.lines, compute_invoice(PLAN, [ANN, joined], OCTOBER),
                                 corrects="INV-1", tax_rate=Decimal("0.2"))
    assert str(more.tax) == "3.29"  # 16.45 × 0.2 = 3.29


def test_corrections_reach_back_twelve_months():
    closing = Period(2027, 11)
    assert within_reach(Period(2026, 11), closing) and within_reach(Period(2027, 10), closing)
    assert not within_reach(Period(2026, 10), closing) and not within_reach(closing, closing)


# Invariants --------------------------------------------------------------------------------------

ZONES = ["UTC", "Pacific/Kiritimati", "America/New_York", "Asia/Kathmandu"]
SKUS = ["SPB", "E3"]


@st.composite
def plans(draw):
    return parse_plan({
        "tenant_id": "t", "name": "Client", "currency": draw(st.sampled_from(["USD", "JPY", "KWD"])),
        "timezone": draw(st.sampled_from(ZONES)), "proration": draw(st.sampled_from(["daily", "none"])),
        "per_user_price": str(draw(st.decimals("0.01", 500, places=2))),
        "sku_prices": {sku: str(draw(st.decimals("0.01", 100, places=3))) for sku in SKUS},
        "tax_rate": str(draw(st.decimals(0, "0.3", places=4))),
        "versions": draw(st.sampled_from([[], [{"effective_from": "2026-10-16", "per_user_price": "41.00"}]])),
    })


@st.composite
def observations(draw, count):
    start = datetime(2026, 9, 28, tzinfo=timezone.utc)
    return [Observation(at=start + timedelta(minutes=draw(st.integers(0, 36 * 24 * 60))),
                        user_id=draw(st.sampled_from(["u-1", "u-2", "u-3"])), display_name="x",
                        skus=tuple(sorted(draw(st.sets(st.sampled_from(SKUS))))), deleted=draw(st.booleans()))
            for _ in range(draw(st.integers(count[0], count[1])))]


def _amounts(lines):
    totals: dict = {}
    for line in lines:
        key = (line.user_id, line.item, line.unit_price)
        totals[key] = totals.get(key, Decimal(0)) + line.amount
    return {key: amount for key, amount in totals.items() if amount}


@settings(max_examples=200, deadline=None)
@given(plans(), observations((1, 6)), observations((1, 4)), observations((0, 3)))
def test_an_invoice_plus_its_corrections_equals_a_fresh_computation_and_a_rerun_issues_nothing(
        plan, known_at_invoice, late, later):
    invoice = compute_invoice(plan, known_at_invoice, OCTOBER)
    billed = list(invoice.lines)
    documents = []
    for known in (known_at_invoice + late, known_at_invoice + late + later):  # two rounds of late news
        fresh = compute_invoice(plan, known, OCTOBER)
        issued = compute_corrections(billed, fresh, corrects="INV-1", tax_rate=plan.tax_rate)
        billed += [line for document in issued for line in document.lines]
        documents += issued
        assert _amounts(billed) == _amounts(fresh.lines)
        assert invoice.subtotal + sum(d.subtotal for d in documents) == fresh.subtotal
        # each document rounds its own tax once: the month's tax agrees within a minor unit per document
        unit = Decimal(1).scaleb(-minor_units(plan.currency))
        assert abs(invoice.tax + sum(d.tax for d in documents) - fresh.tax) <= unit * len(documents)
        assert compute_corrections(billed, fresh, corrects="INV-1", tax_rate=plan.tax_rate) == []
    for document in documents:
        assert document.total == document.subtotal + document.tax
        sign = 1 if document.kind is DocumentKind.SUPPLEMENTARY_INVOICE else -1
        assert all(line.amount * sign > 0 for line in document.lines)
