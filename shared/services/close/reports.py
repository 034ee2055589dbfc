"""What a close tells people: each client's outcome in one sentence, and each run's report.

Every timer run and every `./dev close` is a run (shared/storage/invoices.py, table `runs`).
Each tenant logs one plain sentence when it finishes; the tenant that finishes a run last writes
the run's Xero and QuickBooks Online import files (the invoices the run emailed and the correcting
documents it issued; per currency `{period}/xero-invoices-{run_id}-{CUR}.csv`,
`{period}/xero-credit-notes-...` for Xero's credit-note import, `{period}/quickbooks-invoices-...`
without credit notes) and logs
and stores the run's summary.
"""
from __future__ import annotations

import calendar
import json
import logging
import secrets
import threading
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from shared.billing import Period
from shared.billing.money import format_money
from shared.billing.observations import format_instant
from shared.errors import ProrataError
from shared.invoicing.steps import Step
from shared.kept import Kept
from shared.ports import Archive, Clock, InvoiceRepository, RunRepository, RunSummary
from shared.storage.invoices import document_fields, invoice_document
from shared.storage.records import InvoiceRecord, Record, TableValue

if TYPE_CHECKING:  # pragma: no cover
    from shared.invoicing.document import InvoiceDocument

log = logging.getLogger("prorata.close")


class Outcome(StrEnum):
    """How one client's close ended, as counted on its run."""
    EMAILED = "emailed"
    NOTHING_TO_BILL = "nothing to bill"
    ALREADY_CLOSED = "already closed"
    FAILED = "failed"
    HELD = "held"
    IN_REVIEW = "in review"


EMAILED_OUTCOME, NOTHING_OUTCOME, ALREADY_OUTCOME, FAILED_OUTCOME, HELD_OUTCOME = (
    Outcome.EMAILED, Outcome.NOTHING_TO_BILL, Outcome.ALREADY_CLOSED, Outcome.FAILED, Outcome.HELD)


def month_label(period: Period) -> str:
    return f"{calendar.month_name[period.month]} {period.year}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def money(amount: Decimal | str, currency: str) -> str:
    return f"{currency} {Decimal(amount):,}"


def describe(error: BaseException) -> str:
    """An error as a short reason for a person."""
    from shared.graph.gateway import GraphError

    if isinstance(error, (ProrataError, GraphError)):
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
    kind: Outcome
    sentence: str
    users: int = 0
    lines: int = 0
    currency: str = ""
    total: str = ""
    number: str = ""
    emailed_to: str = ""
    reason: str = ""
    corrections: list[dict[str, Any]] = field(default_factory=list)  # documents issued with this close
    document: dict[str, TableValue] = field(default_factory=dict)  # an emailed invoice: for the run's files
    invoice: InvoiceDocument | None = None  # that invoice's document, as its close unpacked it (not stored)

    def member_fields(self, now: datetime) -> dict[str, TableValue]:
        return {**self.document, "outcome": str(self.kind), "sentence": self.sentence, "users": self.users,
                "lines": self.lines, "currency": self.currency, "total": self.total, "number": self.number,
                "emailed_to": self.emailed_to, "reason": self.reason, "finished_at": format_instant(now),
                "corrections": json.dumps(self.corrections)}


