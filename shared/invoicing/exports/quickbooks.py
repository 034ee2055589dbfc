"""QuickBooks Online's invoice import (Settings › Import data › Invoices): one CSV per currency.

* Column names are those QuickBooks maps by itself ("Invoice no", "Customer", "Invoice Date",
  "Due Date", "Item(Product/Service)", "Item Description", "Item Quantity", "Item Rate",
  "Item Amount", "Taxable", ...), so the mapping screen needs no change.
* QuickBooks recomputes Item Amount as Item Quantity × Item Rate. Every row has Item Quantity 1
  and Item Rate = Item Amount = the line's exact amount, so the product is exact; the proration
  ("17/31 days") is in the Item Description. (days ÷ days-in-month is not a finite decimal in
  general, and any rounded quantity would miss the PDF by a cent now and then.)
* Item(Product/Service) is the item's name ("Managed user", the SKU); Taxable is Y on a taxed
  plan; Item Tax Code is the tax type (plan `accounting`, else ACCOUNTING_TAX_TYPE) for the
  regions that use tax codes; Item Tax Amount is the line's share of the invoice's tax, adding
  up to the PDF's tax exactly. Dates as ACCOUNTING_DATE_FORMAT (pick the same on import).
* QuickBooks' invoice import makes no credit memos; credit notes are not in this file.
"""
from __future__ import annotations

from typing import Iterable

from shared.billing.money import format_money
from shared.invoicing.document import InvoiceDocument
from shared.invoicing.exports.accounting import (
    AccountingCodes, describe_line, files_by_currency, line_taxes,
)
from shared.invoicing.render import item_label
from shared.spreadsheet import csv_lines
from shared.spreadsheet import text as spreadsheet_safe

QUICKBOOKS_COLUMNS: tuple[str, ...] = (
    "Invoice no", "Customer", "Invoice Date", "Due Date", "Terms", "Memo", "Item(Product/Service)",
    "Item Description", "Item Quantity", "Item Rate", "Item Amount", "Taxable", "Item Tax Code",
    "Item Tax Amount", "Currency",
)


def _rows(document: InvoiceDocument, codes: AccountingCodes) -> list[list[str]]:
    invoice = document.invoice
    currency = invoice.currency
    terms = f"Net {(document.due_on - document.issued_on).days}"
    header = [spreadsheet_safe(document.number), spreadsheet_safe(document.client_name),
              codes.date(document.issued_on), codes.date(document.due_on), terms, f"Period {invoice.period}"]
    taxable, days = "Y" if invoice.plan.tax_rate else "N", invoice.period.days
    rows = []
    for line, tax in zip(invoice.lines, line_taxes(invoice)):
        _, tax_type = codes.for_item(invoice, line.item)
        amount = format_money(line.amount, currency)
        rows.append([*header, spreadsheet_safe(item_label(line.item)),
                     spreadsheet_safe(describe_line(line, days, item_label(line.item))),
                     "1", amount, amount, taxable, spreadsheet_safe(tax_type), format_money(tax, currency), currency])
    return rows


def document_lines(document: InvoiceDocument, codes: AccountingCodes) -> bytes:
    """The invoice's rows as CSV lines of its QuickBooks file."""
    return csv_lines(_rows(document, codes))


def quickbooks_csvs(invoices: Iterable[InvoiceDocument], codes: AccountingCodes) -> dict[str, bytes]:
    """{currency: CSV bytes}, a row per invoice line."""
    return files_by_currency(invoices, QUICKBOOKS_COLUMNS, lambda document: document_lines(document, codes))
