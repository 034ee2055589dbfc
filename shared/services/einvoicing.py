"""E-invoices and accounting files in the close: what the close calls, so that its steps stay
about steps.

* Before a number is spent (compute step), an e-invoicing client's document is built with a
  placeholder number and validated (UBL XSD + EN 16931 schematron). If it fails, the close of
  that client stops with the rules broken as its reason: no number, no PDF, no email.
* Beside each stored PDF (store step), the UBL e-invoice `{period}/{tenant}/{number}.xml`,
  validated and written once. An e-invoicing client's email carries it next to the PDF; a
  document that fails validation is never emailed (the step fails with the reason). For a
  client without e-invoicing whose document cannot be valid (e.g. the MSP has not set its VAT
  id, or the client has no country), no XML is archived and the row says why (`ubl_skipped`).
* Each finished run: the Xero and the QuickBooks Online import files of the invoices it
  emailed and of the correcting documents it issued, one set per currency, beside the PDFs:
  Xero's invoice import, Xero's credit-note import (credit notes), and QuickBooks Online's
  invoice import (invoices only: it makes no credit memos).

Credit notes, when they exist as documents: `ubl.to_ubl(document, seller, payment,
credited=CreditedInvoice(number, issued_on))` makes the UBL CreditNote (positive amounts,
BillingReference to the invoice), and `xero_credit_note_csvs(credit_notes, codes)` writes them
in Xero's credit-note import (its own file, the amounts credited positive).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple

from shared.invoicing.parties import Party, Payment, SettingError, payment_from_settings, seller_from_settings
from shared.kept import Kept

if TYPE_CHECKING:  # pragma: no cover
    from shared.billing import Period
    from shared.invoicing.document import InvoiceDocument
    from shared.invoicing.exports.accounting import AccountingCodes
    from shared.settings import Settings

log = logging.getLogger("prorata.close")
PENDING_NUMBER = "PENDING"  # the number an e-invoice is checked with before its own is assigned


class EInvoiceRefused(RuntimeError):
    """A document that cannot be made a valid e-invoice, with the reason in plain words."""


def ubl_path(period: str, tenant_id: str, number: str) -> str:
    return f"{period}/{tenant_id}/{number}.xml"


class ExportPaths(NamedTuple):
    """The blob names of a run's accounting files in one currency, in the order they are listed."""

    xero_invoices: str
    xero_credit_notes: str
    quickbooks_invoices: str


def export_paths(period: str, run_id: str, currency: str) -> ExportPaths:
    return ExportPaths(f"{period}/xero-invoices-{run_id}-{currency}.csv",
                       f"{period}/xero-credit-notes-{run_id}-{currency}.csv",
                       f"{period}/quickbooks-invoices-{run_id}-{currency}.csv")


