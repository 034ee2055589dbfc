"""Corrections of invoiced months: supplementary invoices and credit notes, issued with the
client's next month-end close and on demand (`./dev invoice correct`, POST
/api/tenants/{id}/corrections).

For every invoiced (emailed) month of the client within reach (the 12 months before the month
being closed, or before the current month on demand), the month is recomputed from the ledger
as now known with the plan recorded on the invoice, and compared with what was billed (the
invoice plus every correction already issued for it): shared/billing/corrections.py. The
differences are frozen as one correction round of that month (table `documents`, created in one
transaction) and each document then goes through the invoice's own resumable steps (number,
render, store, draft, send): the close's step runner and step table, under the same lease. A
second run finds nothing new to correct and only resumes documents a crash left unfinished.

Numbers: supplementary invoices are invoices and take the next invoice number; credit notes
have their own gap-free sequence (CREDIT_NOTE_NUMBER_FORMAT, e.g. CN-2026-00001).
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

from shared.billing import Invoice, Period
from shared.billing.corrections import (
    REACH_BACK_MONTHS, Correction, DocumentKind, compute_corrections, explain_correction, within_reach,
)
from shared.billing.money import format_money
from shared.billing.observations import format_instant
from shared.errors import CloseError, TenantNotOnboarded
from shared.invoicing.document import DOCUMENT_TITLES
from shared.invoicing.steps import FINISHED_STEPS, Step
from shared.ports import Clock, InvoiceCounter, InvoiceRepository, LedgerPort, TenantRepository
from shared.services.close import CloseService
from shared.services.close.reports import month_label
from shared.services.close.runner import Attempt
from shared.settings import Settings
from shared.storage.documents import DocumentStore, document_key
from shared.storage.records import Conflict, InvoiceRecord, TableValue, pack_json
from shared.storage.invoices import unpack_invoice
from shared.tenants import Tenant

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


class DocumentNumbers:
    """Numbers for correcting documents: the invoice sequence for supplementary invoices, the
    credit notes' own sequence for credit notes (RowKey `<month>|<round>|<kind>`)."""

    def __init__(self, invoices: InvoiceCounter, credit_notes: InvoiceCounter):
        self._invoices, self._credit_notes = invoices, credit_notes

    def assign(self, tenant_id: str, period: str, now: datetime, row: InvoiceRecord | None = None) -> InvoiceRecord:
        counter = self._credit_notes if period.endswith(DocumentKind.CREDIT_NOTE) else self._invoices
        return counter.assign(tenant_id, period, now, row)

    def reserve(self, tenant_id: str, period: str, now: datetime, issued_on: date,
                write: Callable[[int, str], InvoiceRecord]) -> InvoiceRecord:
        raise CloseError("a correcting document is created computed and numbered by `assign`")

    def last_number(self) -> int:
        return self._invoices.last_number()


