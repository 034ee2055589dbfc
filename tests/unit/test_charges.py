"""One-off charges and credits: their own lines on the period's invoice, taxed with the rest."""
from __future__ import annotations

import pytest

from shared.billing import InputError, Observation, Period, compute_invoice, parse_plan
from shared.billing.charges import parse_charge, with_charges
from shared.billing.observations import parse_instant

PLAN = parse_plan({"tenant_id": "t", "name": "Contoso", "currency": "USD", "timezone": "UTC",
                   "per_user_price": "45.00", "tax_rate": "0.0825"})
OCTOBER = Period(2026, 10)
ANN = Observation(at=parse_instant("2026-09-01T00:00:00Z"), user_id="u-ann", display_name="Ann Lee")


def test_a_charge_and_a_credit_are_their_own_lines_after_the_users_and_taxed_with_them():
    charges = [parse_charge({"period": "2026-10", "description": "Server migration", "amount": "1200.00"}, PLAN),
               parse_charge({"period": "2026-10", "description": "Goodwill credit", "amount": "-50.00"}, PLAN),
               parse_charge({"period": "2026-11", "description": "Next month", "amount": "9.00"}, PLAN)]
    invoice = with_charges(compute_invoice(PLAN, [ANN], OCTOBER), charges)
    assert [(l.display_name, l.item, str(l.amount)) for l in invoice.lines] == [
        ("Ann Lee", "user", "45.00"), ("Server migration", "charge", "1200.00"), ("Goodwill credit", "charge", "-50.00")]
    assert (str(invoice.subtotal), str(invoice.tax), str(invoice.total)) == ("1195.00", "98.59", "1293.59")


def test_a_credit_larger_than_the_month_gives_a_negative_total_rounded_symmetrically():
    credit = parse_charge({"period": "2026-10", "description": "Refund", "amount": "-100.00"}, PLAN)
    invoice = with_charges(compute_invoice(PLAN, [ANN], OCTOBER), [credit])
    assert (str(invoice.subtotal), str(invoice.tax), str(invoice.total)) == ("-55.00", "-4.54", "-59.54")


@pytest.mark.parametrize("data, field", [
    ({"period": "2026-10", "description": "x", "amount": "10", "currency": "EUR"}, "currency"),
    ({"period": "2026-13", "description": "x", "amount": "10"}, "period"),
    ({"period": "2026-10", "description": "", "amount": "10"}, "description"),
    ({"period": "2026-10", "description": "x", "amount": "0"}, "amount"),
    ({"period": "2026-10", "description": "x", "amount": "10.001"}, "amount"),
    ({"period": "2026-10", "description": "x", "amount": "1e26"}, "amount"),
    ({"period": "2026-10", "description": "x"}, "amount"),
    ({"period": "2026-10", "description": "x", "amount": "1", "vat": "0"}, "vat"),
])
def test_a_bad_charge_is_refused_naming_the_field(data, field):
    with pytest.raises(InputError) as error:
        parse_charge(data, PLAN)
    assert error.value.field == field