class EInvoicing:
    """The seller, payment details and accounting codes from settings, read once."""

    def __init__(self, settings: "Settings"):
        self.settings = settings
        self._seller: Party | None = None
        self._payment: Payment | None = None
        self._codes: AccountingCodes | None = None
        self._lines: Kept[tuple[str, ...], AccountingLines] = Kept(512)  # by number, kind, total, date

    def _parties(self) -> tuple[Party, Payment]:
        if self._seller is None or self._payment is None:
            try:
                self._seller, self._payment = seller_from_settings(self.settings), payment_from_settings(self.settings)
            except SettingError as error:
                raise EInvoiceRefused(f"e-invoice not possible: {error}") from None
        return self._seller, self._payment

    def ubl(self, document: "InvoiceDocument") -> bytes:
        """The document's UBL e-invoice, validated; EInvoiceRefused names the rules it breaks."""
        from shared.invoicing.einvoice.ubl import to_ubl
        from shared.invoicing.einvoice.validate import InvalidEInvoice, validate

        seller, payment = self._parties()
        xml = to_ubl(document, seller, payment)
        try:
            validate(xml, document.number)
        except InvalidEInvoice as error:
            raise EInvoiceRefused(f"{error}; fix the client's legal details (./dev tenants add) or the MSP's "
                                  "BRAND_* settings, then close again") from None
        return xml

    def unset_settings(self) -> str:
        """Why no e-invoice can be made at all ("" when the MSP's legal settings allow one): the
        close then archives none for clients who did not ask for one, without building it."""
        try:
            seller, _ = self._parties()
        except EInvoiceRefused as error:
            return str(error)
        missing = [name for name, value in (("BRAND_VAT_ID", seller.vat_id), ("BRAND_COUNTRY", seller.address.country))
                   if not value]
        return f"the MSP's settings {' and '.join(missing)} are not set (EN 16931 needs them)" if missing else ""

    def facturx_pdf(self, pdf: bytes, document: "InvoiceDocument") -> bytes:
        """The PDF with the document's CII embedded (Factur-X, profile EN 16931), validated."""
        from shared.invoicing.einvoice.cii import to_facturx_pdf
        from shared.invoicing.einvoice.validate import InvalidEInvoice

        seller, payment = self._parties()
        try:
            return to_facturx_pdf(pdf, document, seller, payment)
        except InvalidEInvoice as error:
            raise EInvoiceRefused(str(error)) from None

    def check_before_numbering(self, document: "InvoiceDocument") -> None:
        """For an e-invoicing client: the document, numbered PENDING, must validate."""
        self.ubl(replace(document, number=PENDING_NUMBER))

    def accounting_files(self, period: str, run_id: str, documents: Iterable["InvoiceDocument"]) -> dict[str, bytes]:
        """{blob name: CSV} of the Xero and QuickBooks imports of the documents, per currency;
        a file only where it has a document."""
        from shared.invoicing.exports.accounting import files_by_currency
        from shared.invoicing.exports.quickbooks import QUICKBOOKS_COLUMNS
        from shared.invoicing.exports.xero import XERO_COLUMNS, XERO_CREDIT_NOTE_COLUMNS

        documents = list(documents)
        # Credit notes go to Xero's credit-note import only; QuickBooks Online's invoice import
        # makes no credit memos. Supplementary invoices are invoices: in both invoice files.
        credit_notes = [document for document in documents if document.kind == "credit_note"]
        invoices = [document for document in documents if document.kind != "credit_note"]
        xero = files_by_currency(invoices, XERO_COLUMNS, lambda document: self.accounting_lines(document).xero)
        credits = files_by_currency(credit_notes, XERO_CREDIT_NOTE_COLUMNS,
                                    lambda document: self.accounting_lines(document).xero)
        quickbooks = files_by_currency(invoices, QUICKBOOKS_COLUMNS,
                                       lambda document: self.accounting_lines(document).quickbooks)
        files: dict[str, bytes] = {}
        for currency in sorted({*xero, *credits}):
            paths = export_paths(period, run_id, currency)
            for name, data in ((paths.xero_invoices, xero.get(currency)), (paths.xero_credit_notes, credits.get(currency)),
                               (paths.quickbooks_invoices, quickbooks.get(currency))):
                if data is not None:
                    files[name] = data
        return files

    def accounting_lines(self, document: "InvoiceDocument") -> "AccountingLines":
        """The document's rows in the Xero and QuickBooks files, written once per process: an
        issued document never changes and its number is its own, so a close writes them while
        other invoices render and the run's files only join them (a few hundred kept)."""
        from shared.invoicing.exports.accounting import AccountingCodes
        from shared.invoicing.exports.quickbooks import document_lines as quickbooks_lines
        from shared.invoicing.exports.xero import document_lines as xero_lines

        key = (document.number, document.kind, str(document.invoice.total), document.issued_on.isoformat())
        made = self._lines.get(key)
        if made is None:
            if self._codes is None:
                self._codes = AccountingCodes.from_settings(self.settings)
            made = self._lines.put(key, AccountingLines(
                xero_lines(document, self._codes),
                b"" if document.kind == "credit_note" else quickbooks_lines(document, self._codes)))
        return made


class AccountingLines(NamedTuple):
    """A document's rows as CSV lines of its Xero file and of its QuickBooks file (none for a
    credit note)."""

    xero: bytes
    quickbooks: bytes



def archived_ubl(invoices: Any, archive: Any, tenant_id: str, period: "Period") -> tuple[str, bytes]:
    """(invoice number, UBL bytes) of a closed month's archived e-invoice; LookupError says why
    there is none (not closed, nothing to bill, not archived and why)."""
    row = invoices.get(tenant_id, period)
    if row is None or not row.get("number"):
        state = "was closed with nothing to bill" if row is not None and row.get("step") == "nothing to bill" \
            else "has no issued invoice"
        raise LookupError(f"{period} of tenant {tenant_id} {state}")
    if not row.get("ubl_blob"):
        why = row.get("ubl_skipped") or f"the close has not archived it yet (step {row.get('step')})"
        raise LookupError(f"invoice {row['number']} has no archived e-invoice: {why}")
    return row["number"], archive.get(row["ubl_blob"])
