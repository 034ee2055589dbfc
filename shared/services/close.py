"""The month-end close: each client's month computed, numbered, rendered, archived and emailed,
exactly once, and a report of each run.

When a month is closed (the rule the timers follow)
  A client's month is closed only once it has ended in the client's own time zone. The
  `month_end` timer (MONTH_END_SCHEDULE, 06:00 UTC on the 1st) and the `month_end_catch_up`
  timer (MONTH_END_CATCHUP_SCHEDULE, hourly on the 1st and 2nd) both do the same: for every
  active client, take the most recent month that has ended in its zone; if the client was
  onboarded before that month ended and the month has no invoice row yet, claim the row and
  queue the client. So a client at UTC+14 (its October ends at 10:00 UTC on 31 October) is
  closed by the 06:00 run on the 1st, and one at UTC-11 (October ends at 11:00 UTC on
  1 November) is left alone by that run and closed by the catch-up at 11:15. Claimed rows that
  were never started 30 minutes later (a lost message) are queued again.

The steps of one client's close (the `tenant-close` queue function, or `./dev close`)
  compute -> number -> render -> store -> draft -> send, each recorded with its time on the
  invoice row (shared/invoicing/store.py) under a lease, so a retry resumes after the last step
  done and two runners never work on one invoice at once:
  * compute: the core invoice from the ledger's month (`read_month`), frozen in the row;
    the invoice date is the client's local date at that moment, the due date INVOICE_PAYMENT_
    TERMS_DAYS later. A month with no billable line is recorded as "nothing to bill": no
    number, no PDF, no email (an empty invoice is noise to an accountant; a number must not be
    spent on it).
  * number: gap-free, increasing per MSP (shared/invoicing/numbering.py).
  * render: the PDF (invoice_v1). store: the PDF in Blob Storage, written once
    (`{period}/{tenant_id}/{number}.pdf`).
  * draft + send: the email with the stored PDF, sent at most once (shared/services/mailing.py).
  A failure records "failed: <reason>" on the row and is raised, so that the queue retries it
  (five times, then the poison queue); the last failure is counted as the tenant's outcome in
  its run.

Runs
  Every timer run and every `./dev close` is a run (shared/invoicing/store.py). Each tenant logs
  one plain sentence when it finishes; the tenant that finishes a run last writes the run's CSV
  (every line of the invoices the run emailed, `{period}/invoice-lines-{run_id}.csv`) and logs
  and stores the run's summary.

Preview
  The same computation for any month that has started. For a month that has ended, the preview
  is the invoice the close issues (equal to it unless the ledger learned something since). For
  the current month it is the month to date: the days that have ended so far, each priced as in
  the full month (days / days in the month), as if every user left now; the days still to come
  are not counted.
"""
from __future__ import annotations

import asyncio
import calendar
import json
import logging
import secrets
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from shared.app import CLOSE_QUEUE
from shared.billing import Invoice, Observation, Period, compute_invoice
from shared.billing.money import format_money
from shared.billing.observations import format_instant
from shared.storage.archive import InvoiceArchive, csv_path, pdf_path
from shared.storage.invoices import (
    COMPUTED, DRAFTED, EMAILED, FINISHED_STEPS, NOTHING_TO_BILL, NUMBERED, QUEUED, RENDERED, STORED,
    Conflict, InvoiceStore, Row, RunMember, RunStore, pack_invoice, unpack_invoice,
)

log = logging.getLogger("prorata.close")

LEASE_TTL = timedelta(minutes=5)   # a runner renews it at every step; a dead runner's lease expires
BUSY_WAIT_SECONDS = 90.0           # how long a runner waits for another runner of the same invoice
STALE_CLAIM = timedelta(minutes=30)  # a claimed row never started after this is queued again

# The step each recorded step leads to, and its name in reports.
NEXT_STEP = {QUEUED: "compute", COMPUTED: "number", NUMBERED: "render", RENDERED: "store",
             STORED: "draft", DRAFTED: "send"}

EMAILED_OUTCOME, NOTHING_OUTCOME, ALREADY_OUTCOME, FAILED_OUTCOME = (
    "emailed", "nothing to bill", "already closed", "failed")


