"""In-memory fakes of the ports (shared/ports.py), with the tables' ETag semantics: a record
carries the ETag it was read with, and a write with a stale one raises Conflict, as the
Table Storage adapters do. Enough to run the close's services without Azurite or Graph."""
from __future__ import annotations

import hashlib
import itertools
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from shared.billing import Observation, Period
from shared.invoicing.numbers import format_number
from shared.invoicing.steps import Step
from shared.ports import MonthSlice
from shared.services.close import CloseService
from shared.services.reconcile import Reconciler
from shared.settings import Settings
from shared.storage.records import Conflict, InvoiceRecord, Record, RunMember, RunProgress, StoredBlob
from shared.tenants import Tenant

UTC = timezone.utc
_etags = itertools.count(1)


def _etag() -> str:
    return f'W/"{next(_etags)}"'


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Crash(BaseException):
    """A process dying: not an Exception, so nothing below the test catches or records it."""


class FakeTenants:
    def __init__(self, tenants: Iterable[Tenant] = ()):
        self.rows = {t.tenant_id: t for t in tenants}

    def get(self, tenant_id: str) -> Tenant | None:
        return self.rows.get(tenant_id)

    def all(self, *, active_only: bool = False) -> list[Tenant]:
        return [t for t in self.rows.values() if t.status == "active" or not active_only]

    def get_many(self, tenant_ids: Iterable[str]) -> dict[str, Tenant]:
        return {tenant_id: self.rows[tenant_id] for tenant_id in tenant_ids if tenant_id in self.rows}

    def save(self, tenant: Tenant) -> None:
        self.rows[tenant.tenant_id] = tenant

    def update(self, tenant_id: str, **changes: object) -> None:
        from dataclasses import replace

        if tenant_id not in self.rows:
            raise KeyError(tenant_id)
        self.rows[tenant_id] = replace(self.rows[tenant_id], **changes)  # type: ignore[arg-type]


class FakeLedger:
    """Every observation of a tenant; a month reads those up to its end (the core replays them)."""

    def __init__(self) -> None:
        self.observations: dict[str, list[Observation]] = {}

    def append(self, tenant_id: str, observations: Iterable[Observation], *, observed_at: datetime,
               source: str) -> int:
        added = list(observations)
        self.observations.setdefault(tenant_id, []).extend(added)
        return len(added)

    def read_month(self, tenant_id: str, period: Period, zone: str) -> MonthSlice:
        end = period.end(zone)
        records = sorted((o for o in self.observations.get(tenant_id, []) if o.at < end), key=lambda o: o.at)
        return MonthSlice(opening=(), records=tuple(records))

    def current_states(self, tenant_id: str) -> dict[str, Observation]:
        states: dict[str, Observation] = {}
        for observation in sorted(self.observations.get(tenant_id, []), key=lambda o: o.at):
            states[observation.user_id] = observation
        return states

    def states_of(self, tenant_id: str, user_ids: set[str]) -> dict[str, Observation]:
        return {uid: s for uid, s in self.current_states(tenant_id).items() if uid in user_ids}


