"""The month-end close's records on Table Storage.

Table `invoices`: one row per client tenant and month (PartitionKey = tenant id, RowKey = the
period `YYYY-MM`). The row is the close's state machine: `step` is the last step done, each step
records its time (`computed_at`, `numbered_at`, ...), `status` says in plain words where the
close stands ("in progress", "done", "nothing to bill", "failed: <reason>"). Every change is an
ETag-guarded merge, so two writers never both think they moved the row on. A lease
(`lease_owner`, `lease_until`) lets one runner at a time work on a row; a runner that dies
leaves a lease that expires.

The computed invoice is frozen in the row (gzip-compressed JSON of the plan and the invoice, in
binary properties of at most 60,000 bytes each), so that every later step and every report uses
exactly what was computed, whatever the ledger learns afterwards.

Table `runs`: one partition per run (PartitionKey = run id): the header row `run` (period,
trigger, start time, tenants queued, and once the last tenant has finished the time it finished
and the summary, gzip JSON in binary chunks like the invoice) and one member row
`tenant|<tenant id>` per tenant of the run with its outcome (for an invoice the run emailed,
with a copy of what invoice_document reads of it, so that the run's accounting files are made
from the member rows alone).
The member rows are the run's progress: a tenant's outcome is written once, by a write guarded
by the member row's ETag, however often its message is retried; the run has finished when no
member row is without an outcome (RunStore.unfinished).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from shared.billing import Invoice, InvoiceLine, Period, parse_plan
from shared.billing.observations import format_instant
from shared.storage.records import (
    Conflict, InvoiceRecord, Record, RunMember, RunProgress, TableValue, pack_json, unpack_json,
)
from shared.storage.tables import create, merge_if_unchanged, read

if TYPE_CHECKING:  # pragma: no cover
    from shared.invoicing.document import InvoiceDocument

__all__ = ["Conflict", "InvoiceRecord", "InvoiceStore", "RunMember", "RunProgress", "RunStore", "pack_invoice",
           "unpack_invoice", "invoice_from_json", "invoice_document", "document_fields"]

INVOICES = "invoices"
RUNS = "runs"

# What a close reads of a client's months at once (InvoiceStore.summaries): where each month's
# close stands, its lease, and what the guardrails, the corrections and the outcome compare.
SUMMARY_FIELDS = ("PartitionKey", "RowKey", "step", "status", "number", "number_seq", "run_id", "attempts",
                  "lease_owner", "lease_until", "queued_at", "computed_at", "review_until", "client_name",
                  "currency", "total", "tax_rate", "users", "lines", "emailed_at", "emailed_to", "hold_reason",
                  "released_at", "voided_at", "kind", "corrected")


# --------------------------------------------------------------------------- invoice JSON

def pack_invoice(invoice: Invoice) -> dict[str, Any]:
    """The row properties that freeze an invoice (its plan and its JSON)."""
    return pack_json({"plan": invoice.plan.to_dict(), "invoice": invoice.to_json()}, "invoice",
                     f"the invoice of {invoice.plan.name} for {invoice.period} ({len(invoice.lines)} lines)")


def unpack_invoice(row: Record) -> Invoice:
    """The invoice frozen in the row, as the core's Invoice (money as Decimal)."""
    data = unpack_json(row, "invoice")
    if data is None:
        raise ValueError(f"invoice row {row.get('PartitionKey')}/{row.get('RowKey')} holds no invoice")
    return invoice_from_json(data["plan"], data["invoice"])


def invoice_from_json(plan_data: dict[str, Any], data: dict[str, Any]) -> Invoice:
    plan = parse_plan(plan_data)
    lines = tuple(InvoiceLine(user_id=line["user_id"], user_principal_name=line["user_principal_name"],
                              display_name=line["display_name"], item=line["item"],
                              unit_price=Decimal(line["unit_price"]), days=int(line["days"]),
                              amount=Decimal(line["amount"])) for line in data["lines"])
    return Invoice(plan=plan, period=Period.parse(data["period"]), lines=lines,
                   subtotal=Decimal(data["subtotal"]), tax=Decimal(data["tax"]), total=Decimal(data["total"]))