class CloseError(RuntimeError):
    """A close that cannot go on, with the reason in plain words."""


class CloseBusy(CloseError):
    """Another runner is closing the same client and month right now."""


class LeaseLost(CloseError):
    """This runner's lease expired and another runner took the invoice over."""


# --------------------------------------------------------------------------- small helpers

def month_label(period: Period) -> str:
    return f"{calendar.month_name[period.month]} {period.year}"


def last_ended_month(zone: str, now: datetime) -> Period:
    """The most recent month that has ended in the zone at `now`."""
    local = now.astimezone(ZoneInfo(zone))
    return Period(local.year, local.month).previous()


def month_to_date(observations: Iterable[Observation], as_of: datetime) -> list[Observation]:
    """The observations as they stand at `as_of`, with every user leaving at `as_of`: so the
    core counts exactly the days that have ended by then (a day counts when the item is held at
    its last moment, which for a day still running has not come)."""
    kept = [o for o in observations if o.at <= as_of]
    last: dict[str, Observation] = {}
    for observation in sorted(kept, key=lambda o: o.at):
        last[observation.user_id] = observation
    return kept + [replace(state, at=as_of, deleted=True) for state in last.values() if not state.deleted]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _money(amount: Decimal | str, currency: str) -> str:
    return f"{currency} {Decimal(amount):,}"


def describe(error: BaseException) -> str:
    """An error as a short reason for a person."""
    from shared.graph.gateway import GraphError

    if isinstance(error, (CloseError, GraphError)):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= 300 else text[:297] + "..."


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass
class TenantOutcome:
    tenant_id: str
    name: str
    period: Period
    kind: str  # emailed, nothing to bill, already closed, failed
    sentence: str
    users: int = 0
    lines: int = 0
    currency: str = ""
    total: str = ""
    number: str = ""
    emailed_to: str = ""
    reason: str = ""

    def member_fields(self, now: datetime) -> dict[str, Any]:
        return {"outcome": self.kind, "sentence": self.sentence, "users": self.users, "lines": self.lines,
                "currency": self.currency, "total": self.total, "number": self.number,
                "emailed_to": self.emailed_to, "reason": self.reason, "finished_at": format_instant(now)}


@dataclass
class _Attempt:
    """What one runner knows while it works on one invoice."""
    owner: str
    row: Row
    pdf: bytes | None = None
    doing: str = "compute"


@dataclass
class RunStarted:
    run_id: str
    period: Period
    tenants: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the service

