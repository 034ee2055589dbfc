"""The month-end close: each client's month computed, numbered, rendered, archived and emailed,
exactly once, and a report of each run.

When a month is closed (the rule the timers follow: schedule.py)
  A client's month is closed only once it has ended in the client's own time zone. The
  `month_end` timer (MONTH_END_SCHEDULE, 06:00 UTC on the 1st) and the `month_end_catch_up`
  timer (MONTH_END_CATCHUP_SCHEDULE, hourly on the 1st and 2nd) both do the same: for every
  client, take the most recent month that has ended in its zone (`due_period`); if the client
  was onboarded before that month ended and not offboarded before it began, and the month has
  no invoice row yet, claim the row and queue the client. `./dev close --period P` closes the
  clients that the same rule (`bills_month`) gives for P. So a client at UTC+14 (its October ends at 10:00 UTC on 31 October) is
  closed by the 06:00 run on the 1st, and one at UTC-11 (October ends at 11:00 UTC on
  1 November) is left alone by that run and closed by the catch-up at 11:15. Claimed rows that
  were never started 30 minutes later (a lost message) are queued again.

The steps of one client's close (the `tenant-close` queue function, or `./dev close`)
  compute -> number -> render -> store -> draft -> send, each recorded with its time on the
  invoice row (shared/storage/invoices.py) under a lease (runner.py: the step table), so a retry
  resumes after the last step done and two runners never work on one invoice at once:
  * compute: the core invoice from the ledger's month (`read_month`), frozen in the row;
    the invoice date is the client's local date at that moment, the due date INVOICE_PAYMENT_
    TERMS_DAYS later. A month with no billable line is recorded as "nothing to bill": no
    number, no PDF, no email (an empty invoice is noise to an accountant; a number must not be
    spent on it).
  * number: gap-free, increasing per MSP (shared/storage/numbering.py); a final invoice is
    numbered in the compute step's own write, a correcting document by this step.
  * render: the PDF (invoice_v1). store: the PDF in Blob Storage, written once
    (`{period}/{tenant_id}/{number}.pdf`). Both are recorded with the draft: a resumed close
    renders again and keeps the PDF stored first.
  * draft + send: the email with the stored PDF, sent at most once (shared/services/mailing.py).
  A failure records "failed: <reason>" on the row and is raised, so that the queue retries it
  (five times, then the poison queue); the last failure is counted as the tenant's outcome in
  its run.

Runs (reports.py)
  Every timer run and every `./dev close` is a run. Each tenant logs one plain sentence when it
  finishes; the tenant that finishes a run last writes the run's CSV and logs and stores the
  run's summary, then the license reconciliation runs (shared/services/reconcile.py).

Preview
  The same computation for any month that has started. For a month whose invoice is issued, the
  preview is that invoice as issued with its corrections (shared/services/corrections.py), never
  a recomputation; for a month that has ended and is not invoiced yet, what the close will issue. For
  the current month it is the month to date: the days that have ended so far, each priced as in
  the full month (days / days in the month), as if every user left now; the days still to come
  are not counted.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Callable
from zoneinfo import ZoneInfo

from shared.billing import Invoice, Period, compute_invoice
from shared.billing.charges import with_charges
from shared.billing.money import format_money
from shared.billing.month_to_date import month_to_date
from shared.billing.observations import format_instant
from shared.billing.holds import Billed, hold_reason, rules_for
from shared.errors import CloseError, InvoiceNotFound, TenantNotOnboarded
from shared.heap import freeze_once
from shared.invoicing.steps import FINISHED_STEPS, Step
from shared.messages import CLOSE_QUEUE, CloseRequest, JsonObject
from shared.ports import (
    Archive, Clock, InvoiceCounter, InvoiceRepository, LedgerPort, Mailer, MessageQueue, RunRepository, RunSummary,
    TenantRepository,
)
from shared.services.close.reports import (
    EMAILED_OUTCOME, FAILED_OUTCOME, RunReports, TenantOutcome, describe, month_label, new_run_id, outcome_of,
    plural,
)
from shared.services.close.runner import (
    BUSY_WAIT_SECONDS, LEASE_TTL, Action, Attempt, CloseBusy, Known, Raced, StepFunction, StepRunner,
)
from shared.services.close.schedule import bills_month, due_period
from shared.services.einvoicing import PENDING_NUMBER, EInvoiceRefused, EInvoicing, ubl_path
from shared.services.reconcile import Reconciler
from shared.settings import Settings
from shared.storage.archive import pdf_path
from shared.storage.invoices import Conflict, InvoiceRecord, invoice_document, pack_invoice, unpack_invoice
from shared.storage.records import Record, RunMember, TableValue
from shared.tenants import Tenant

if TYPE_CHECKING:  # pragma: no cover
    from shared.invoicing.document import Brand, InvoiceDocument
    from shared.services.charges import ChargeRepository
    from shared.services.corrections import CorrectionService

log = logging.getLogger("prorata.close")

STALE_CLAIM = timedelta(minutes=30)  # a claimed row never started after this is queued again


def _billed(record: InvoiceRecord) -> Billed:
    """What the guardrails compare of a stored invoice."""
    return Billed(Period.parse(record.period), record.number, Decimal(str(record.get("total", "0"))),
                  str(record.get("currency", "")), int(record.get("users", 0)))


@dataclass
class RunStarted:
    run_id: str
    period: Period
    tenants: list[str] = field(default_factory=list)


class CloseService:
    """The close of one MSP's clients. Collaborators that a preview does not need (the counter,
    the mailer, the brand) are built on first use, from the factories given."""

    def __init__(self, *, settings: Settings, tenants: TenantRepository, ledger: LedgerPort,
                 invoices: InvoiceRepository, runs: RunRepository, archive: Archive, queues: MessageQueue,
                 counter: Callable[[], InvoiceCounter], mailer: Callable[[], Mailer], brand: Callable[[], Brand],
                 reconciler: Reconciler, clock: Clock, after_step: Callable[[str], None] | None = None,
                 lease_ttl: timedelta = LEASE_TTL, busy_wait: float = BUSY_WAIT_SECONDS,
                 corrections: Callable[[], CorrectionService] | None = None,
                 charges: ChargeRepository | None = None, einvoicing: Callable[[], EInvoicing] | None = None):
        self.settings, self.tenants, self.ledger = settings, tenants, ledger
        self.invoices, self.runs, self.archive, self.queues = invoices, runs, archive, queues
        self.reconciler, self.now = reconciler, clock
        self._counter_factory, self._mailer_factory, self._brand_factory = counter, mailer, brand
        self._corrections = corrections  # issues corrections of earlier months with each close
        self.charges = charges  # one-off charges and credits, lines of their period's invoice
        self._counter: InvoiceCounter | None = None
        self._mailer: Mailer | None = None
        self._brand: Brand | None = None
        self._einvoicing: EInvoicing | None = None
        # the process's e-invoicing and accounting files (their lines are kept across closes)
        self._einvoicing_factory = einvoicing or (lambda: EInvoicing(self.settings))
        self.runner = StepRunner(invoices, clock, lease_ttl=lease_ttl, busy_wait=busy_wait, after_step=after_step)
        self.reports = RunReports(runs=runs, invoices=invoices, archive=archive, clock=clock,
                                  exports=lambda period, run_id, documents: self.einvoicing.accounting_files(
                                      period, run_id, documents),
                                  corrections=self._correction_rows if corrections else None,
                                  prepare=lambda document: self.einvoicing.accounting_lines(document))
        self.steps: dict[Action, StepFunction] = {
            Action.COMPUTE: self._compute, Action.NUMBER: self._number, Action.RENDER: self._render,
            Action.STORE: self._store, Action.DRAFT: self._draft, Action.SEND: self._send}

    # -- collaborators built on first use (a preview needs none of them) ----------------------
    @property
    def numbering(self) -> InvoiceCounter:
        if self._counter is None:
            self._counter = self._counter_factory()
        return self._counter

    @property
    def brand(self) -> Brand:
        if self._brand is None:
            self._brand = self._brand_factory()
        return self._brand

    @property
    def einvoicing(self) -> EInvoicing:
        if self._einvoicing is None:
            self._einvoicing = self._einvoicing_factory()
        return self._einvoicing

    @property
    def mailer(self) -> Mailer:
        if self._mailer is None:
            self._mailer = self._mailer_factory()
        return self._mailer

    # -- computing (close and preview) ---------------------------------------------------------
    def compute(self, tenant: Tenant, period: Period, as_of: datetime) -> tuple[Invoice, bool]:
        """The invoice of the tenant's month as of `as_of`, and whether it is month to date."""
        zone = tenant.plan.timezone
        if as_of < period.start(zone):
            raise CloseError(f"{month_label(period)} has not started yet in {zone}")
        observations = self.ledger.read_month(tenant.tenant_id, period, zone).observations
        to_date = as_of < period.end(zone)
        # Rule: a client offboarded during the month is billed up to the offboarding, as if every
        # user left then; a month under way is billed for the days ended so far.
        cut = min(as_of, tenant.offboarded_at or as_of)
        if cut < period.end(zone):
            observations = month_to_date(observations, cut)
        invoice = compute_invoice(tenant.plan, observations, period)
        if self.charges is not None:
            invoice = with_charges(invoice, self.charges.of_period(tenant.tenant_id, period))
        return invoice, to_date

    def preview(self, tenant_id: str, period: Period) -> JsonObject:
        """The invoice JSON of a month that has started (month to date for the current one),
        with `as_of`, `month_to_date` and the close's state of that month (`close`, or None).
        Raises TenantNotOnboarded, or CloseError for a month that has not started."""
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise TenantNotOnboarded(tenant_id)
        now = self.now()
        row = self.invoices.get(tenant_id, period)
        if row is not None and row.get("number") and row.get("invoice_chunks"):
            # Rule: an issued invoice is final: its month previews as issued, with its corrections.
            data = unpack_invoice(row).to_json()
            to_date = False
            data["corrections"] = self._corrections().issued(tenant_id, period) if self._corrections else []
        else:
            invoice, to_date = self.compute(tenant, period, now)
            data = invoice.to_json()
        data["as_of"] = format_instant(now)
        data["month_to_date"] = to_date
        data["close"] = None if row is None else {
            "step": row.get("step"), "status": row.get("status"), "number": row.get("number"),
            "total": row.get("total"), "emailed_at": row.get("emailed_at")}
        return data

    # -- the timers: which tenants to close, and fanning out -----------------------------------
    def start_month_end(self, trigger: str = "timer") -> list[RunStarted]:
        """Claims and queues every tenant whose due month (schedule.py) is not closed yet; one run
        per period. Returns the runs started."""
        now = self.now()
        due: dict[Period, list[Tenant]] = defaultdict(list)
        stale: list[InvoiceRecord] = []
        for tenant in self.tenants.all():
            period = due_period(tenant, now)
            if period is None:
                continue
            row = self.invoices.get(tenant.tenant_id, period)
            if row is None:
                due[period].append(tenant)
            elif row.get("status") == "queued" and not self.runner.leased(row, now) and \
                    (row.time("queued_at") or now) <= now - STALE_CLAIM:
                stale.append(row)
        started = []
        for period, tenants in sorted(due.items()):
            run_id = new_run_id(now)
            claimed = []
            for tenant in tenants:
                try:
                    self.invoices.create(tenant.tenant_id, period, {
                        "step": Step.QUEUED, "status": "queued", "run_id": run_id, "queued_at": format_instant(now),
                        "client_name": tenant.name})
                except Conflict:
                    continue  # a concurrent run claimed it
                claimed.append(tenant)
            if not claimed:
                continue
            self.runs.create(run_id, period, trigger, now,
                             [RunMember(t.tenant_id, t.name, str(period)) for t in claimed])
            for tenant in claimed:
                self.queues.send(CLOSE_QUEUE, CloseRequest(tenant.tenant_id, str(period), run_id,
                                                           self.runs.member_etag(run_id, tenant.tenant_id)).to_json())
            started.append(RunStarted(run_id, period, [t.tenant_id for t in claimed]))
            names = ", ".join(t.name for t in claimed[:10]) + (f" and {len(claimed) - 10} more" if len(claimed) > 10 else "")
            log.info("Run %s (month-end close of %s, %s) started: queued %s: %s.", run_id, month_label(period), trigger,
                     plural(len(claimed), "client"), names)
        for row in stale:
            self.queues.send(CLOSE_QUEUE, CloseRequest(row.tenant_id, row.period, row.run_id).to_json())
            log.warning("Month-end close of %s for %s: claimed at %s by run %s but never started; queued again.",
                        month_label(Period.parse(row.period)), row.get("client_name") or row.tenant_id,
                        row.get("queued_at"), row.get("run_id"))
        if not started and not stale:
            log.info("Month-end close (%s) at %s: nothing to close; every active client's last ended month "
                     "is closed or being closed.", trigger, format_instant(now))
        return started

    # -- one tenant ----------------------------------------------------------------------------
    async def handle(self, request: CloseRequest, *, attempt: int, max_attempts: int) -> TenantOutcome:
        """A `tenant-close` queue message."""
        return await self.close_tenant(request.tenant_id, Period.parse(request.period), run_id=request.run_id,
                                       attempt=attempt, max_attempts=max_attempts, member_etag=request.member_etag)

    async def close_tenant(self, tenant_id: str, period: Period | str, *, run_id: str | None = None,
                           attempt: int = 1, max_attempts: int = 1, tenant: Tenant | None = None,
                           member_etag: str | None = None) -> TenantOutcome:
        """Runs the close of one tenant's month to the end (resuming after the last step done),
        logs its sentence and counts it on its run. Raises on failure after recording it.
        `tenant`: the client as the caller has just read it (else it is read once, when needed);
        `member_etag`: its run member row's ETag as the run was created (CloseRequest)."""
        period = Period.parse(period) if isinstance(period, str) else period
        attempts = (attempt, max_attempts)
        if run_id is None:
            return await self._close_and_count(tenant_id, period, None, attempts, Known(tenant=tenant), None)
        with self.reports.closing_here(run_id, [tenant_id]):
            return await self._close_and_count(tenant_id, period, run_id, attempts, Known(tenant=tenant), member_etag)

    async def _close_and_count(self, tenant_id: str, period: Period, run_id: str | None, attempts: tuple[int, int],
                               known: Known, member_etag: str | None) -> TenantOutcome:
        attempt, max_attempts = attempts
        try:
            outcome = await self._close(tenant_id, period, run_id, known)
        except Exception as error:
            reason = describe(error)
            final = attempt >= max_attempts
            doing = getattr(error, "_close_step", None)
            name = self._name_of(tenant_id, period)
            where = f" at the {doing} step" if doing else ""
            if final:
                after = f"after {plural(attempt, 'attempt')}" if max_attempts > 1 else "(no retry)"
                sentence = (f"Close of {month_label(period)} for {name} failed{where} {after}: {reason}. "
                            f"Fix the cause, then run ./dev close --period {period} --tenant {tenant_id}.")
            else:
                sentence = (f"Close of {month_label(period)} for {name} failed{where} (attempt {attempt} of "
                            f"{max_attempts}): {reason}. It will be retried.")
            log.error(sentence)
            if final and run_id:
                await self._reconcile_run(self.reports.finish(
                    run_id, TenantOutcome(tenant_id, name, period, FAILED_OUTCOME, sentence, reason=reason), member_etag))
            raise
        if outcome.kind == EMAILED_OUTCOME:
            # By now the close has imported and built all it uses (some 130,000 long-lived objects):
            # out of every full collection, which cost about 80 ms once every ten invoices or so.
            freeze_once("emailed invoice")
        log.info(outcome.sentence)
        outcome.corrections = await self._issue_corrections(tenant_id, period, known)
        if run_id:
            await self._reconcile_run(self.reports.finish(run_id, outcome, member_etag))
        return outcome

    def _correction_rows(self, tenant_id: str, period: str) -> list[InvoiceRecord]:
        """The correcting documents' rows of a client's month (table `documents`)."""
        assert self._corrections is not None
        return self._corrections().documents.of_month(tenant_id, period)

    async def _issue_corrections(self, tenant_id: str, period: Period, known: Known) -> list[JsonObject]:
        """The corrections of the client's earlier invoiced months, issued with this close
        (shared/services/corrections.py), from what the close has read of the client already. A
        failure there is logged and does not undo the invoice; the next close or ./dev invoice
        correct resumes it."""
        if self._corrections is None:
            return []
        try:
            service = self._corrections()
            issued = [o.to_json() for o in await service.correct_tenant(
                tenant_id, closing=period, tenant=known.tenant, invoices=known.history)]
            return issued + [{"sentence": note} for note in service.notes]
        except Exception as error:  # noqa: BLE001 - recorded on the document rows; resumable
            log.error("Corrections for %s with the close of %s failed: %s; ./dev invoice correct --tenant %s "
                      "issues them.", self._name_of(tenant_id, period), month_label(period), describe(error), tenant_id)
            return []

    async def _reconcile_run(self, summary: RunSummary | None) -> None:
        """When a run has just finished: the license reconciliation of every active client, one
        line each in the log, and the findings CSV beside the run's PDFs (the MSP's own report)."""
        if summary is None:
            return
        try:
            results = await self.reconciler.reconcile_all()
            for result in results:
                log.info("Licenses: %s", result.summary_line())
            blob = self.reconciler.store_findings_csv(summary["period"], summary["run_id"], results)
            log.info("Run %s: license reconciliation of %s stored in %s/%s.", summary["run_id"],
                     plural(len(results), "client"), self.archive.container_name, blob)
        except Exception as error:  # noqa: BLE001 - the invoices are out; the check can be redone
            log.error("Run %s: the license reconciliation failed (%s); ./dev reconcile --all runs it again.",
                      summary["run_id"], describe(error))

    def _name_of(self, tenant_id: str, period: Period) -> str:
        try:
            row = self.invoices.get(tenant_id, period)
            if row is not None and row.get("client_name"):
                return str(row["client_name"])
            tenant = self.tenants.get(tenant_id)
            return tenant.name if tenant else tenant_id
        except Exception:  # noqa: BLE001 - only for a message; storage may be what failed
            return tenant_id

    async def _close(self, tenant_id: str, period: Period, run_id: str | None, known: Known) -> TenantOutcome:
        owner = uuid.uuid4().hex
        for _ in range(10):
            # One read of the client's months up to this one: this month's record (where its close
            # stands), and the earlier ones the guardrails and the corrections compare with.
            months = self.invoices.summaries(tenant_id, period)
            known.history = months
            first = next((row for row in months if row.period == str(period)), None)
            if first is not None and first.get("step") not in (Step.QUEUED, *FINISHED_STEPS):
                first = self.invoices.get(tenant_id, period)  # resumed: the frozen invoice is needed
            row = await self.runner.acquire(tenant_id, period, owner, run_id, first, lazy=True)
            until = row.time("review_until")
            if row.get("step") == Step.IN_REVIEW and until is not None and until <= self.now():
                try:  # the review window is over: computed again (late changes land), numbered, sent
                    self.invoices.update(row, {"step": Step.QUEUED, "status": "in progress"})
                except Conflict:
                    pass  # another runner resumed it: acquire waits for it or finds it finished
                row = await self.runner.acquire(tenant_id, period, owner, run_id, lazy=True)
            if row.get("step") in FINISHED_STEPS:
                mine = run_id is not None and row.get("run_id") == run_id
                return outcome_of(row, period, already=not mine)
            work = self.runner.begin(owner, row, known)
            try:
                await self.runner.run(work, self.steps)
            except Raced:
                continue  # another runner computed it first: wait for it (acquire) or find it finished
            outcome = outcome_of(work.row, period, already=False)
            if outcome.kind == EMAILED_OUTCOME and work.document is not None and \
                    work.document.number == outcome.number:
                outcome.invoice = work.document
            return outcome
        raise CloseBusy(f"other closes of this client's {month_label(period)} kept starting")

    @staticmethod
    def _document(work: Attempt) -> InvoiceDocument:
        """The invoice document of the record, unpacked once per attempt (again if renumbered)."""
        if work.document is None or work.document.number != work.row.get("number"):
            work.document = invoice_document(work.row)
        return work.document

    def _tenant(self, work: Attempt) -> Tenant | None:
        """The client of the invoice, read once per close."""
        if work.known.tenant is None or work.known.tenant.tenant_id != work.row.tenant_id:
            work.known.tenant = self.tenants.get(work.row.tenant_id)
        return work.known.tenant

    # -- the steps -----------------------------------------------------------------------------
    async def _compute(self, work: Attempt) -> None:
        tenant_id, period = work.row.tenant_id, Period.parse(work.row.period)
        tenant = self._tenant(work)
        if tenant is None:
            raise TenantNotOnboarded(tenant_id)
        zone = tenant.plan.timezone
        now = self.now()
        end = period.end(zone)
        if now < end:
            raise CloseError(f"{month_label(period)} has not ended yet in {zone} (it ends at "
                             f"{format_instant(end)}); it is closed after that")
        invoice, _ = self.compute(tenant, period, now)
        issued_on = now.astimezone(ZoneInfo(zone)).date()
        due_on = issued_on + timedelta(days=self.settings.integer("INVOICE_PAYMENT_TERMS_DAYS"))
        currency = invoice.currency
        common: dict[str, TableValue] = {
            "client_name": tenant.name, "client_address": json.dumps(list(tenant.address)),
            "locale": tenant.locale, "contacts": json.dumps(list(tenant.billing_contacts)),
            "currency": currency, "subtotal": format_money(invoice.subtotal, currency),
            "tax": format_money(invoice.tax, currency), "total": format_money(invoice.total, currency),
            "tax_rate": str(invoice.plan.tax_rate), "lines": len(invoice.lines), "users": invoice.billable_users,
            "issued_on": issued_on.isoformat(), "due_on": due_on.isoformat(), "computed_at": format_instant(now),
            "client_legal": json.dumps(tenant.legal.to_dict()), "einvoice": tenant.legal.einvoice,
        }
        if invoice.lines and tenant.legal.einvoice:
            # Rule: an e-invoicing client's document must pass EN 16931 before a number is spent on it.
            try:
                self.einvoicing.check_before_numbering(invoice_document(Record(
                    {**common, **pack_invoice(invoice), "number": PENDING_NUMBER}, etag="")))
            except EInvoiceRefused as error:
                raise CloseError(f"not issued: {error}") from None
        review_until = end + timedelta(days=self._review_days())
        if not invoice.lines:
            self.runner.save(work, {**common, "step": Step.NOTHING_TO_BILL, "status": Step.NOTHING_TO_BILL},
                             release=True)
        elif now < review_until:
            # Review window (Lago's grace period): a draft without a number until REVIEW_DAYS after the
            # month; then computed again, so that late changes land, numbered and sent.
            # The resuming message is sent first: if recording the draft fails, the retry sends another.
            until = format_instant(review_until)
            self.queues.send(CLOSE_QUEUE, CloseRequest(tenant_id, str(period)).to_json(),
                             delay_seconds=int((review_until - now).total_seconds()) + 60)
            self.runner.save(work, {**common, **pack_invoice(invoice), "step": Step.IN_REVIEW,
                                    "status": f"draft until {until}", "review_until": until}, release=True)
        else:
            # Rule: numbered with its computation, in one write (storage/numbering.py): a number
            # reserved for a write that never lands goes to the next invoice.
            frozen = {**common, **pack_invoice(invoice), "step": Step.NUMBERED, "status": "in progress",
                      "numbered_at": format_instant(now)}
            self.numbering.reserve(tenant_id, str(period), now, issued_on, lambda seq, number: self.runner.save(
                work, {**frozen, "number": number, "number_seq": seq}, once=True))

    def _review_days(self) -> int:
        days = self.settings.integer("REVIEW_DAYS")
        if not 0 <= days <= 6:  # a queue message waits at most 7 days
            raise CloseError(f"setting REVIEW_DAYS must be 0 to 6, got {days}")
        return days

    async def _number(self, work: Attempt) -> None:
        work.row = self.numbering.assign(work.row.tenant_id, work.row.period, self.now(), work.row)

    async def _render_pdf(self, work: Attempt) -> tuple[bytes, float]:
        from shared.invoicing.pdf_pool import render_pdf_in_pool

        document, brand = self._document(work), self.brand
        began = time.perf_counter()
        pdf = await render_pdf_in_pool(document, brand)  # a worker process per core (pdf_pool.py)
        return pdf, time.perf_counter() - began

    async def _render(self, work: Attempt) -> None:
        pdf, seconds = await self._render_pdf(work)
        work.pdf = pdf  # recorded with the draft: a resumed close renders again (the archive keeps the first)
        work.defer({"step": Step.RENDERED, "rendered_at": format_instant(self.now()), "pdf_bytes": len(pdf),
                    "render_seconds": round(seconds, 3)})

    async def _store(self, work: Attempt) -> None:
        if work.pdf is None:  # resumed after the render was recorded: the bytes were not kept
            work.pdf, _ = await self._render_pdf(work)
        row = work.row
        name = pdf_path(str(row.get("period") or row.period), row.tenant_id, row.number)  # a correction: its month
        stored = self.archive.put_once(name, work.pdf)
        if not stored.created:
            log.info("Invoice %s: the PDF stored by an earlier attempt is kept.", row.number)
        else:
            work.archived_pdf = work.pdf
        # Recorded with the draft (or the hold): the blob is written once, so a retry finds it.
        work.defer({"step": Step.STORED, "stored_at": format_instant(self.now()), "blob": name,
                    "pdf_bytes": stored.size, "pdf_sha256": stored.sha256, **await self._store_ubl(work)})

    async def _store_ubl(self, work: Attempt) -> dict[str, TableValue]:
        """The UBL e-invoice beside the PDF, validated, written once (shared/services/einvoicing.py).
        An e-invoicing client's invalid document fails the step: it is never emailed."""
        row = work.row
        unset = self.einvoicing.unset_settings()
        if unset and not row.get("einvoice"):
            return {"ubl_blob": "", "ubl_skipped": unset}
        try:
            xml = await asyncio.to_thread(self.einvoicing.ubl, self._document(work))
        except EInvoiceRefused as error:
            if row.get("einvoice"):
                raise CloseError(f"not emailed: {error}") from None
            return {"ubl_blob": "", "ubl_skipped": describe(error)}
        name = ubl_path(row.period, row.tenant_id, row.number)
        stored = self.archive.put_once(name, xml, "application/xml")
        if stored.created:
            work.archived_xml = xml
        return {"ubl_blob": name, "ubl_skipped": ""}

    def hold_reason(self, row: InvoiceRecord, work: Attempt | None = None) -> str | None:
        """Why this stored invoice must not be emailed yet (shared/billing/holds.py), or None."""
        if row.get("corrects"):
            return None  # a correcting document (services/corrections.py) is not compared with invoices
        tenant = self._tenant(work) if work is not None else self.tenants.get(row.tenant_id)
        rules = rules_for(self.settings.get, tenant.plan.holds if tenant else {})
        if not rules.enabled:
            return None
        history = work.known.history if work is not None and work.known.history is not None else \
            self.invoices.summaries(row.tenant_id, row.period)
        earlier = [r for r in history if r.period < row.period and r.number]
        previous = _billed(earlier[-1]) if earlier else None
        return hold_reason(_billed(row), previous, rules)

    async def _draft(self, work: Attempt) -> None:
        from shared.invoicing import render_email

        row = work.row
        if not row.get("released_at"):
            reason = self.hold_reason(row, work)
            if reason:
                # Guardrail: numbered, rendered and archived, but not emailed until a person releases it.
                self.runner.save(work, {"step": Step.HELD, "status": "held", "held_at": format_instant(self.now()),
                                        "hold_reason": reason}, release=True)
                return
        contacts = row.contacts
        if not contacts:
            raise CloseError("the client has no billing contact to email the invoice to")
        pdf = work.archived_pdf  # exactly what is archived: what this runner stored, else read back
        if pdf is None:
            pdf = await asyncio.to_thread(self.archive.get, row["blob"])
        subject, html = render_email(self._document(work), self.brand)
        attachments = []
        if row.get("einvoice"):  # the client asked for its e-invoice beside the PDF
            if not row.get("ubl_blob"):
                raise CloseError("the client asked for e-invoices and none was archived; not emailed")
            from shared.graph.gateway import Attachment

            xml = work.archived_xml
            if xml is None:
                xml = await asyncio.to_thread(self.archive.get, row["ubl_blob"])
            attachments.append(Attachment(name=f"{row.number}.xml", content_type="application/xml", data=xml))
        draft_id = await self.mailer.create_draft(subject=subject, html=html, to=contacts,
                                                  pdf_name=f"{row.number}.pdf", pdf=pdf, attachments=attachments)
        self.runner.save(work, {"step": Step.DRAFTED, "drafted_at": format_instant(self.now()), "draft_id": draft_id,
                                "mailbox": self.mailer.mailbox})

    async def _send(self, work: Attempt) -> None:
        row = work.row
        result = await self.mailer.send_once(row["draft_id"])
        if result == "sent before":
            log.info("Invoice %s: its email had been sent by an earlier attempt; recorded as sent, not sent again.",
                     row.number)
        self.runner.save(work, {"step": Step.EMAILED, "status": "done", "emailed_at": format_instant(self.now()),
                                "emailed_to": ", ".join(row.contacts)}, release=True)

    # -- releasing a held invoice ----------------------------------------------------------------
    async def release(self, number: str) -> TenantOutcome:
        """Emails a held invoice (exactly once, however often it is released). Raises
        InvoiceNotFound, or CloseError if the invoice is not held."""
        record = self.invoices.by_number(number)
        if record is None:
            raise InvoiceNotFound(number)
        period = Period.parse(record.period)
        if record.step == Step.EMAILED:
            return self._released_to_the_books(outcome_of(record, period, already=True), record)
        if record.step != Step.HELD and not record.get("released_at"):
            raise CloseError(f"invoice {number} is not held (its close is at the {record.step} step)")
        if record.step == Step.HELD:
            try:
                self.invoices.update(record, {"step": Step.STORED, "status": "released",
                                              "released_at": format_instant(self.now())})
                log.info("Released invoice %s for %s (held: %s); emailing it now.", number,
                         record.get("client_name") or record.tenant_id, record.get("hold_reason"))
            except Conflict:
                pass  # released meanwhile by someone else: the close below finds its state
        outcome = await self.close_tenant(record.tenant_id, period)
        emailed = self.invoices.by_number(number)
        return self._released_to_the_books(outcome, emailed) if emailed and emailed.step == Step.EMAILED else outcome

    def _released_to_the_books(self, outcome: TenantOutcome, record: InvoiceRecord) -> TenantOutcome:
        """A released invoice, once emailed, gets its own Xero and QuickBooks import files (its
        run's files were written without it); the outcome's sentence names them."""
        if not record.get("released_at"):
            return outcome
        files = self.reports.export_released(record)
        log.info("Released invoice %s: Xero and QuickBooks import files %s.", record.number, ", ".join(files))
        return replace(outcome, sentence=f"{outcome.sentence.rstrip('.')}; import files: {', '.join(files)}.")

    # -- runs ----------------------------------------------------------------------------------
    def finish_run(self, run_id: str) -> RunSummary | None:
        return self.reports.finish_run(run_id)

    def run_report(self, run_id: str) -> RunSummary | None:
        return self.reports.run_report(run_id)

    # -- by hand (./dev close) -----------------------------------------------------------------
    async def close_by_hand(self, period: Period, tenant_ids: list[str] | None = None, *, concurrency: int = 1,
                            backdated: bool = False) -> tuple[str | None, list[TenantOutcome], list[str]]:
        """Closes the month for the given tenants (default: every client the timer's rule bills
        for the month, schedule.bills_month) directly, with the same steps and guarantees as the
        queue function. A month that ended before a named tenant was onboarded is billed only
        when `backdated` (the MSP asks for a back-dated start, e.g. after `./dev ledger import`).
        Returns (run id, outcomes, why tenants were skipped)."""
        now = self.now()
        skipped: list[str] = []
        chosen: list[Tenant] = []
        if tenant_ids:
            named = self.tenants.get_many(tenant_ids)
            for tenant_id in tenant_ids:
                tenant = named.get(tenant_id)
                if tenant is None:
                    skipped.append(f"{tenant_id}: not onboarded")
                elif not backdated and tenant.onboarded_at is not None and \
                        tenant.onboarded_at >= period.end(tenant.plan.timezone):
                    skipped.append(f"{tenant.name}: onboarded {format_instant(tenant.onboarded_at)}, after "
                                   f"{month_label(period)} ended (to bill a back-dated start, pass --backdated)")
                else:
                    chosen.append(tenant)
        else:
            chosen = [tenant for tenant in self.tenants.all() if bills_month(tenant, period)]
        ready = []
        for tenant in chosen:
            end = period.end(tenant.plan.timezone)
            if now < end:
                skipped.append(f"{tenant.name}: {month_label(period)} has not ended yet in {tenant.plan.timezone} "
                               f"(it ends at {format_instant(end)})")
            else:
                ready.append(tenant)
        if not ready:
            return None, [], skipped
        run_id = new_run_id(now)
        self.runs.create(run_id, period, "manual", now, [RunMember(t.tenant_id, t.name, str(period)) for t in ready])
        outcomes: list[TenantOutcome] = []
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(tenant: Tenant) -> None:
            async with gate:
                try:
                    outcomes.append(await self.close_tenant(tenant.tenant_id, period, run_id=run_id, tenant=tenant))
                except Exception as error:  # noqa: BLE001 - recorded on the row and in the run
                    outcomes.append(TenantOutcome(tenant.tenant_id, tenant.name, period, FAILED_OUTCOME,
                                                  f"{tenant.name}: failed: {describe(error)}", reason=describe(error)))

        with self.reports.closing_here(run_id, [t.tenant_id for t in ready]):  # each finishes here
            await asyncio.gather(*(one(t) for t in ready))
        return run_id, outcomes, skipped
