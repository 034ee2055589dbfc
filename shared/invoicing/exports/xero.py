"""Xero's sales-invoice import (Business › Invoices › Import): one CSV per currency.

* Columns are Xero's import template, in its order and spelling (Xero matches them by name;
  the leading `*` marks the ones it requires, and every one of those is filled).
* One row per invoice line, Quantity 1 and UnitAmount = the line's exact amount (the proration,
  "17/31 days", is in the Description): a rounded fractional quantity times the monthly price
  would miss the invoice by a cent now and then.
* Tax is never a line: each row carries its *TaxType (from the plan's `accounting` block or
  ACCOUNTING_TAX_TYPE) and its TaxAmount, the invoice's tax spread over the lines so that they
  add up to the PDF's tax exactly (`line_taxes`). Import with "Amounts are: Tax exclusive".
* *AccountCode: the plan's `accounting` entry for the item, else ACCOUNTING_REVENUE_ACCOUNT.
* Dates as ACCOUNTING_DATE_FORMAT (the organisation's region). Money with the currency's
  minor digits, no symbol, no separator. Total is the invoice's total with tax.
* Credit notes: Xero imports a credit note from the same template when the document's amounts
  are negative; `credit_notes` rows carry Quantity -1, UnitAmount the positive amount credited,
  TaxAmount and Total negative (a credit note's stored lines are negative: they are turned into
  the amounts credited first, so the tax spread is that of the PDF).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from shared.billing.money import format_money
from shared.invoicing.document import InvoiceDocument
from shared.invoicing.exports.accounting import (
    AccountingCodes, describe_line, line_taxes, write_csv,
)
from shared.invoicing.render import item_label
from shared.spreadsheet import text as spreadsheet_safe

XERO_COLUMNS: tuple[str, ...] = (
    "*ContactName", "EmailAddress", "POAddressLine1", "POAddressLine2", "POAddressLine3", "POAddressLine4",
    "POCity", "PORegion", "POPostalCode", "POCountry", "*InvoiceNumber", "Reference", "*InvoiceDate",
    "*DueDate", "Total", "InventoryItemCode", "*Description", "*Quantity", "*UnitAmount", "Discount",
    "*AccountCode", "*TaxType", "TaxAmount", "TrackingName1", "TrackingOption1", "TrackingName2",
    "TrackingOption2", "Currency", "BrandingTheme",
)


def _address(document: InvoiceDocument) -> list[str]:
    """POAddressLine1-4, POCity, PORegion, POPostalCode, POCountry: the structured postal address
    when the client has one, else the free address lines."""
    buyer = document.buyer
    if buyer is not None and buyer.address.country:
        address = buyer.address
        return [address.street, "", "", "", address.city, "", address.postcode, address.country]
    lines = list(document.client_address[:4]) + [""] * (4 - min(4, len(document.client_address)))
    return lines + ["", "", "", ""]


def _rows(document: InvoiceDocument, codes: AccountingCodes, sign: int) -> list[list[str]]:
    invoice = document.invoice
    currency = invoice.currency
    header = [spreadsheet_safe(document.client_name), spreadsheet_safe(document.client_email),
              *(spreadsheet_safe(part) for part in _address(document)), spreadsheet_safe(document.number),
              str(invoice.period), codes.date(document.issued_on), codes.date(document.due_on),
              format_money(sign * invoice.total, currency)]
    rows = []
    for line, tax in zip(invoice.lines, line_taxes(invoice)):
        account, tax_type = codes.for_item(invoice, line.item)
        rows.append([*header, "", spreadsheet_safe(describe_line(line, invoice.period.days, item_label(line.item))),
                     str(sign), format_money(line.amount, currency), "", spreadsheet_safe(account),
                     spreadsheet_safe(tax_type), format_money(sign * tax, currency), "", "", "", "", currency, ""])
    return rows


def _credited(document: InvoiceDocument) -> InvoiceDocument:
    """The credit note with the amounts it credits (positive), whatever sign it is stored with."""
    invoice = document.invoice
    lines = tuple(replace(line, days=abs(line.days), amount=abs(line.amount)) for line in invoice.lines)
    return replace(document, invoice=replace(invoice, lines=lines, subtotal=abs(invoice.subtotal),
                                             tax=abs(invoice.tax), total=abs(invoice.total)))


def xero_csvs(invoices: Iterable[InvoiceDocument], codes: AccountingCodes,
              credit_notes: Iterable[InvoiceDocument] = ()) -> dict[str, bytes]:
    """{currency: CSV bytes}: the invoices' rows, then the credit notes' (Quantity -1)."""
    signed = [(document, 1) for document in invoices] + [(_credited(document), -1) for document in credit_notes]
    groups: dict[str, list[list[str]]] = {}
    for document, sign in signed:
        groups.setdefault(document.invoice.currency, []).extend(_rows(document, codes, sign))
    return {currency: write_csv(XERO_COLUMNS, rows) for currency, rows in sorted(groups.items())}
