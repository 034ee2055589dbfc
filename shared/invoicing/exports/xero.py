"""Xero's imports of sales documents, one CSV per currency:

* invoices: *Business › Invoices › Import* (the sales-invoice template);
* credit notes: Xero's credit-note import, the same template with `*CreditNoteNumber` and
  `*CreditNoteDate` in place of the invoice number and date, and no due date. Xero does not
  approve an invoice whose total is below zero, so a credit note is never an invoice with
  negative amounts: its rows carry the amounts credited, positive, and Xero books them as a
  credit of the client. Its Reference is the number of the invoice it corrects, so the
  accountant can allocate it.

* Columns are Xero's template, in its order and spelling (Xero matches them by name; the
  leading `*` marks the ones it requires, and every one of those is filled).
* One row per document line, Quantity 1 and UnitAmount = the line's exact amount (the
  proration, "17/31 days", is in the Description): a rounded fractional quantity times the
  monthly price would miss the invoice by a cent now and then.
* Tax is never a line: each row carries its *TaxType (from the plan's `accounting` block or
  ACCOUNTING_TAX_TYPE) and its TaxAmount, the document's tax spread over the lines so that they
  add up to the PDF's tax exactly (`line_taxes`). Import with "Amounts are: Tax exclusive".
* *AccountCode: the plan's `accounting` entry for the item, else ACCOUNTING_REVENUE_ACCOUNT (a
  credit note uses the same as the sale it corrects, so the revenue is reversed where it was
  booked).
* Dates as ACCOUNTING_DATE_FORMAT (the organisation's region). Money with the currency's
  minor digits, no symbol, no separator. Total is the document's total with tax.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

from shared.billing.money import format_money
from shared.invoicing.document import InvoiceDocument
from shared.invoicing.exports.accounting import (
    AccountingCodes, describe_line, files_by_currency, line_taxes,
)
from shared.invoicing.render import item_label
from shared.spreadsheet import csv_lines
from shared.spreadsheet import text as spreadsheet_safe

_CONTACT = ("*ContactName", "EmailAddress", "POAddressLine1", "POAddressLine2", "POAddressLine3",
            "POAddressLine4", "POCity", "PORegion", "POPostalCode", "POCountry")
_LINE = ("Total", "InventoryItemCode", "*Description", "*Quantity", "*UnitAmount", "Discount", "*AccountCode",
         "*TaxType", "TaxAmount", "TrackingName1", "TrackingOption1", "TrackingName2", "TrackingOption2",
         "Currency", "BrandingTheme")
XERO_COLUMNS: tuple[str, ...] = (*_CONTACT, "*InvoiceNumber", "Reference", "*InvoiceDate", "*DueDate", *_LINE)
XERO_CREDIT_NOTE_COLUMNS: tuple[str, ...] = (*_CONTACT, "*CreditNoteNumber", "Reference", "*CreditNoteDate", *_LINE)


@dataclass(frozen=True)
class _Form:
    """What tells Xero's two templates apart: their columns, the Reference, a due date or none."""

    columns: tuple[str, ...]
    credit_note: bool

    def header(self, document: InvoiceDocument, codes: AccountingCodes) -> list[str]:
        number = spreadsheet_safe(document.number)
        if self.credit_note:  # Reference: the invoice it corrects; no due date on a credit note
            return [number, spreadsheet_safe(document.corrects or ""), codes.date(document.issued_on)]
        return [number, str(document.invoice.period), codes.date(document.issued_on), codes.date(document.due_on)]


INVOICE_FORM = _Form(XERO_COLUMNS, credit_note=False)
CREDIT_NOTE_FORM = _Form(XERO_CREDIT_NOTE_COLUMNS, credit_note=True)


def _address(document: InvoiceDocument) -> list[str]:
    """POAddressLine1-4, POCity, PORegion, POPostalCode, POCountry: the structured postal address
    when the client has one, else the free address lines."""
    buyer = document.buyer
    if buyer is not None and buyer.address.country:
        address = buyer.address
        return [address.street, "", "", "", address.city, "", address.postcode, address.country]
    lines = list(document.client_address[:4]) + [""] * (4 - min(4, len(document.client_address)))
    return lines + ["", "", "", ""]


def _rows(document: InvoiceDocument, codes: AccountingCodes, form: _Form) -> list[list[str]]:
    invoice = document.invoice
    currency = invoice.currency
    header = [spreadsheet_safe(document.client_name), spreadsheet_safe(document.client_email),
              *(spreadsheet_safe(part) for part in _address(document)), *form.header(document, codes),
              format_money(invoice.total, currency)]
    rows, days = [], invoice.period.days
    for line, tax in zip(invoice.lines, line_taxes(invoice)):
        account, tax_type = codes.for_item(invoice, line.item)
        rows.append([*header, "", spreadsheet_safe(describe_line(line, days, item_label(line.item))),
                     "1", format_money(line.amount, currency), "", spreadsheet_safe(account),
                     spreadsheet_safe(tax_type), format_money(tax, currency), "", "", "", "", currency, ""])
    return rows


def _credited(document: InvoiceDocument) -> InvoiceDocument:
    """The credit note with the amounts it credits (positive), whatever sign it is stored with
    (the corrections store a credit note's days, amounts, tax and total negative)."""
    invoice = document.invoice
    lines = tuple(replace(line, days=abs(line.days), amount=abs(line.amount)) for line in invoice.lines)
    return replace(document, invoice=replace(invoice, lines=lines, subtotal=abs(invoice.subtotal),
                                             tax=abs(invoice.tax), total=abs(invoice.total)))


def document_lines(document: InvoiceDocument, codes: AccountingCodes) -> bytes:
    """The document's rows as CSV lines of its Xero file: an invoice's in the sales-invoice
    template, a credit note's in the credit-note template (the amounts credited, positive)."""
    if document.kind == "credit_note":
        return csv_lines(_rows(_credited(document), codes, CREDIT_NOTE_FORM))
    return csv_lines(_rows(document, codes, INVOICE_FORM))


def xero_csvs(invoices: Iterable[InvoiceDocument], codes: AccountingCodes) -> dict[str, bytes]:
    """{currency: CSV bytes} of Xero's sales-invoice import."""
    return files_by_currency(invoices, XERO_COLUMNS, lambda document: document_lines(document, codes))


def xero_credit_note_csvs(credit_notes: Iterable[InvoiceDocument], codes: AccountingCodes) -> dict[str, bytes]:
    """{currency: CSV bytes} of Xero's credit-note import, the amounts credited positive."""
    return files_by_currency(credit_notes, XERO_CREDIT_NOTE_COLUMNS, lambda document: document_lines(document, codes))