def outcome_of(row: Record, period: Period, *, already: bool) -> TenantOutcome:
    """The outcome of a finished invoice record: emailed, nothing to bill, or closed before."""
    name = row.get("client_name") or row["PartitionKey"]
    label = month_label(period)
    users, lines = int(row.get("users", 0)), int(row.get("lines", 0))
    currency, total = row.get("currency", ""), row.get("total", "")
    common: dict[str, Any] = dict(tenant_id=row["PartitionKey"], name=name, period=period, users=users, lines=lines,
                                  currency=currency, total=total)
    if row.get("step") == Step.NOTHING_TO_BILL:
        sentence = (f"{label} for {name} was closed before: nothing to bill." if already else
                    f"Closed {label} for {name}: nothing to bill (no user held a billed item on any day), "
                    "so no invoice was issued or emailed.")
        return TenantOutcome(**common, kind=ALREADY_OUTCOME if already else NOTHING_OUTCOME, sentence=sentence)
    number, to = row.get("number", ""), row.get("emailed_to", "")
    if row.get("step") == Step.IN_REVIEW:
        until = row.get("review_until")
        sentence = (f"Drafted {label} for {name}: {plural(users, 'user')}, {money(total, currency)}; kept a draft "
                    f"until {until} (REVIEW_DAYS), then numbered and emailed with any late changes.")
        return TenantOutcome(**common, kind=Outcome.IN_REVIEW, sentence=sentence, reason=f"draft until {until}")
    if row.get("step") == Step.HELD:
        reason = str(row.get("hold_reason", ""))
        sentence = (f"{label} for {name} was closed before: invoice {number} is held ({reason})." if already else
                    f"Held {number} for {name}: {reason}. It is numbered and archived, not emailed; "
                    f"./dev invoice release --number {number} (or POST /api/invoices/{number}/release) emails it.")
        return TenantOutcome(**common, kind=ALREADY_OUTCOME if already else HELD_OUTCOME, sentence=sentence,
                             number=number, reason=reason)
    if already:
        sentence = (f"{label} for {name} was closed before: invoice {number} "
                    f"({money(total, currency)}) emailed at {row.get('emailed_at')}.")
        return TenantOutcome(**common, kind=ALREADY_OUTCOME, sentence=sentence, number=number, emailed_to=to)
    taxed = " incl. tax" if Decimal(row.get("tax_rate", "0") or "0") else ""
    sentence = (f"Closed {label} for {name}: {plural(users, 'user')}, {plural(lines, 'line')}, "
                f"{money(total, currency)}{taxed}, invoice {number} emailed to {to}")
    return TenantOutcome(**common, kind=EMAILED_OUTCOME, sentence=sentence, number=number, emailed_to=to,
                         document=document_fields(row))


def summary_text(summary: RunSummary) -> str:
    """A run's summary in one paragraph of plain words."""
    period = Period.parse(summary["period"])
    parts = [f"Run {summary['run_id']} (month-end close of {month_label(period)}, {summary.get('trigger')}): "
             f"{plural(summary['tenants'], 'client')}; {plural(summary['emailed'], 'invoice')} emailed"]
    if summary.get("held"):
        parts.append(f", {summary['held']} held")
    if summary.get("in_review"):
        parts.append(f", {summary['in_review']} kept as drafts for review")
    if summary.get("nothing_to_bill"):
        parts.append(f", {summary['nothing_to_bill']} with nothing to bill")
    if summary.get("already_closed"):
        parts.append(f", {summary['already_closed']} closed before")
    parts.append(f", {summary['failed']} failed; {plural(summary['seats'], 'seat')} billed")
    totals = summary.get("totals") or {}
    parts.append("; totals " + ", ".join(money(t, c) for c, t in totals.items()) if totals else "; nothing invoiced")
    if summary.get("exports"):
        parts.append(f"; Xero and QuickBooks import files in {summary['exports'][0].rsplit('/', 1)[0]}/")
    parts.append(".")
    for hold in summary.get("holds", []):
        parts.append(f" Held {hold['number']} for {hold.get('name')}: {hold.get('reason')}.")
    for correction in summary.get("corrections", []):
        parts.append(f" {correction['sentence']}.")
    failures = summary.get("failures", [])
    for failure in failures[:20]:
        parts.append(f" Failed: {failure.get('name') or failure['tenant_id']}: {failure.get('reason')}.")
    if len(failures) > 20:
        parts.append(f" And {len(failures) - 20} more failures: ./dev close --report {summary['run_id']} lists them.")
    return "".join(parts)


