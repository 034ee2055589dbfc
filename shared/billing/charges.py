"""One-off charges and credits: a project, a goodwill credit, on a period's invoice.

A charge is its own line on the invoice of its period (item `charge`, the description as its
name, no days), after the users' lines; a negative amount is a credit. The subtotal is the sum
of every line, and the tax is the subtotal × tax_rate as for any invoice (rounded half-up once,
symmetric for a credit).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Iterable, Mapping

from shared.billing.errors import InputError
from shared.billing.holdings import CHARGE_ITEM
from shared.billing.invoice import Invoice, InvoiceLine
from shared.billing.limits import check_text
from shared.billing.money import check_currency, format_money, minor_units, parse_decimal, round_signed
from shared.billing.period import Period
from shared.billing.plan import Plan

CHARGE_FIELDS = ("period", "description", "amount", "currency")


@dataclass(frozen=True)
class Charge:
    period: Period
    description: str
    amount: Decimal  # negative: a credit

    def to_json(self, currency: str) -> dict[str, Any]:
        return {"period": str(self.period), "description": self.description,
                "amount": format_money(self.amount, currency), "currency": currency}


def parse_charge(data: object, plan: Plan) -> Charge:
    """Reads {"period": "YYYY-MM", "description": "...", "amount": "1200.00", "currency"?}; the
    amount in the plan's currency (another currency is an error naming the field)."""
    if not isinstance(data, Mapping):
        raise InputError('expected {"period": "YYYY-MM", "description": "...", "amount": "1200.00"}')
    for name in data:
        if name not in CHARGE_FIELDS:
            raise InputError(f"unknown field (known: {', '.join(CHARGE_FIELDS)})", field=str(name)[:100])
    if "currency" in data and data["currency"] != plan.currency:
        currency = check_currency(data["currency"])
        raise InputError(f"the client is billed in {plan.currency}, not {currency}", field="currency")
    if "period" not in data:
        raise InputError("is required", field="period")
    period = Period.parse(data["period"])
    description = check_text(data.get("description"), "description", limit=200)
    if "amount" not in data:
        raise InputError("is required", field="amount")
    amount = parse_decimal(data["amount"], "amount", allow_negative=True)
    if amount == 0:
        raise InputError("must not be zero", field="amount")
    if -amount.as_tuple().exponent > minor_units(plan.currency):  # type: ignore[operator]
        raise InputError(f"has more decimals than {plan.currency} has ({minor_units(plan.currency)})", field="amount")
    return Charge(period=period, description=description, amount=amount)


def with_charges(invoice: Invoice, charges: Iterable[Charge]) -> Invoice:
    """The invoice with the period's one-off charges as their own lines, after the users' lines."""
    mine = [charge for charge in charges if charge.period == invoice.period]
    extra = [InvoiceLine(user_id=f"charge-{n}", user_principal_name="", display_name=charge.description,
                         item=CHARGE_ITEM, unit_price=charge.amount, days=0, amount=charge.amount)
             for n, charge in enumerate(mine, start=1)]
    if not extra:
        return invoice
    lines = (*invoice.lines, *extra)
    subtotal = sum((line.amount for line in lines), Decimal(0))
    # tax = subtotal × tax_rate, rounded half-up once (a net credit rounds symmetrically)
    tax = round_signed(Fraction(subtotal) * Fraction(invoice.plan.tax_rate), invoice.currency)
    return Invoice(plan=invoice.plan, period=invoice.period, lines=lines, subtotal=subtotal, tax=tax,
                   total=subtotal + tax)
