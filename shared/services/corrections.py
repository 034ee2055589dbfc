"""Corrections of invoiced months: supplementary invoices and credit notes, issued with the
client's next month-end close and on demand (`./dev invoice correct`, POST
/api/tenants/{id}/corrections).

For every invoiced (emailed) month of the client within reach (the 12 months before the month
being closed, or before the current month on demand), the month is recomputed from the ledger
as now known with the plan recorded on the invoice, and compared with what was billed (the
invoice plus every correction already issued for it): shared/billing/corrections.py. The
differences are frozen as one correction round of that month (table `documents`, created in one
transaction) and each document then goes through the invoice's own resumable steps (number,
render, store, draft, send), inherited from the close's step runner, under the same lease. A
second run finds nothing new to correct and only resumes documents a crash left unfinished.

Numbers: supplementary invoices are invoices and take the next invoice number; credit notes
have their own gap-free sequence (CREDIT_NOTE_NUMBER_FORMAT, e.g. CN-2026-00001).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from shared.billing import Invoice, Period
from shared.billing.corrections import (
    REACH_BACK_MONTHS, Correction, DocumentKind, compute_corrections, explain_correction, within_reach,
)
from shared.billing.money import format_money
from shared.billing.observations import format_instant
from shared.services.close import CloseError, CloseService, month_label
from shared.storage.documents import DocumentStore, NumberedRows, document_key
from shared.storage.invoices import COMPUTED, EMAILED, FINISHED_STEPS, Conflict, InvoiceStore, Row, pack_json, unpack_invoice

log = logging.getLogger("prorata.corrections")


@dataclass(frozen=True)
class DocumentOutcome:
    """One correcting document issued (or resumed) by a run, with its plain-words sentence."""
    tenant_id: str
    name: str
    period: Period
    kind: str
    number: str
    corrects: str
    currency: str
    total: str
    sentence: str

    def to_json(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "name": self.name, "period": str(self.period), "kind": self.kind,
                "number": self.number, "corrects": self.corrects, "currency": self.currency, "total": self.total,
                "sentence": self.sentence}


class _Numbers:
    """Numbers for correcting documents: the invoice sequence for supplementary invoices, the
    credit notes' own sequence for credit notes."""

    def __init__(self, service: "CorrectionService"):
        from shared.storage.numbering import CreditNoteNumbering, InvoiceNumbering

        settings, storage = service.settings, service.app.storage
        rows = NumberedRows(service.months, service.invoices)
        prefix = settings.get("INVOICE_NUMBER_PREFIX") or ""
        self.invoices = InvoiceNumbering(storage, rows, template=settings.get("INVOICE_NUMBER_FORMAT"), prefix=prefix)
        self.credit_notes = CreditNoteNumbering(storage, rows, template=settings.get("CREDIT_NOTE_NUMBER_FORMAT"),
                                                prefix=prefix)

    def assign(self, tenant_id: str, key: str, now: datetime) -> Row:
        counter = self.credit_notes if key.endswith(DocumentKind.CREDIT_NOTE) else self.invoices
        return counter.assign(tenant_id, key, now)