class CloseService:
    """The close of one MSP's clients. `after_step(step)` is called after each step is recorded
    (a seam for observing or interrupting the steps; None in production)."""

    def __init__(self, app: Any, *, graph: Any = None, after_step: Callable[[str], None] | None = None,
                 lease_ttl: timedelta = LEASE_TTL, busy_wait: float = BUSY_WAIT_SECONDS):
        self.app = app
        self.settings = app.settings
        self.now = app.now
        self.invoices = InvoiceStore(app.storage)
        self.runs = RunStore(app.storage)
        self.archive = InvoiceArchive(app.storage, self.settings.get("INVOICE_CONTAINER"))
        self._graph = graph
        self._after_step = after_step
        self.lease_ttl, self.busy_wait = lease_ttl, busy_wait
        self._numbering = self._brand = self._mailer = None

    # -- collaborators built on first use (a preview needs none of them) ----------------------
    @property
    def numbering(self):
        if self._numbering is None:
            from shared.storage.numbering import InvoiceNumbering

            self._numbering = InvoiceNumbering(self.app.storage, self.invoices,
                                               template=self.settings.get("INVOICE_NUMBER_FORMAT"),
                                               prefix=self.settings.get("INVOICE_NUMBER_PREFIX") or "")
        return self._numbering

    @property
    def brand(self):
        if self._brand is None:
            from shared.invoicing import Brand

            self._brand = Brand.from_settings(self.settings)
        return self._brand

    @property
    def mailer(self):
        if self._mailer is None:
            from shared.services.mailing import InvoiceMailer, MailSettings

            self._mailer = InvoiceMailer(self._graph if self._graph is not None else self.app.graph,
                                         MailSettings.from_settings(self.settings))
        return self._mailer

    # -- computing (close and preview) ---------------------------------------------------------
    def compute(self, tenant: Any, period: Period, as_of: datetime) -> tuple[Invoice, bool]:
        """The invoice of the tenant's month as of `as_of`, and whether it is month to date."""
        zone = tenant.plan.timezone
        if as_of < period.start(zone):
            raise CloseError(f"{month_label(period)} has not started yet in {zone}")
        observations = self.app.ledger.read_month(tenant.tenant_id, period, zone).observations
        to_date = as_of < period.end(zone)
        # Rule: a client offboarded during the month is billed up to the offboarding, as if every
        # user left then; a month under way is billed for the days ended so far.
        cut = min(as_of, tenant.offboarded_at or as_of)
        if cut < period.end(zone):
            observations = month_to_date(observations, cut)
        return compute_invoice(tenant.plan, observations, period), to_date

    def preview(self, tenant_id: str, period: Period) -> dict[str, Any]:
        """The invoice JSON of a month that has started (month to date for the current one),
        with `as_of`, `month_to_date` and the close's state of that month (`close`, or None)."""
        tenant = self.app.tenants.get(tenant_id)
        if tenant is None:
            raise LookupError(f"tenant {tenant_id} is not onboarded")
        now = self.now()
        invoice, to_date = self.compute(tenant, period, now)
        data = invoice.to_json()
        data["as_of"] = format_instant(now)
        data["month_to_date"] = to_date
        row = self.invoices.get(tenant_id, period)
        data["close"] = None if row is None else {
            "step": row.get("step"), "status": row.get("status"), "number": row.get("number"),
            "total": row.get("total"), "emailed_at": row.get("emailed_at")}
        return data

    # -- the timers: which tenants to close, and fanning out -----------------------------------
    def start_month_end(self, trigger: str = "timer") -> list[RunStarted]:
        """Claims and queues every tenant whose last ended month is not closed yet, active or
        offboarded during that month (see the module's doc); one run per period. Returns the
        runs started."""
        now = self.now()
        due: dict[Period, list[Any]] = defaultdict(list)
        stale: list[Row] = []
        for tenant in self.app.tenants.all():
            zone = tenant.plan.timezone
            period = last_ended_month(zone, now)
            if tenant.onboarded_at is not None and tenant.onboarded_at >= period.end(zone):
                continue  # onboarded after that month: none of it is the MSP's to bill
            if tenant.status != "active" and (tenant.offboarded_at is None or tenant.offboarded_at <= period.start(zone)):
                continue  # offboarded before that month began: nothing more to bill
            row = self.invoices.get(tenant.tenant_id, period)
            if row is None:
                due[period].append(tenant)
            elif row.get("status") == "queued" and not self._leased(row, now) and \
                    (row.time("queued_at") or now) <= now - STALE_CLAIM:
                stale.append(row)
        started = []
        for period, tenants in sorted(due.items()):
            run_id = new_run_id(now)
            claimed = []
            for tenant in tenants:
                try:
                    self.invoices.create(tenant.tenant_id, period, {
                        "step": QUEUED, "status": "queued", "run_id": run_id, "queued_at": format_instant(now),
                        "client_name": tenant.name})
                except Conflict:
                    continue  # a concurrent run claimed it
                claimed.append(tenant)
            if not claimed:
                continue
            self.runs.create(run_id, period, trigger, now,
                             [RunMember(t.tenant_id, t.name, str(period)) for t in claimed])
            for tenant in claimed:
                self.app.enqueue(CLOSE_QUEUE, {"tenant_id": tenant.tenant_id, "period": str(period), "run_id": run_id})
            started.append(RunStarted(run_id, period, [t.tenant_id for t in claimed]))
            names = ", ".join(t.name for t in claimed[:10]) + (f" and {len(claimed) - 10} more" if len(claimed) > 10 else "")
            log.info("Run %s (month-end close of %s, %s) started: queued %s: %s.", run_id, month_label(period), trigger,
                     _plural(len(claimed), "client"), names)
        for row in stale:
            self.app.enqueue(CLOSE_QUEUE, {"tenant_id": row["PartitionKey"], "period": row["RowKey"],
                                           "run_id": row.get("run_id", "")})
            log.warning("Month-end close of %s for %s: claimed at %s by run %s but never started; queued again.",
                        month_label(Period.parse(row["RowKey"])), row.get("client_name") or row["PartitionKey"],
                        row.get("queued_at"), row.get("run_id"))
        if not started and not stale:
            log.info("Month-end close (%s) at %s: nothing to close; every active client's last ended month "
                     "is closed or being closed.", trigger, format_instant(now))
        return started

    # -- one tenant ----------------------------------------------------------------------------
    async def close_tenant(self, tenant_id: str, period: Period | str, *, run_id: str | None = None,
                           attempt: int = 1, max_attempts: int = 1) -> TenantOutcome:
        """Runs the close of one tenant's month to the end (resuming after the last step done),
        logs its sentence and counts it on its run. Raises on failure after recording it."""
        period = Period.parse(period) if isinstance(period, str) else period
        try:
            outcome = await self._close(tenant_id, period, run_id)
        except Exception as error:
            reason = describe(error)
            final = attempt >= max_attempts
            doing = getattr(error, "_close_step", None)
            name = self._name_of(tenant_id, period)
            where = f" at the {doing} step" if doing else ""
            if final:
                after = f"after {_plural(attempt, 'attempt')}" if max_attempts > 1 else "(no retry)"
                sentence = (f"Close of {month_label(period)} for {name} failed{where} {after}: {reason}. "
                            f"Fix the cause, then run ./dev close --period {period} --tenant {tenant_id}.")
            else:
                sentence = (f"Close of {month_label(period)} for {name} failed{where} (attempt {attempt} of "
                            f"{max_attempts}): {reason}. It will be retried.")
            log.error(sentence)
            if final and run_id:
                await self._reconcile_run(self._finish(
                    run_id, TenantOutcome(tenant_id, name, period, FAILED_OUTCOME, sentence, reason=reason)))
            raise
        log.info(outcome.sentence)
        if run_id:
            await self._reconcile_run(self._finish(run_id, outcome))
        return outcome

    async def _reconcile_run(self, summary: dict[str, Any] | None) -> None:
        """When a run has just finished: the license reconciliation of every active client, one
        line each in the log, and the findings CSV beside the run's PDFs (the MSP's own report)."""
        if summary is None:
            return
        from shared.services.reconcile import reconcile_all, store_findings_csv

        try:
            results = await reconcile_all(self.app)
            for result in results:
                log.info("Licenses: %s", result.summary_line())
            blob = store_findings_csv(self.app, summary["period"], summary["run_id"], results)
            log.info("Run %s: license reconciliation of %s stored in %s/%s.", summary["run_id"],
                     _plural(len(results), "client"), self.archive.container_name, blob)
        except Exception as error:  # noqa: BLE001 - the invoices are out; the check can be redone
            log.error("Run %s: the license reconciliation failed (%s); ./dev reconcile --all runs it again.",
                      summary["run_id"], describe(error))

    def _name_of(self, tenant_id: str, period: Period) -> str:
        try:
            row = self.invoices.get(tenant_id, period)
            if row is not None and row.get("client_name"):
                return row["client_name"]
            tenant = self.app.tenants.get(tenant_id)
            return tenant.name if tenant else tenant_id
        except Exception:  # noqa: BLE001 - only for a message; storage may be what failed
            return tenant_id

    async def _close(self, tenant_id: str, period: Period, run_id: str | None) -> TenantOutcome:
        owner = uuid.uuid4().hex
        row = await self._acquire(tenant_id, period, owner, run_id)
        if row.get("step") in FINISHED_STEPS:
            mine = run_id is not None and row.get("run_id") == run_id
            return self._outcome(row, period, already=not mine)
        work = _Attempt(owner, row)
        try:
            while work.row.get("step") not in FINISHED_STEPS:
                step = work.row.get("step")
                work.doing = NEXT_STEP[step]
                if step == QUEUED:
                    await self._compute(work, tenant_id, period)
                elif step == COMPUTED:
                    work.row = self.numbering.assign(tenant_id, str(period), self.now())
                elif step == NUMBERED:
                    await self._render(work)
                elif step == RENDERED:
                    await self._store(work)
                elif step == STORED:
                    await self._draft(work)
                elif step == DRAFTED:
                    await self._send(work)
                if self._after_step is not None:
                    self._after_step(work.doing)
        except Exception as error:
            error._close_step = work.doing  # type: ignore[attr-defined]
            self._record_failure(work, error)
            raise
        return self._outcome(work.row, period, already=False)

    async def _acquire(self, tenant_id: str, period: Period, owner: str, run_id: str | None) -> Row:
        """The invoice row with this runner's lease on it (created if there is none), or the
        finished row. Waits while another runner's lease is live."""
        deadline = time.monotonic() + self.busy_wait
        while True:
            now = self.now()
            lease = {"lease_owner": owner, "lease_until": format_instant(now + self.lease_ttl)}
            row = self.invoices.get(tenant_id, period)
            if row is None:
                try:
                    return self.invoices.create(tenant_id, period, {
                        "step": QUEUED, "status": "in progress", "run_id": run_id or "",
                        "queued_at": format_instant(now), "attempts": 1, **lease})
                except Conflict:
                    continue
            if row.get("step") in FINISHED_STEPS:
                return row
            if self._leased(row, now) and row.get("lease_owner") != owner:
                if time.monotonic() >= deadline:
                    raise CloseBusy(f"another close of this client's {month_label(period)} is running "
                                    f"(lease until {row.get('lease_until')})")
                await asyncio.sleep(0.2)
                continue
            try:
                return self.invoices.update(row, {**lease, "status": "in progress",
                                                  "run_id": run_id or row.get("run_id", ""),
                                                  "attempts": int(row.get("attempts", 0)) + 1})
            except Conflict:
                continue

    def _leased(self, row: Row, now: datetime) -> bool:
        until = row.time("lease_until")
        return bool(row.get("lease_owner")) and until is not None and until > now

    def _save(self, work: _Attempt, changes: dict[str, Any], *, release: bool = False) -> Row:
        """Records a step on the row under this runner's lease (renewed, or released at the end)."""
        now = self.now()
        lease = {"lease_owner": "", "lease_until": ""} if release else \
            {"lease_owner": work.owner, "lease_until": format_instant(now + self.lease_ttl)}
        for _ in range(10):
            try:
                work.row = self.invoices.update(work.row, {**changes, **lease})
                return work.row
            except Conflict:
                current = self.invoices.get(work.row["PartitionKey"], work.row["RowKey"])
                if current is None or current.get("lease_owner") != work.owner:
                    raise LeaseLost("this runner's lease expired and another runner took the invoice over") from None
                work.row = current  # something else changed on the row (not the lease): write again
        raise CloseError("the invoice row kept changing under this runner")

    def _record_failure(self, work: _Attempt, error: BaseException) -> None:
        if isinstance(error, LeaseLost):
            return  # the row is the other runner's now
        try:
            self._save(work, {"status": f"failed: {describe(error)}", "last_error": describe(error),
                              "failed_at": format_instant(self.now()), "failed_step": work.doing}, release=True)
        except Exception as inner:  # noqa: BLE001 - the original error is the one to raise
            log.warning("Could not record the failure on invoice row %s/%s: %s", work.row["PartitionKey"],
                        work.row["RowKey"], describe(inner))

    # -- the steps -----------------------------------------------------------------------------
    async def _compute(self, work: _Attempt, tenant_id: str, period: Period) -> None:
        tenant = self.app.tenants.get(tenant_id)
        if tenant is None:
            raise CloseError(f"tenant {tenant_id} is not onboarded")
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
        common = {
            "client_name": tenant.name, "client_address": json.dumps(list(tenant.address)),
            "locale": tenant.locale, "contacts": json.dumps(list(tenant.billing_contacts)),
            "currency": currency, "subtotal": format_money(invoice.subtotal, currency),
            "tax": format_money(invoice.tax, currency), "total": format_money(invoice.total, currency),
            "tax_rate": str(invoice.plan.tax_rate), "lines": len(invoice.lines), "users": invoice.billable_users,
            "issued_on": issued_on.isoformat(), "due_on": due_on.isoformat(), "computed_at": format_instant(now),
        }
        if not invoice.lines:
            self._save(work, {**common, "step": NOTHING_TO_BILL, "status": NOTHING_TO_BILL}, release=True)
        else:
            self._save(work, {**common, **pack_invoice(invoice), "step": COMPUTED, "status": "in progress"})

    def document(self, row: Row):
        """The InvoiceDocument of a numbered invoice row."""
        from shared.invoicing import InvoiceDocument

        contacts = json.loads(row.get("contacts", "[]"))
        return InvoiceDocument(invoice=unpack_invoice(row), number=row["number"],
                               issued_on=date.fromisoformat(row["issued_on"]), due_on=date.fromisoformat(row["due_on"]),
                               client_name=row["client_name"], client_address=tuple(json.loads(row.get("client_address", "[]"))),
                               locale=row.get("locale", "en_US"), client_email=contacts[0] if contacts else "")

    async def _render_pdf(self, work: _Attempt) -> tuple[bytes, float]:
        from shared.invoicing import render_pdf

        document, brand = self.document(work.row), self.brand
        began = time.perf_counter()
        pdf = await asyncio.to_thread(render_pdf, document, brand)
        return pdf, time.perf_counter() - began

    async def _render(self, work: _Attempt) -> None:
        pdf, seconds = await self._render_pdf(work)
        work.pdf = pdf
        self._save(work, {"step": RENDERED, "rendered_at": format_instant(self.now()), "pdf_bytes": len(pdf),
                          "render_seconds": round(seconds, 3)})

    async def _store(self, work: _Attempt) -> None:
        if work.pdf is None:  # resumed after the render was recorded: the bytes were not kept
            work.pdf, _ = await self._render_pdf(work)
        row = work.row
        name = pdf_path(row["RowKey"], row["PartitionKey"], row["number"])
        stored = await asyncio.to_thread(self.archive.put_once, name, work.pdf)
        if not stored.created:
            log.info("Invoice %s: the PDF stored by an earlier attempt is kept.", row["number"])
        self._save(work, {"step": STORED, "stored_at": format_instant(self.now()), "blob": name,
                          "pdf_bytes": stored.size, "pdf_sha256": stored.sha256})

    async def _draft(self, work: _Attempt) -> None:
        from shared.invoicing import render_email

        row = work.row
        contacts = json.loads(row.get("contacts", "[]"))
        if not contacts:
            raise CloseError("the client has no billing contact to email the invoice to")
        pdf = await asyncio.to_thread(self.archive.get, row["blob"])  # exactly what is archived
        subject, html = render_email(self.document(row), self.brand)
        draft_id = await self.mailer.create_draft(subject=subject, html=html, to=contacts,
                                                  pdf_name=f"{row['number']}.pdf", pdf=pdf)
        self._save(work, {"step": DRAFTED, "drafted_at": format_instant(self.now()), "draft_id": draft_id,
                          "mailbox": self.mailer.mail.mailbox})

    async def _send(self, work: _Attempt) -> None:
        row = work.row
        result = await self.mailer.send_once(row["draft_id"])
        if result == "sent before":
            log.info("Invoice %s: its email had been sent by an earlier attempt; recorded as sent, not sent again.",
                     row["number"])
        self._save(work, {"step": EMAILED, "status": "done", "emailed_at": format_instant(self.now()),
                          "emailed_to": ", ".join(json.loads(row.get("contacts", "[]")))}, release=True)

    # -- outcomes and runs ---------------------------------------------------------------------
    def _outcome(self, row: Row, period: Period, *, already: bool) -> TenantOutcome:
        name = row.get("client_name") or row["PartitionKey"]
        label = month_label(period)
        users, lines = int(row.get("users", 0)), int(row.get("lines", 0))
        currency, total = row.get("currency", ""), row.get("total", "")
        common = dict(tenant_id=row["PartitionKey"], name=name, period=period, users=users, lines=lines,
                      currency=currency, total=total)
        if row.get("step") == NOTHING_TO_BILL:
            sentence = (f"{label} for {name} was closed before: nothing to bill." if already else
                        f"Closed {label} for {name}: nothing to bill (no user held a billed item on any day), "
                        "so no invoice was issued or emailed.")
            return TenantOutcome(**common, kind=ALREADY_OUTCOME if already else NOTHING_OUTCOME, sentence=sentence)
        number, to = row.get("number", ""), row.get("emailed_to", "")
        if already:
            sentence = (f"{label} for {name} was closed before: invoice {number} "
                        f"({_money(total, currency)}) emailed at {row.get('emailed_at')}.")
            return TenantOutcome(**common, kind=ALREADY_OUTCOME, sentence=sentence, number=number, emailed_to=to)
        taxed = " incl. tax" if Decimal(row.get("tax_rate", "0") or "0") else ""
        sentence = (f"Closed {label} for {name}: {_plural(users, 'user')}, {_plural(lines, 'line')}, "
                    f"{_money(total, currency)}{taxed}, invoice {number} emailed to {to}")
        return TenantOutcome(**common, kind=EMAILED_OUTCOME, sentence=sentence, number=number, emailed_to=to)

    def _finish(self, run_id: str, outcome: TenantOutcome) -> dict[str, Any] | None:
        """Counts the outcome on its run; returns the run's summary if this finished the run."""
        try:
            progress = self.runs.finish_member(run_id, outcome.tenant_id, outcome.member_fields(self.now()),
                                               failed=outcome.kind == FAILED_OUTCOME)
            if progress is None:
                log.warning("Run %s has no record of %s; its outcome is logged above but not counted.",
                            run_id, outcome.name)
                return None
            if progress.complete and not progress.header.get("finished_at"):
                return self.finish_run(run_id)
        except Exception as error:  # noqa: BLE001 - the invoice is done; the report can be redone
            log.error("Run %s: could not record the outcome of %s (%s); ./dev close --report %s shows the run.",
                      run_id, outcome.name, describe(error), run_id)
        return None

    def finish_run(self, run_id: str) -> dict[str, Any] | None:
        """Writes the run's CSV and stores and logs its summary, once every tenant of the run has
        finished (again if a finisher died in between). Returns the summary, or None while the
        run is still going."""
        header = self.runs.header(run_id)
        if header is None:
            return None
        done = self.runs.summary(header)
        if done is not None:
            return done
        if int(header.get("finished", 0)) < int(header.get("tenants_queued", 0)):
            return None
        members = self.runs.members(run_id)
        period = Period.parse(header["period"])
        documents, invoices = [], []
        for member in members:
            if member.get("outcome") != EMAILED_OUTCOME:
                continue
            row = self.invoices.get(member["tenant_id"], member.get("period") or period)
            if row is None or not row.get("number"):
                continue
            documents.append(self.document(row))
            invoices.append({"tenant_id": member["tenant_id"], "name": member.get("name"), "number": row["number"],
                             "currency": row.get("currency"), "total": row.get("total"), "users": int(row.get("users", 0)),
                             "lines": int(row.get("lines", 0))})
        csv_name = None
        if documents:
            from shared.invoicing import invoice_lines_csv

            csv_name = csv_path(str(period), run_id)
            self.archive.put(csv_name, invoice_lines_csv(documents), "text/csv; charset=utf-8")
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for invoice in invoices:
            totals[invoice["currency"]] += Decimal(invoice["total"])
        count = defaultdict(int)
        for member in members:
            count[member.get("outcome") or "pending"] += 1
        now = self.now()
        summary = {
            "run_id": run_id, "period": str(period), "trigger": header.get("trigger"), "started": header.get("started"),
            "finished_at": format_instant(now), "tenants": len(members), "emailed": count[EMAILED_OUTCOME],
            "nothing_to_bill": count[NOTHING_OUTCOME], "already_closed": count[ALREADY_OUTCOME],
            "failed": count[FAILED_OUTCOME], "seats": sum(i["users"] for i in invoices),
            "totals": {c: format_money(t, c) for c, t in sorted(totals.items())},
            "invoices": sorted(invoices, key=lambda i: i["number"]),
            "failures": [{"tenant_id": m["tenant_id"], "name": m.get("name"), "reason": m.get("reason")}
                         for m in members if m.get("outcome") == FAILED_OUTCOME],
            "csv": f"{self.archive.container_name}/{csv_name}" if csv_name else None,
        }
        if self.runs.record_summary(header, summary, now):
            log.info(summary_text(summary))
            return summary
        stored = self.runs.header(run_id)
        return (self.runs.summary(stored) if stored else None) or summary

    def run_report(self, run_id: str) -> dict[str, Any] | None:
        """The run's summary if it has finished, else its progress so far."""
        header = self.runs.header(run_id)
        if header is None:
            return None
        done = self.runs.summary(header)
        if done is not None:
            return done
        members = self.runs.members(run_id)
        return {"run_id": run_id, "period": header.get("period"), "trigger": header.get("trigger"),
                "started": header.get("started"), "tenants": int(header.get("tenants_queued", 0)),
                "finished": int(header.get("finished", 0)),
                "pending": [m.get("name") or m["tenant_id"] for m in members if not m.get("outcome")]}

    # -- by hand (./dev close) -----------------------------------------------------------------
    async def close_by_hand(self, period: Period, tenant_ids: list[str] | None = None, *,
                            concurrency: int = 1) -> tuple[str | None, list[TenantOutcome], list[str]]:
        """Closes the month for the given tenants (default: every active tenant onboarded before
        the month ended) directly, with the same steps and guarantees as the queue function.
        Returns (run id, outcomes, why tenants were skipped)."""
        now = self.now()
        skipped: list[str] = []
        chosen = []
        if tenant_ids:
            for tenant_id in tenant_ids:
                tenant = self.app.tenants.get(tenant_id)
                if tenant is None:
                    skipped.append(f"{tenant_id}: not onboarded")
                else:
                    chosen.append(tenant)
        else:
            for tenant in self.app.tenants.all(active_only=True):
                if tenant.onboarded_at is not None and tenant.onboarded_at >= period.end(tenant.plan.timezone):
                    continue
                chosen.append(tenant)
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

        async def one(tenant) -> None:
            async with gate:
                try:
                    outcomes.append(await self.close_tenant(tenant.tenant_id, period, run_id=run_id))
                except Exception as error:  # noqa: BLE001 - recorded on the row and in the run
                    outcomes.append(TenantOutcome(tenant.tenant_id, tenant.name, period, FAILED_OUTCOME,
                                                  f"{tenant.name}: failed: {describe(error)}", reason=describe(error)))

        await asyncio.gather(*(one(t) for t in ready))
        return run_id, outcomes, skipped