class FakeTable:
    """Rows by (partition, row) key, each with an ETag that changes on every write."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}

    def read(self, pk: str, rk: str) -> tuple[dict[str, Any], str] | None:
        found = self.rows.get((pk, rk))
        return None if found is None else (dict(found[0]), found[1])

    def create(self, values: Mapping[str, Any]) -> str:
        key = (str(values["PartitionKey"]), str(values["RowKey"]))
        if key in self.rows:
            raise Conflict(f"row {key} exists")
        etag = _etag()
        self.rows[key] = (dict(values), etag)
        return etag

    def merge(self, pk: str, rk: str, changes: Mapping[str, Any], etag: str) -> str:
        found = self.rows.get((pk, rk))
        if found is None or found[1] != etag:
            raise Conflict(f"row {pk}/{rk} changed meanwhile")
        new = _etag()
        self.rows[(pk, rk)] = ({**found[0], **changes}, new)
        return new


class FakeInvoices:
    def __init__(self) -> None:
        self.table = FakeTable()

    def get(self, tenant_id: str, period: Period | str) -> InvoiceRecord | None:
        found = self.table.read(tenant_id, str(period))
        return None if found is None else InvoiceRecord(*found)

    def create(self, tenant_id: str, period: Period | str, values: Mapping[str, Any]) -> InvoiceRecord:
        entity = {"PartitionKey": tenant_id, "RowKey": str(period), **values}
        return InvoiceRecord(entity, self.table.create(entity))

    def update(self, record: InvoiceRecord, changes: Mapping[str, Any]) -> InvoiceRecord:
        etag = self.table.merge(record.partition_key, record.row_key, changes, record.etag)
        return InvoiceRecord({**record.values, **changes}, etag)

    def of_tenant(self, tenant_id: str) -> list[InvoiceRecord]:
        return sorted((InvoiceRecord(dict(values), etag) for (pk, _), (values, etag) in self.table.rows.items()
                       if pk == tenant_id), key=lambda record: record.period)

    def summaries(self, tenant_id: str, last: Period | str) -> list[InvoiceRecord]:
        from shared.storage.invoices import SUMMARY_FIELDS

        return [InvoiceRecord({k: v for k, v in row.values.items() if k in SUMMARY_FIELDS}, row.etag)
                for row in self.of_tenant(tenant_id) if row.period <= str(last)]

    def by_number(self, number: str) -> InvoiceRecord | None:
        return next((InvoiceRecord(dict(values), etag) for values, etag in self.table.rows.values()
                     if values.get("number") == number), None)


class FakeRuns:
    def __init__(self) -> None:
        self.table = FakeTable()
        self.summaries: dict[str, dict[str, Any]] = {}

    def create(self, run_id: str, period: Period | str, trigger: str, started: datetime,
               members: Iterable[RunMember]) -> Record:
        members = list(members)
        for m in members:
            self.table.rows[(run_id, "tenant|" + m.tenant_id)] = (
                {"PartitionKey": run_id, "RowKey": "tenant|" + m.tenant_id, "tenant_id": m.tenant_id, "name": m.name,
                 "period": m.period, "outcome": ""}, _etag())
        header = {"PartitionKey": run_id, "RowKey": "run", "period": str(period), "trigger": trigger,
                  "started": started.isoformat(), "tenants_queued": len(members), "finished_at": ""}
        etag = _etag()
        self.table.rows[(run_id, "run")] = (header, etag)
        return Record(dict(header), etag)

    def header(self, run_id: str) -> Record | None:
        found = self.table.read(run_id, "run")
        return None if found is None else Record(*found)

    def members(self, run_id: str) -> list[Record]:
        return [Record(dict(values), etag) for (pk, rk), (values, etag) in self.table.rows.items()
                if pk == run_id and rk.startswith("tenant|")]

    def runs_of_period(self, period: Period | str) -> list[Record]:
        return [Record(dict(v), e) for (pk, rk), (v, e) in self.table.rows.items() if rk == "run" and v["period"] == str(period)]

    def unfinished(self, run_id: str) -> frozenset[str]:
        return frozenset(m["tenant_id"] for m in self.members(run_id) if not m.get("outcome"))

    def member_etag(self, run_id: str, tenant_id: str) -> str | None:
        return None

    def finish_member(self, run_id: str, tenant_id: str, outcome: Mapping[str, Any], *,
                      etag: str | None = None) -> RunProgress | None:
        header, member = self.header(run_id), self.table.read(run_id, "tenant|" + tenant_id)
        if header is None or member is None:
            return None
        if member[0].get("outcome"):
            return RunProgress(header, counted=False)
        self.table.merge(run_id, "tenant|" + tenant_id, outcome, member[1])
        return RunProgress(header, counted=True)

    def summary(self, header: Record) -> dict[str, Any] | None:
        return self.summaries.get(header.partition_key) if header.get("finished_at") else None

    def record_summary(self, header: Record, summary: dict[str, Any], finished_at: datetime) -> bool:
        try:
            self.table.merge(header.partition_key, "run", {"finished_at": finished_at.isoformat()}, header.etag)
        except Conflict:
            return False
        self.summaries[header.partition_key] = summary
        return True


class FakeCounter:
    """Gap-free numbers, recorded on the invoice as the real counter does."""

    def __init__(self, invoices: FakeInvoices, template: str = "{prefix}{year}-{seq:05d}", prefix: str = "INV-"):
        self.invoices, self.template, self.prefix, self.last = invoices, template, prefix, 0
        self.reserved_for: tuple[str, str] | None = None

    def last_number(self) -> int:
        return self.last

    def reserve(self, tenant_id: str, period: str, now: datetime, issued_on: Any,
                write: Any) -> InvoiceRecord:
        """The same number for the same invoice until another one reserves (as the counter row does)."""
        if self.reserved_for != (tenant_id, period):
            self.last += 1
            self.reserved_for = (tenant_id, period)
        return write(self.last, format_number(self.template, self.prefix, issued_on, self.last))

    def assign(self, tenant_id: str, period: str, now: datetime, row: InvoiceRecord | None = None) -> InvoiceRecord:
        from datetime import date

        row = self.invoices.get(tenant_id, period)
        assert row is not None and row.get("step") == Step.COMPUTED, "only a computed invoice takes a number"
        if row.get("number"):
            return row
        self.last += 1
        number = format_number(self.template, self.prefix, date.fromisoformat(row["issued_on"]), self.last)
        return self.invoices.update(row, {"number": number, "number_seq": self.last, "step": Step.NUMBERED,
                                          "numbered_at": now.isoformat()})


class FakeArchive:
    container_name = "invoices"

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put_once(self, name: str, data: bytes, content_type: str = "application/pdf") -> StoredBlob:
        created = name not in self.blobs
        self.blobs.setdefault(name, data)
        stored = self.blobs[name]
        return StoredBlob(name, len(stored), hashlib.sha256(stored).hexdigest(), created)

    def put(self, name: str, data: bytes, content_type: str) -> None:
        self.blobs[name] = data

    def get(self, name: str) -> bytes:
        return self.blobs[name]


class FakeMailer:
    """Drafts and sends; `fail_on` makes that call raise once (a Graph refusal)."""

    mailbox = "billing@northwind-msp.example"

    def __init__(self) -> None:
        self.drafts: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self.fail_on: str | None = None

    async def create_draft(self, *, subject: str, html: str, to: list[str], pdf_name: str, pdf: bytes,
                           attachments: list[Any] | None = None) -> str:
        if self.fail_on == "create_draft":
            self.fail_on = None
            raise RuntimeError("Graph answered 503: try later")
        draft_id = f"draft-{len(self.drafts) + 1}"
        self.drafts[draft_id] = {"subject": subject, "to": list(to), "pdf_name": pdf_name, "pdf": pdf,
                                 "attachments": list(attachments or [])}
        return draft_id

    async def send_once(self, draft_id: str) -> str:
        if any(m["id"] == draft_id for m in self.sent):
            return "sent before"
        self.sent.append({"id": draft_id, **self.drafts[draft_id]})
        return "sent"


class FakeQueues:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.delays: list[int] = []

    def send(self, queue: str, message: dict[str, Any], *, delay_seconds: int = 0) -> None:
        self.sent.append((queue, message))
        self.delays.append(delay_seconds)


class NoSkus:
    """A Graph that reports no subscribed SKUs (the close's reconciliation then finds nothing)."""

    async def subscribed_skus(self, tenant_id: str) -> list[Any]:
        return []


class World:
    """The close's collaborators, all in memory, on a settable clock."""

    def __init__(self, now: datetime = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)):
        self.clock = Clock(now)
        self.tenants, self.ledger = FakeTenants(), FakeLedger()
        self.invoices, self.runs, self.archive = FakeInvoices(), FakeRuns(), FakeArchive()
        self.counter, self.mailer, self.queues = FakeCounter(self.invoices), FakeMailer(), FakeQueues()
        self.settings = Settings({"BRAND_NAME": "Northwind MSP", "INVOICE_MAILBOX": FakeMailer.mailbox,
                                  "MSP_TENANT_ID": "msp"})

    def close_service(self, **options: Any) -> CloseService:
        from shared.invoicing import Brand

        reconciler = Reconciler(tenants=self.tenants, ledger=self.ledger, graph=lambda: NoSkus(),
                                archive=lambda: self.archive, clock=self.clock)
        return CloseService(settings=self.settings, tenants=self.tenants, ledger=self.ledger, invoices=self.invoices,
                            runs=self.runs, archive=self.archive, queues=self.queues, counter=lambda: self.counter,
                            mailer=lambda: self.mailer, brand=lambda: Brand.from_settings(self.settings),
                            reconciler=reconciler, clock=self.clock, **options)

    def later(self, **delta: float) -> None:
        self.clock.now += timedelta(**delta)