class CorrectionService(CloseService):
    """The close's step runner working on correcting documents (table `documents`)."""

    def __init__(self, app: Any, **options: Any):
        super().__init__(app, **options)
        self.months = InvoiceStore(app.storage)       # the invoices being corrected
        self.invoices = DocumentStore(app.storage)    # the rows the inherited steps move on
        self._correction_numbers: _Numbers | None = None

    @property
    def numbering(self):  # type: ignore[override]
        if self._correction_numbers is None:
            self._correction_numbers = _Numbers(self)
        return self._correction_numbers

    def document(self, row: Row):
        """The rendered document of a correcting row: its own title and the invoice it corrects."""
        return replace(super().document(row), kind=row["kind"], corrects=row["corrects"])

    # -- finding what to correct -----------------------------------------------------------
    def months_in_reach(self, tenant: Any, closing: Period) -> list[Period]:
        return [p for p in _months_before(closing, REACH_BACK_MONTHS) if within_reach(p, closing)]

    def plan_round(self, tenant: Any, period: Period, now: datetime) -> list[tuple[str, dict[str, Any]]]:
        """The rows of the next correction round of an emailed invoice's month (none if what was
        billed equals the month as now known)."""
        issued_row = self.months.get(tenant.tenant_id, period)
        if issued_row is None or issued_row.get("step") != EMAILED or not issued_row.get("number"):
            return []
        zone = tenant.plan.timezone
        existing = self.invoices.of_month(tenant.tenant_id, period)
        computed_at = issued_row.time("computed_at") or now
        latest = max([computed_at, *(row.time("computed_at") or computed_at for row in existing)])
        if not self.app.ledger.learned_since(tenant.tenant_id, period.start(zone), period.end(zone), latest):
            return []  # the ledger learned nothing about that month since it was last billed
        issued = unpack_invoice(issued_row)
        billed = list(issued.lines)
        for row in existing:
            billed += unpack_invoice(row).lines
        as_then = replace(tenant, plan=issued.plan)  # the prices and rules the invoice was made with
        fresh, _ = self.compute(as_then, period, now)
        corrections = compute_corrections(billed, fresh, corrects=issued_row["number"], tax_rate=issued.plan.tax_rate)
        if not corrections:
            return []
        history = self.app.ledger.read_month(tenant.tenant_id, period, zone).observations
        learned = self.app.ledger.learned_since(tenant.tenant_id, period.start(zone), period.end(zone), computed_at)
        issued_on = now.astimezone(ZoneInfo(zone)).date()
        round_ = 1 + max((int(row["RowKey"].split("|")[1]) for row in existing), default=0)
        rows = []
        for correction in corrections:
            reasons = explain_correction(correction, history, learned, zone)
            rows.append((document_key(period, round_, correction.kind),
                         self._frozen(tenant, issued_row, issued, correction, reasons, issued_on, now)))
        return rows

    def _frozen(self, tenant: Any, issued_row: Row, issued: Invoice, correction: Correction, reasons: list[str],
                issued_on: date, now: datetime) -> dict[str, Any]:
        terms = self.settings.integer("INVOICE_PAYMENT_TERMS_DAYS")
        due_on = issued_on if correction.kind == DocumentKind.CREDIT_NOTE else issued_on + timedelta(days=terms)
        document = Invoice(plan=issued.plan, period=correction.period, lines=correction.lines,
                           subtotal=correction.subtotal, tax=correction.tax, total=correction.total)
        currency = correction.currency
        return {
            "step": COMPUTED, "status": "in progress", "kind": str(correction.kind), "period": str(correction.period),
            "corrects": correction.corrects, "client_name": tenant.name,
            "client_address": issued_row.get("client_address") or json.dumps(list(tenant.address)),
            "locale": issued_row.get("locale") or tenant.locale, "contacts": json.dumps(list(tenant.billing_contacts)),
            "currency": currency, "subtotal": format_money(correction.subtotal, currency),
            "tax": format_money(correction.tax, currency), "total": format_money(correction.total, currency),
            "tax_rate": str(correction.tax_rate), "lines": len(correction.lines), "users": document.billable_users,
            "reasons": json.dumps(reasons), "issued_on": issued_on.isoformat(), "due_on": due_on.isoformat(),
            "computed_at": format_instant(now),
            **pack_json({"plan": issued.plan.to_dict(), "invoice": document.to_json()}, "invoice",
                        f"the {correction.kind} of {tenant.name} for {correction.period}"),
        }

    # -- issuing ---------------------------------------------------------------------------
    async def correct_tenant(self, tenant_id: str, *, period: Period | None = None,
                             closing: Period | None = None) -> list[DocumentOutcome]:
        """Issues the corrections of one client: of `period` only, or of every invoiced month in
        reach of `closing` (default: the client's current month). Then finishes every correcting
        document of the client that a crash left unfinished. Returns what this call issued."""
        tenant = self.app.tenants.get(tenant_id)
        if tenant is None:
            raise LookupError(f"tenant {tenant_id} is not onboarded")
        now = self.now()
        zone = tenant.plan.timezone
        current = Period.containing(now.astimezone(ZoneInfo(zone)).date())
        if period is not None:
            if not within_reach(period, current):
                raise CloseError(f"{month_label(period)} cannot be corrected: corrections reach back "
                                 f"{REACH_BACK_MONTHS} months before {month_label(current)}, and never the month under way")
            months = [period]
        else:
            months = self.months_in_reach(tenant, closing or current)
        for month in months:
            for _ in range(3):
                rows = self.plan_round(tenant, month, now)
                if not rows:
                    break
                try:
                    self.invoices.create_round(tenant_id, rows)
                    break
                except Conflict:
                    continue  # another runner made this round: compare again with it included
        outcomes = []
        for row in self.invoices.of_tenant(tenant_id):
            if row.get("step") in FINISHED_STEPS or row.get("voided_at"):
                continue
            finished = await self._close(tenant_id, row["RowKey"], None)  # type: ignore[arg-type]
            outcomes.append(finished)
        return outcomes

    def _outcome(self, row: Row, period: Any, *, already: bool) -> DocumentOutcome:  # type: ignore[override]
        kind, number, currency, total = row["kind"], row.get("number", ""), row.get("currency", ""), row.get("total", "")
        name = row.get("client_name") or row["PartitionKey"]
        reasons = json.loads(row.get("reasons") or "[]")
        title = {"credit_note": "Credit note", "supplementary_invoice": "Supplementary invoice"}.get(kind, kind)
        sentence = f"{title} {number} for {name}: {'; '.join(reasons) or 'corrects ' + row['corrects']}; {total} {currency}"
        outcome = DocumentOutcome(row["PartitionKey"], name, Period.parse(row["period"]), kind, number,
                                  row["corrects"], currency, total, sentence)
        log.info("%s (corrects invoice %s of %s).", sentence, row["corrects"], month_label(outcome.period))
        return outcome


def _months_before(closing: Period, count: int) -> list[Period]:
    months, month = [], closing
    for _ in range(count):
        month = month.previous()
        months.append(month)
    return months


def corrections_total(outcomes: list[DocumentOutcome]) -> dict[str, str]:
    totals: dict[str, Decimal] = {}
    for outcome in outcomes:
        totals[outcome.currency] = totals.get(outcome.currency, Decimal(0)) + Decimal(outcome.total)
    return {currency: format_money(total, currency) for currency, total in sorted(totals.items())}
