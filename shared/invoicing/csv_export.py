"""The run's CSV: every line of every invoice, in a form Xero and QuickBooks Online both import.

Columns (one header set for both):

    *ContactName, EmailAddress, *InvoiceNumber, Reference, *InvoiceDate, *DueDate,
    *Description, *Quantity, *UnitAmount, LineAmount, *AccountCode, *TaxType, Currency

* The names are those of Xero's sales-invoice import template (the leading `*` marks the
  columns Xero requires, as in its template; Xero matches columns by name, so they must be
  spelled exactly so). QuickBooks Online's invoice import maps each of its fields to a column
  of the file, so the same file serves it: Invoice no = *InvoiceNumber, Customer =
  *ContactName, Invoice date = *InvoiceDate, Due date = *DueDate, Item description =
  *Description, Item quantity = *Quantity, Item rate = *UnitAmount, Item amount = LineAmount,
  Currency = Currency.
* One row per invoice line, in the invoice's order, then one tax row per invoice when its plan
  has a tax rate (Description "Tax (8.25%)"). The rows of an invoice therefore add up exactly
  to the invoice total: sum(LineAmount) = subtotal + tax = total. Because tax is a row of its
  own, import with no tax calculation (Xero: "No tax" for the amounts; QuickBooks: leave the
  tax columns unmapped), or the importer would add tax a second time.
* Quantity is always 1 and UnitAmount = LineAmount = the line's rounded amount. Prorated
  quantities (17/31 of a month) cannot be written as a finite decimal, and any rounded
  quantity times the monthly price would miss the invoice's amount by a cent now and then;
  the proration is in the description instead: "Ann Lee (ann@contoso.com) — Managed user,
  17/31 days". Thus the CSV reproduces every invoice to the cent.
* *AccountCode and *TaxType are left empty for the MSP's bookkeeper (or the importer's default)
  to fill; EmailAddress is the document's client_email, empty when unknown; Reference is the
  billing period (YYYY-MM).
* Dates are ISO (YYYY-MM-DD). Money is a plain decimal string with exactly the currency's minor
  digits ("24.68", JPY "1200", KWD "1.250"), no symbol, no thousands separator.
* A text cell that starts with = + - @ (or a tab or CR) gets a leading apostrophe, so that a
  spreadsheet opening the file does not run a user's display name as a formula.
* UTF-8 without a byte-order mark (a BOM would become part of Xero's first column name),
  RFC 4180 quoting and CRLF line ends.
"""
from __future__ import annotations

from typing import Iterable

from shared.billing.money import format_money
from shared.invoicing.document import InvoiceDocument
from shared.invoicing.render import display_address, item_label
from shared.spreadsheet import csv_bytes, text

CSV_COLUMNS: tuple[str, ...] = (
    "*ContactName", "EmailAddress", "*InvoiceNumber", "Reference", "*InvoiceDate", "*DueDate",
    "*Description", "*Quantity", "*UnitAmount", "LineAmount", "*AccountCode", "*TaxType", "Currency",
)

def _percent(rate) -> str:
    """0.0825 -> "8.25%" (exact, no float)."""
    text = format(rate * 100, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


def invoice_lines_csv(documents: Iterable[InvoiceDocument]) -> bytes:
    """The CSV (UTF-8 bytes) of the invoices: a row per invoice line, and a tax row per taxed
    invoice, so that the LineAmounts of an invoice sum exactly to its total."""
    rows: list[list[str]] = []
    for document in documents:
        invoice = document.invoice
        currency = invoice.currency
        days_in_period = invoice.period.days
        common = {
            "contact": document.client_name, "email": document.client_email,
            "number": document.number, "reference": str(invoice.period),
            "issued": document.issued_on.isoformat(), "due": document.due_on.isoformat(),
        }

        def row(description: str, amount) -> list[str]:
            money = format_money(amount, currency)
            return [text(common["contact"]), text(common["email"]), text(common["number"]),
                    common["reference"], common["issued"], common["due"], text(description), "1",
                    money, money, "", "", currency]

        for line in invoice.lines:
            description = (f"{line.display_name} ({display_address(line.user_principal_name)}) — "
                           f"{item_label(line.item, invoice.plan)}, {line.days}/{days_in_period} days")
            rows.append(row(description, line.amount))
        if invoice.plan.tax_rate and invoice.lines:
            rows.append(row(f"{invoice.plan.tax_label or 'Tax'} ({_percent(invoice.plan.tax_rate)})", invoice.tax))
    return csv_bytes(CSV_COLUMNS, rows, byte_order_mark=False)