class RunReports:
    """Counting outcomes on their runs, and each run's summary and CSV once it has finished."""

    def __init__(self, *, runs: RunRepository, invoices: InvoiceRepository, archive: Archive, clock: Clock,
                 exports: Callable[[str, str, list[InvoiceDocument]], dict[str, bytes]],
                 corrections: Callable[[str, str], Sequence[Record]] | None = None,
                 prepare: Callable[[InvoiceDocument], object] | None = None):
        """`exports(period, run_id, documents)`: {blob name: bytes} of the run's accounting files;
        `corrections(tenant_id, period)`: the correcting documents' rows of a client's month;
        `prepare(document)`: does ahead, for an emailed invoice, what `exports` will need of it."""
        self.runs, self.invoices, self.archive, self.now = runs, invoices, archive, clock
        self.exports, self.corrections, self.prepare = exports, corrections, prepare
        # The invoices this process emailed lately, by number: the run's files take them from here
        # instead of unpacking them from the member rows again (an issued invoice never changes).
        self._emailed: Kept[str, InvoiceDocument] = Kept(512)
        self._here: dict[tuple[str, str], int] = {}  # (run, tenant) -> closes of it going on in this process
        self._here_lock = threading.Lock()

    @contextmanager
    def closing_here(self, run_id: str, tenant_ids: Iterable[str]) -> Iterator[None]:
        """Marks these tenants of the run as being closed by this process until the block ends:
        each of them finishes here (finish) after the others that see it still going."""
        keys = [(run_id, tenant_id) for tenant_id in tenant_ids]
        with self._here_lock:
            for key in keys:
                self._here[key] = self._here.get(key, 0) + 1
        try:
            yield
        finally:
            with self._here_lock:
                for key in keys:
                    if self._here[key] <= 1:
                        del self._here[key]
                    else:
                        self._here[key] -= 1

    def finish(self, run_id: str, outcome: TenantOutcome, member_etag: str | None = None) -> RunSummary | None:
        """Counts the outcome on its run; returns the run's summary if this finished the run.
        The run has finished when none of its tenants is left without an outcome. Every tenant
        asks after recording its own, so the last one recorded sees it; a tenant that knows the
        ones left are still being closed by this process leaves the question to them."""
        try:
            if outcome.invoice is not None and outcome.kind == EMAILED_OUTCOME:
                self._keep(outcome.invoice)
            progress = self.runs.finish_member(run_id, outcome.tenant_id, outcome.member_fields(self.now()),
                                               etag=member_etag)
            if progress is None:
                log.warning("Run %s has no record of %s; its outcome is logged above but not counted.",
                            run_id, outcome.name)
                return None
            if progress.header is not None and progress.header.get("finished_at"):
                return None
            left = progress.unfinished
            if left is None or any((run_id, tenant_id) not in self._here for tenant_id in left):
                left = self.runs.unfinished(run_id)
            if not left:
                return self.finish_run(run_id, progress.header, progress.members)
        except Exception as error:  # noqa: BLE001 - the invoice is done; the report can be redone
            log.error("Run %s: could not record the outcome of %s (%s); ./dev close --report %s shows the run.",
                      run_id, outcome.name, describe(error), run_id)
        return None

    def _keep(self, document: InvoiceDocument) -> None:
        """An emailed invoice, ready for its run's files while other invoices still render."""
        if self.prepare is not None:
            self.prepare(document)
        self._emailed.put(document.number, document)

    def _document_of(self, row: Record) -> InvoiceDocument:
        known = self._emailed.get(str(row.get("number")))
        if known is not None and str(known.invoice.total) == row.get("total"):
            return known
        return invoice_document(row)

    def _issued_corrections(self, members: list[Record]) -> list[InvoiceDocument]:
        """The correcting documents this run issued (each is reported by the one close that
        finished it, so each lands in exactly one run's accounting files)."""
        if self.corrections is None:
            return []
        issued = []
        for member in members:
            for correction in json.loads(member.get("corrections") or "[]"):
                if not correction.get("number"):
                    continue  # a note about a change beyond reach, not a document
                rows = self.corrections(correction["tenant_id"], correction["period"])
                issued += [invoice_document(row) for row in rows if row.get("number") == correction["number"]]
        return issued

    def finish_run(self, run_id: str, header: Record | None = None,
                   members: Sequence[Record] | None = None) -> RunSummary | None:
        """Writes the run's CSV and stores and logs its summary, once every tenant of the run has
        finished (again if a finisher died in between). Returns the summary, or None while the
        run is still going. `header`: the run's header as the caller has just read or written
        it; `members`: its member rows, as the caller knows them."""
        header, done = (header, None) if header is not None else self._stored(run_id)
        if header is None or done is not None:
            return done
        members = list(members) if members is not None else self.runs.members(run_id)
        if any(not member.get("outcome") for member in members):
            return None
        period = Period.parse(header["period"])
        documents, invoices = [], []
        for member in members:
            if member.get("outcome") != EMAILED_OUTCOME:
                continue
            # the member row carries the invoice as emailed (a run recorded before it did: read it)
            row = member if member.get("invoice_chunks") else \
                self.invoices.get(member["tenant_id"], member.get("period") or period)
            if row is None or not row.get("number"):
                continue
            documents.append(self._document_of(row))
            invoices.append({"tenant_id": member["tenant_id"], "name": member.get("name"), "number": row["number"],
                             "currency": row.get("currency"), "total": row.get("total"), "users": int(row.get("users", 0)),
                             "lines": int(row.get("lines", 0))})
        documents += self._issued_corrections(members)
        exports = self.exports(str(period), run_id, documents) if documents else {}
        for name, data in exports.items():
            self.archive.put(name, data, "text/csv; charset=utf-8")
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for invoice in invoices:
            totals[invoice["currency"]] += Decimal(invoice["total"])
        count: dict[str, int] = defaultdict(int)
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
            "exports": [f"{self.archive.container_name}/{name}" for name in exports],
            "held": count[HELD_OUTCOME], "in_review": count[Outcome.IN_REVIEW],
            "holds": [{"tenant_id": m["tenant_id"], "name": m.get("name"), "number": m.get("number"),
                       "reason": m.get("reason")} for m in members if m.get("outcome") == HELD_OUTCOME],
            "corrections": [c for m in members for c in json.loads(m.get("corrections") or "[]")],
        }
        if self.runs.record_summary(header, summary, now):
            log.info(summary_text(summary))
            return summary
        stored = self.runs.header(run_id)
        return (self.runs.summary(stored) if stored else None) or summary

    def export_released(self, row: InvoiceRecord) -> list[str]:
        """The accounting files of an invoice emailed when a person released it. Its run finished
        (or finishes) with it held, so it is in no run's files: it gets files of its own beside
        the run's, `{period}/xero-invoices-released-{number}-{CUR}.csv` and the QuickBooks one.
        Written again, identical, if the release is repeated. Returns their archive paths."""
        files = self.exports(row.period, f"released-{row.number}", [invoice_document(row)])
        for name, data in files.items():
            self.archive.put(name, data, "text/csv; charset=utf-8")
        return [f"{self.archive.container_name}/{name}" for name in files]

    def run_report(self, run_id: str) -> RunSummary | None:
        """The run's summary if it has finished, else its progress so far."""
        header, done = self._stored(run_id)
        if header is None or done is not None:
            return done
        members = self.runs.members(run_id)
        return {"run_id": run_id, "period": header.get("period"), "trigger": header.get("trigger"),
                "started": header.get("started"), "tenants": int(header.get("tenants_queued", 0)),
                "finished": sum(1 for m in members if m.get("outcome")),
                "pending": [m.get("name") or m["tenant_id"] for m in members if not m.get("outcome")]}

    def _stored(self, run_id: str) -> tuple[Record | None, RunSummary | None]:
        """The run's header and, once the run has finished, its stored summary."""
        header = self.runs.header(run_id)
        done = self.runs.summary(header) if header is not None else None
        return header, None if done is None else dict(done)