# --------------------------------------------------------------------------- invoices table

class InvoiceStore:
    """Records of the `invoices` table, each change guarded by the record's ETag."""

    def __init__(self, storage: Any, table: str = INVOICES):
        self._storage, self._table_name = storage, table

    @property
    def _table(self) -> Any:
        return self._storage.table(self._table_name)

    def get(self, tenant_id: str, period: Period | str) -> InvoiceRecord | None:
        found = read(self._table, tenant_id, str(period))
        return None if found is None else InvoiceRecord(found.values, found.etag)

    def create(self, tenant_id: str, period: Period | str, values: Mapping[str, TableValue]) -> InvoiceRecord:
        """Creates the record; Conflict if it exists already."""
        made = create(self._table, {"PartitionKey": tenant_id, "RowKey": str(period), **values})
        return InvoiceRecord(made.values, made.etag)

    def update(self, record: InvoiceRecord, changes: Mapping[str, TableValue]) -> InvoiceRecord:
        """Merges the changes into the record if nobody changed it since it was read; Conflict if
        somebody did. Returns the record as it now is."""
        from azure.core.exceptions import ResourceNotFoundError

        entity = {"PartitionKey": record.partition_key, "RowKey": record.row_key, **changes}
        try:
            etag = merge_if_unchanged(self._table, entity, record.etag)
        except ResourceNotFoundError:
            raise Conflict(f"invoice row {record.partition_key}/{record.row_key} is gone") from None
        if etag is None:
            raise Conflict(f"invoice row {record.partition_key}/{record.row_key} changed meanwhile")
        return InvoiceRecord({**record.values, **changes}, etag)

    def mark_corrected(self, tenant_id: str, period: Period | str) -> None:
        """Marks a month's record `corrected` (its correcting documents are being made); a
        plain merge: the mark is never taken back, and writers of the record's steps check
        its ETag, not this."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        try:
            self._table.update_entity({"PartitionKey": tenant_id, "RowKey": str(period), "corrected": True},
                                      mode=UpdateMode.MERGE)
        except ResourceNotFoundError:
            pass  # no invoice record for that month: nothing a close would look for

    def by_number(self, number: str) -> InvoiceRecord | None:
        """The record of the invoice with this number (a scan of the table: for a person's
        command, not for hot paths)."""
        rows = self._table.query_entities("number eq @number", parameters={"number": number})
        found = next((Record.of(row) for row in rows), None)
        return None if found is None else InvoiceRecord(found.values, found.etag)

    def of_tenant(self, tenant_id: str) -> list[InvoiceRecord]:
        """Every month's record of one client (one partition), oldest first."""
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": tenant_id})
        records = (Record.of(row) for row in rows)
        return sorted((InvoiceRecord(r.values, r.etag) for r in records), key=lambda record: record.period)

    def summaries(self, tenant_id: str, last: Period | str) -> list[InvoiceRecord]:
        """One client's records up to `last` (RowKey order, oldest first), each with only the
        properties that say where it stands (SUMMARY_FIELDS, not the frozen invoice) and its ETag."""
        rows = self._table.query_entities("PartitionKey eq @pk and RowKey le @last",
                                          parameters={"pk": tenant_id, "last": str(last)}, select=list(SUMMARY_FIELDS))
        return [InvoiceRecord(r.values, r.etag) for r in map(Record.of, rows)]


# --------------------------------------------------------------------------- runs table

RUN_ROW = "run"
MEMBER = "tenant|"


class RunRecordBusy(RuntimeError):
    """Other writers kept changing a run's member row; the tenant's outcome is not counted yet."""


@dataclass
class _OpenRun:
    """A run this process created, as it last wrote it (RunStore._open)."""
    header: Record
    unfinished: dict[str, Record]  # tenant id -> member row
    finished: list[Record] = field(default_factory=list)


