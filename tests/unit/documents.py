"""Invoice documents for the export and e-invoice tests, computed by the billing core itself."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from shared.billing import Observation, Period, compute_invoice, parse_plan
from shared.invoicing.document import InvoiceDocument
from shared.invoicing.parties import Party, PostalAddress

BUYER = Party(name="Contoso", legal_name="Contoso Belgium NV", vat_id="BE0477472701", company_id="0477472701",
              address=PostalAddress("Rue de la Loi 16", "Brussels", "1000", "BE"), email="ap@contoso.example")
SELLER = Party(name="Northwind IT", legal_name="Northwind IT Services BV", vat_id="BE0403170701",
               company_id="0403170701", address=PostalAddress("Kade 12", "Antwerp", "2000", "BE"),
               email="billing@northwind.example")


def document(users, *, currency="EUR", tax_rate="0.21", period="2026-10", number="INV-2026-00042",
             user_price="45.00", sku_prices=None, buyer: Party | None = BUYER, proration="daily",
             **plan_fields) -> InvoiceDocument:
    """users: [(display name, first day held (1 = all month), [skus])]: each user joins at local
    midnight of that day and stays to the end of the month."""
    plan = parse_plan({"tenant_id": "t-1", "name": "Contoso", "currency": currency, "timezone": "UTC",
                       "per_user_price": user_price, "sku_prices": sku_prices or {"SPB": "22.00"},
                       "tax_rate": tax_rate, "proration": proration, **plan_fields})
    the_period = Period.parse(period)
    first = datetime.combine(the_period.first_day, datetime.min.time(), timezone.utc)
    observations = [
        Observation(at=first + timedelta(days=day - 1), user_id=f"u-{n}", user_principal_name=f"user{n}@contoso.example",
                    display_name=name, user_type="Member", account_enabled=True, skus=tuple(skus), deleted=False)
        for n, (name, day, skus) in enumerate(users)]
    invoice = compute_invoice(plan, observations, the_period)
    issued = the_period.next().first_day
    return InvoiceDocument(invoice=invoice, number=number, issued_on=issued, due_on=issued + timedelta(days=30),
                           client_name="Contoso", client_address=("Rue de la Loi 16", "1000 Brussels"),
                           client_email="ap@contoso.example", buyer=buyer)


def crowd(count: int) -> list[tuple[str, int, list[str]]]:
    """`count` users, some joining mid-month, every third with a license."""
    return [(f"User {n:04d}", 1 + (n * 7) % 28, ["SPB"] if n % 3 == 0 else []) for n in range(count)]


__all__ = ["BUYER", "SELLER", "document", "crowd", "date"]