class CorrectionService:
    """Finds what to correct and moves each correcting document through the close's steps
    (`steps`: a CloseService working on table `documents`)."""

    def __init__(self, *, tenants: TenantRepository, ledger: LedgerPort, invoices: InvoiceRepository,
                 documents: DocumentStore, steps: CloseService, settings: Settings, clock: Clock):
        self.tenants, self.ledger, self.invoices, self.documents = tenants, ledger, invoices, documents
        self.steps, self.settings, self.now = steps, settings, clock
        self.notes: list[str] = []        # changes found beyond the reach: reported, not billed

    # -- finding what to correct -----------------------------------------------------------
    def plan_round(self, tenant: Tenant, period: Period, now: datetime) -> list[tuple[str, dict[str, TableValue]]]:
        """The rows of the next correction round of an emailed invoice's month (none if what was
        billed equals the month as now known)."""
        issued_row = self.invoices.get(tenant.tenant_id, period)
        if issued_row is None or issued_row.get("step") != Step.EMAILED or not issued_row.get("number"):
            return []
        zone = tenant.plan.timezone
        existing = self.documents.of_month(tenant.tenant_id, period)
        if issued_row.get("voided_at") and not any(row.get("kind") == DocumentKind.INVOICE and not row.get("voided_at")
                                                   for row in existing):
            return []  # voided and not re-issued: nothing of that month is billed any more
        computed_at = issued_row.time("computed_at") or now
        latest = max([computed_at, *(row.time("computed_at") or computed_at for row in existing)])
        if not self.ledger.learned_since(tenant.tenant_id, period.start(zone), period.end(zone), latest):
            return []  # the ledger learned nothing about that month since it was last billed
        issued = unpack_invoice(issued_row)
        billed = list(issued.lines)
        for row in existing:
            billed += unpack_invoice(row).lines
        as_then = replace(tenant, plan=issued.plan)  # the prices and rules the invoice was made with
        fresh, _ = self.steps.compute(as_then, period, now)
        # a re-issued month is corrected against its new invoice, not the voided one
        current = [row for row in existing if row.get("kind") == DocumentKind.INVOICE and not row.get("voided_at")]
        corrects = str(current[-1].get("number") or issued_row["number"]) if current else str(issued_row["number"])
        corrections = compute_corrections(billed, fresh, corrects=corrects, tax_rate=issued.plan.tax_rate)
        if not corrections:
            return []
        history = self.ledger.read_month(tenant.tenant_id, period, zone).observations
        learned = self.ledger.learned_since(tenant.tenant_id, period.start(zone), period.end(zone), computed_at)
        issued_on = self.issued_on(tenant, now)
        round_ = 1 + max((int(row.row_key.split("|")[1]) for row in existing), default=0)
        rows = []
        for correction in corrections:
            reasons = explain_correction(correction, history, learned, zone)
            rows.append((document_key(period, round_, correction.kind),
                         self.frozen(tenant, issued_row, issued, correction, reasons, issued_on, now)))
        return rows

    def issued_on(self, tenant: Tenant, now: datetime) -> date:
        """A document's date: the client's local date."""
        return now.astimezone(ZoneInfo(tenant.plan.timezone)).date()

    def frozen(self, tenant: Tenant, issued_row: InvoiceRecord, issued: Invoice, correction: Correction,
                reasons: list[str], issued_on: date, now: datetime) -> dict[str, TableValue]:
        terms = self.settings.integer("INVOICE_PAYMENT_TERMS_DAYS")
        due_on = issued_on if correction.kind == DocumentKind.CREDIT_NOTE else issued_on + timedelta(days=terms)
        document = Invoice(plan=issued.plan, period=correction.period, lines=correction.lines,
                           subtotal=correction.subtotal, tax=correction.tax, total=correction.total)
        currency = correction.currency
        return {
            "step": Step.COMPUTED, "status": "in progress", "kind": str(correction.kind),
            "period": str(correction.period), "corrects": correction.corrects, "client_name": tenant.name,
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
                             closing: Period | None = None, resume_only: bool = False, tenant: Tenant | None = None,
                             invoices: list[InvoiceRecord] | None = None) -> list[DocumentOutcome]:
        """Issues the corrections of one client: of `period` only, or of every invoiced month in
        reach of `closing` (default: the client's current month). Then finishes every correcting
        document of the client that a crash left unfinished. Returns what this call issued.
        `tenant` and `invoices` (the client's invoice records up to `closing`, as
        InvoiceRepository.summaries gives them): as the caller (a close) has just read them."""
        if tenant is None or tenant.tenant_id != tenant_id:
            tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise TenantNotOnboarded(tenant_id)
        now = self.now()
        current = Period.containing(now.astimezone(ZoneInfo(tenant.plan.timezone)).date())
        if resume_only:
            months = []
        elif period is not None:
            if not within_reach(period, current):
                raise CloseError(f"{month_label(period)} cannot be corrected: corrections reach back "
                                 f"{REACH_BACK_MONTHS} months before {month_label(current)}, and never the month under way")
            months = [period]
        else:
            months = self.months_with_news(tenant, closing or current, invoices)
        made = False
        for month in months:
            for _ in range(3):
                rows = self.plan_round(tenant, month, now)
                if not rows:
                    break
                made = True
                try:
                    self.documents.create_round(tenant_id, rows)
                    break
                except Conflict:
                    continue  # another runner made this round: compare again with it included
        outcomes: list[DocumentOutcome] = []
        if not made and not may_have_documents(invoices):
            return outcomes
        for row in self.documents.of_tenant(tenant_id):
            if row.get("step") in FINISHED_STEPS:
                continue
            owner = uuid.uuid4().hex
            work = Attempt(owner, await self.steps.runner.acquire(tenant_id, row.row_key, owner, None))  # type: ignore[arg-type]
            await self.steps.runner.run(work, self.steps.steps)
            outcomes.append(document_outcome(work.row))
        return outcomes

    def months_with_news(self, tenant: Tenant, closing: Period,
                         invoices: list[InvoiceRecord] | None = None) -> list[Period]:
        """The emailed months in reach of `closing` about which the ledger learned something after
        they were last billed (two queries, whatever the number of months). A month older than
        the reach with such news is logged and noted (`self.notes`), not billed. `invoices`: the
        client's records up to `closing` if the caller has them (else they are read)."""
        window = months_before(closing, 2 * REACH_BACK_MONTHS)
        if invoices is None:
            invoices = self.invoices.summaries(tenant.tenant_id, closing)
        emailed = {Period.parse(row.row_key): row for row in invoices
                   if row.get("step") == Step.EMAILED and row.get("number") and row.row_key.count("-") == 1}
        candidates = [month for month in window if month in emailed]
        if not candidates:
            return []
        zone = tenant.plan.timezone
        billed_at: dict[Period, datetime] = {}
        for month in candidates:
            billed_at[month] = emailed[month].time("computed_at") or self.now()
        for row in self.documents.of_tenant(tenant.tenant_id) if may_have_documents(invoices) else []:
            month = Period.parse(str(row.get("period") or row.row_key[:7]))
            when = row.time("computed_at")
            if month in billed_at and when is not None and when > billed_at[month]:
                billed_at[month] = when
        learned = self.ledger.learned_since(tenant.tenant_id, min(candidates).start(zone), max(candidates).end(zone),
                                            min(billed_at.values()))
        touched = sorted({month for observation, at in learned for month in candidates
                          if month.start(zone) <= observation.at < month.end(zone) and at > billed_at[month]},
                         reverse=True)
        for month in touched:
            if not within_reach(month, closing):
                note = (f"{tenant.name}: the ledger learned of a change in {month_label(month)} (invoice "
                        f"{emailed[month]['number']}) more than {REACH_BACK_MONTHS} months back; not billed")
                log.warning(note)
                self.notes.append(note)
        return [month for month in touched if within_reach(month, closing)]

    def issued(self, tenant_id: str, period: Period) -> list[dict[str, Any]]:
        """The correcting documents of an invoiced month, as numbered (unnumbered ones are not issued yet)."""
        return [{"number": row["number"], "kind": row["kind"], "corrects": row["corrects"],
                 "currency": row.get("currency"), "subtotal": row.get("subtotal"), "tax": row.get("tax"),
                 "total": row.get("total"), "issued_on": row.get("issued_on"), "status": row.get("status"),
                 "reasons": json.loads(row.get("reasons") or "[]"), "lines": unpack_invoice(row).to_json()["lines"]}
                for row in self.documents.of_month(tenant_id, period) if row.get("number")]