class RunStore:
    def __init__(self, storage: Any, table: str = RUNS):
        self._storage, self._table_name = storage, table
        # The runs this process created, while they go, as this process last wrote them: finishing
        # a member needs no read, and the last member finished here knows that the run has
        # finished, and its members, without asking. A member row whose ETag no longer matches
        # was written elsewhere: the copy is dropped and the rows are read.
        self._open: dict[str, _OpenRun] = {}
        self._lock = threading.Lock()  # this process's finishers of one run take turns with those copies

    @property
    def _table(self) -> Any:
        return self._storage.table(self._table_name)

    def create(self, run_id: str, period: Period | str, trigger: str, started: datetime,
               members: Iterable[RunMember]) -> Record:
        """The run's member rows, then its header (its existence means the run is complete
        as a record): in one transaction for up to 99 members, else the members in
        transactions of up to 100 first."""
        members = list(members)
        operations = [("upsert", {"PartitionKey": run_id, "RowKey": MEMBER + m.tenant_id, "tenant_id": m.tenant_id,
                                  "name": m.name, "period": m.period, "outcome": ""}) for m in members]
        header = {"PartitionKey": run_id, "RowKey": RUN_ROW, "period": str(period), "trigger": trigger,
                  "started": format_instant(started), "tenants_queued": len(members), "finished_at": ""}
        if len(operations) < 100:
            etags = [str(result["etag"]) for result in self._table.submit_transaction([*operations, ("upsert", header)])]
            record = Record(header, etags[-1])
            with self._lock:
                self._open[run_id] = _OpenRun(record, {m.tenant_id: Record(op[1], etag) for m, op, etag
                                                       in zip(members, operations, etags)})
            return record
        for start in range(0, len(operations), 100):
            self._table.submit_transaction(operations[start:start + 100])
        result = self._table.upsert_entity(header)
        return Record(header, result["etag"])

    def header(self, run_id: str) -> Record | None:
        return read(self._table, run_id, RUN_ROW)

    def members(self, run_id: str) -> list[Record]:
        rows = self._table.query_entities("PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                                          parameters={"pk": run_id, "low": MEMBER, "high": "tenant}"})
        return [Record.of(entity) for entity in rows]

    def unfinished(self, run_id: str) -> frozenset[str]:
        """The tenants of the run whose outcome is not recorded yet (one query of the members'
        keys: the run has finished when it is empty)."""
        rows = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and outcome eq @none",
            parameters={"pk": run_id, "low": MEMBER, "high": "tenant}", "none": ""}, select=["RowKey"])
        return frozenset(row["RowKey"][len(MEMBER):] for row in rows)

    def runs_of_period(self, period: Period | str) -> list[Record]:
        rows = self._table.query_entities("RowKey eq @run and period eq @period",
                                          parameters={"run": RUN_ROW, "period": str(period)})
        return sorted((Record.of(entity) for entity in rows), key=lambda r: r.get("started", ""))

    def member_etag(self, run_id: str, tenant_id: str) -> str | None:
        with self._lock:
            known = self._open.get(run_id)
            member = known.unfinished.get(tenant_id) if known is not None else None
            return member.etag if member is not None else None

    def finish_member(self, run_id: str, tenant_id: str, outcome: Mapping[str, TableValue], *,
                      etag: str | None = None) -> RunProgress | None:
        """Records a tenant's outcome on its member row once (a write guarded by the row's ETag:
        this process's copy's, else `etag`, the row's as the run was created, else read): a
        tenant already finished in this run is left as it is. None when the run has no record
        (its timer died between claiming and recording it)."""
        from azure.core.exceptions import ResourceNotFoundError

        entity = {"PartitionKey": run_id, "RowKey": MEMBER + tenant_id, **outcome}
        with self._lock:
            known = self._open.get(run_id)
            member = known.unfinished.get(tenant_id) if known is not None else None
            guess = member.etag if member is not None else etag
            if guess:
                try:
                    written = merge_if_unchanged(self._table, entity, guess)
                except BaseException as error:
                    if member is not None:  # written or not, this process's copy can no longer tell
                        del self._open[run_id]
                    if isinstance(error, ResourceNotFoundError):
                        return None
                    raise
                if written is None:
                    if member is not None:
                        del self._open[run_id]  # written elsewhere: read below
                elif known is None or member is None:
                    return RunProgress(None, counted=True)
                else:
                    del known.unfinished[tenant_id]
                    known.finished.append(member.merged(outcome, written))
                    if known.unfinished:
                        return RunProgress(known.header, counted=True, unfinished=frozenset(known.unfinished))
                    del self._open[run_id]
                    return RunProgress(known.header, counted=True, unfinished=frozenset(),
                                       members=tuple(known.finished))
        for _ in range(50):
            # the run's row and the member's row in one query (the SDK reads a parameter name up
            # to the next space, so the parenthesis stands apart)
            rows = {row["RowKey"]: Record.of(row) for row in self._table.query_entities(
                "PartitionKey eq @pk and ( RowKey eq @run or RowKey eq @member )",
                parameters={"pk": run_id, "run": RUN_ROW, "member": MEMBER + tenant_id})}
            header, member = rows.get(RUN_ROW), rows.get(MEMBER + tenant_id)
            if header is None or member is None:
                return None
            if member.get("outcome"):
                return RunProgress(header, counted=False)
            try:
                if merge_if_unchanged(self._table, entity, member.etag) is not None:
                    return RunProgress(header, counted=True)
            except ResourceNotFoundError:
                return None
        raise RunRecordBusy(f"run {run_id}: the member row of tenant {tenant_id} kept changing; not counted")

    @staticmethod
    def summary(header: Record) -> Any:
        """The run's stored summary, or None while the run has not finished."""
        return unpack_json(header, "summary") if header.get("finished_at") else None

    def record_summary(self, header: Record, summary: Mapping[str, Any], finished_at: datetime) -> bool:
        """Stores the run's summary once (setting `finished_at`); False if another finisher
        stored it first."""
        entity = {"PartitionKey": header.partition_key, "RowKey": RUN_ROW,
                  **pack_json(summary, "summary", f"the summary of run {header.partition_key}"),
                  "finished_at": format_instant(finished_at)}
        return merge_if_unchanged(self._table, entity, header.etag) is not None