def summary_text(summary: dict[str, Any]) -> str:
    """A run's summary in one paragraph of plain words."""
    period = Period.parse(summary["period"])
    parts = [f"Run {summary['run_id']} (month-end close of {month_label(period)}, {summary.get('trigger')}): "
             f"{_plural(summary['tenants'], 'client')}; {_plural(summary['emailed'], 'invoice')} emailed"]
    if summary.get("nothing_to_bill"):
        parts.append(f", {summary['nothing_to_bill']} with nothing to bill")
    if summary.get("already_closed"):
        parts.append(f", {summary['already_closed']} closed before")
    parts.append(f", {summary['failed']} failed; {_plural(summary['seats'], 'seat')} billed")
    totals = summary.get("totals") or {}
    parts.append("; totals " + ", ".join(_money(t, c) for c, t in totals.items()) if totals else "; nothing invoiced")
    if summary.get("csv"):
        parts.append(f"; invoice lines in {summary['csv']}")
    parts.append(".")
    failures = summary.get("failures", [])
    for failure in failures[:20]:
        parts.append(f" Failed: {failure.get('name') or failure['tenant_id']}: {failure.get('reason')}.")
    if len(failures) > 20:
        parts.append(f" And {len(failures) - 20} more failures: ./dev close --report {summary['run_id']} lists them.")
    return "".join(parts)


async def handle_close_message(app: Any, message: dict[str, Any], *, attempt: int, max_attempts: int) -> TenantOutcome:
    """A `tenant-close` queue message: {"tenant_id", "period", "run_id"}."""
    tenant_id, period = message.get("tenant_id"), message.get("period")
    if not isinstance(tenant_id, str) or not tenant_id or not isinstance(period, str):
        raise ValueError(f"close message without tenant_id and period: {message!r}")
    service = CloseService(app)
    return await service.close_tenant(tenant_id, Period.parse(period), run_id=message.get("run_id") or None,
                                      attempt=attempt, max_attempts=max_attempts)