def may_have_documents(invoices: list[InvoiceRecord] | None) -> bool:
    """Whether a client whose invoice records are `invoices` (None: not read) may have correcting
    documents: a month's invoice record is marked `corrected` before its first correcting
    documents are made (storage/documents.DocumentStore.create_round), so a client with no such
    mark has none, and table `documents` need not be read for it."""
    return invoices is None or any(row.get("corrected") for row in invoices)


def document_outcome(row: InvoiceRecord) -> DocumentOutcome:
    """A finished correcting document in one sentence: "Credit note CN-2026-00001 for Contoso
    Dental: Ann Lee left on 20 October, known since 3 November; -9.94 USD"."""
    kind, number, currency, total = row["kind"], row.get("number", ""), row.get("currency", ""), row.get("total", "")
    name = row.get("client_name") or row.tenant_id
    reasons = json.loads(row.get("reasons") or "[]")
    sentence = (f"{DOCUMENT_TITLES.get(kind, kind)} {number} for {name}: "
                f"{'; '.join(reasons) or 'corrects ' + row['corrects']}; {total} {currency}")
    outcome = DocumentOutcome(row.tenant_id, name, Period.parse(row["period"]), kind, number, row["corrects"],
                              currency, total, sentence)
    log.info("%s (corrects invoice %s of %s).", sentence, row["corrects"], month_label(outcome.period))
    return outcome


def months_before(closing: Period, count: int) -> list[Period]:
    """The `count` months before `closing`, latest first."""
    months, month = [], closing
    for _ in range(count):
        month = month.previous()
        months.append(month)
    return months