# What invoice_document reads of a record, besides the frozen invoice (pack_invoice's properties).
DOCUMENT_FIELDS = ("number", "issued_on", "due_on", "client_name", "client_address", "locale", "contacts",
                   "client_legal", "kind", "corrects")


def document_fields(record: Record) -> dict[str, TableValue]:
    """The properties of a record that invoice_document reads (a copy makes the same document)."""
    count = int(record.get("invoice_chunks", 0))
    names = [*DOCUMENT_FIELDS, "invoice_chunks", *(f"invoice_{n:02d}" for n in range(count))]
    return {name: record.values[name] for name in names if name in record.values}


def invoice_document(record: Record) -> InvoiceDocument:
    """The InvoiceDocument of a numbered invoice record (what is rendered, mailed and exported)."""
    from shared.invoicing.document import InvoiceDocument

    from shared.invoicing.parties import parse_client_legal

    contacts = json.loads(record.get("contacts", "[]"))
    email = contacts[0] if contacts else ""
    legal = json.loads(record["client_legal"]) if record.get("client_legal") else None  # frozen at compute
    return InvoiceDocument(invoice=unpack_invoice(record), number=record["number"],
                           issued_on=date.fromisoformat(record["issued_on"]),
                           due_on=date.fromisoformat(record["due_on"]), client_name=record["client_name"],
                           client_address=tuple(json.loads(record.get("client_address", "[]"))),
                           locale=record.get("locale", "en_US"), client_email=email,
                           buyer=parse_client_legal(legal).buyer(record["client_name"], email) if legal else None,
                           kind=record.get("kind") or "invoice", corrects=record.get("corrects") or "")
