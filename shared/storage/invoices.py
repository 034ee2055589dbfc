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
trigger, start time, tenants queued, tenants finished, and once the last tenant has finished the
time it finished and the summary, gzip JSON in binary chunks like the invoice) and one member row `tenant|<tenant id>` per tenant of the run with its outcome.
A tenant's outcome and the header's count are written in one transaction, so a tenant is counted
once however often its message is retried.
"""
from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Iterable

from shared.billing import Invoice, InvoiceLine, Period, parse_plan
from shared.billing.observations import format_instant, parse_instant

INVOICES = "invoices"
RUNS = "runs"

# The close's steps in order; `step` on the invoice row is the last one done.
QUEUED, COMPUTED, NUMBERED, RENDERED, STORED, DRAFTED, EMAILED = (
    "queued", "computed", "numbered", "rendered", "stored", "drafted", "emailed")
STEPS = (QUEUED, COMPUTED, NUMBERED, RENDERED, STORED, DRAFTED, EMAILED)
NOTHING_TO_BILL = "nothing to bill"
FINISHED_STEPS = frozenset({EMAILED, NOTHING_TO_BILL})

_CHUNK = 60_000  # bytes per binary property (Table Storage allows 64 KiB)
_MAX_CHUNKS = 15  # an entity holds at most 1 MiB


class Conflict(Exception):
    """The row changed since it was read (HTTP 412), or was created meanwhile (409)."""


@dataclass
class Row:
    """A table row as read: its properties and the ETag the next write must match."""
    values: dict[str, Any]
    etag: str

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None or value == "" else value

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def time(self, name: str) -> datetime | None:
        value = self.get(name)
        return parse_instant(value, name) if value else None


def _row(entity: Any) -> Row:
    return Row(dict(entity), entity.metadata["etag"])


def _is_precondition_failure(error: Exception) -> bool:
    return getattr(error, "status_code", None) in (409, 412)


# --------------------------------------------------------------------------- invoice JSON

def pack_json(data: Any, prefix: str, what: str) -> dict[str, Any]:
    """Row properties holding `data` as gzip-compressed JSON in binary chunks (`{prefix}_00`, ...,
    and `{prefix}_chunks`): a string property holds only 32K characters."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    packed = gzip.compress(payload, compresslevel=6, mtime=0)
    chunks = [packed[i:i + _CHUNK] for i in range(0, len(packed), _CHUNK)] or [b""]
    if len(chunks) > _MAX_CHUNKS:
        raise ValueError(f"{what} is too large to store in one table row ({len(packed)} bytes compressed)")
    properties: dict[str, Any] = {f"{prefix}_{n:02d}": chunk for n, chunk in enumerate(chunks)}
    properties[f"{prefix}_chunks"] = len(chunks)
    return properties


def unpack_json(row: Row, prefix: str) -> Any:
    """What pack_json stored in the row, or None if it holds none."""
    count = int(row.get(f"{prefix}_chunks", 0))
    if not count:
        return None
    packed = b"".join(bytes(row.values[f"{prefix}_{n:02d}"]) for n in range(count))
    return json.loads(gzip.decompress(packed).decode("utf-8"))


def pack_invoice(invoice: Invoice) -> dict[str, Any]:
    """The row properties that freeze an invoice (its plan and its JSON)."""
    return pack_json({"plan": invoice.plan.to_dict(), "invoice": invoice.to_json()}, "invoice",
                     f"the invoice of {invoice.plan.name} for {invoice.period} ({len(invoice.lines)} lines)")


def unpack_invoice(row: Row) -> Invoice:
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
    """Rows of the `invoices` table, each change guarded by the row's ETag."""

    def __init__(self, storage: Any, table: str = INVOICES):
        self._storage, self._table_name = storage, table

    @property
    def _table(self):
        return self._storage.table(self._table_name)

    def get(self, tenant_id: str, period: Period | str) -> Row | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return _row(self._table.get_entity(tenant_id, str(period)))
        except ResourceNotFoundError:
            return None

    def create(self, tenant_id: str, period: Period | str, values: dict[str, Any]) -> Row:
        """Creates the row; Conflict if it exists already."""
        from azure.core.exceptions import ResourceExistsError

        entity = {"PartitionKey": tenant_id, "RowKey": str(period), **values}
        try:
            result = self._table.create_entity(entity)
        except ResourceExistsError:
            raise Conflict(f"invoice row {tenant_id}/{period} exists") from None
        return Row(entity, result["etag"])

    def update(self, row: Row, changes: dict[str, Any]) -> Row:
        """Merges the changes into the row if nobody changed it since it was read; Conflict if
        somebody did. Returns the row as it now is."""
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"], **changes}
        try:
            result = self._table.update_entity(entity, mode=UpdateMode.MERGE, etag=row.etag,
                                               match_condition=MatchConditions.IfNotModified)
        except ResourceNotFoundError:
            raise Conflict(f"invoice row {row['PartitionKey']}/{row['RowKey']} is gone") from None
        except HttpResponseError as error:
            if _is_precondition_failure(error):
                raise Conflict(f"invoice row {row['PartitionKey']}/{row['RowKey']} changed meanwhile") from None
            raise
        return Row({**row.values, **changes}, result["etag"])

    def of_period(self, period: Period | str) -> list[Row]:
        """Every client's row for a period (a scan of the table: for reports, not hot paths)."""
        rows = self._table.query_entities("RowKey eq @period", parameters={"period": str(period)})
        return [_row(entity) for entity in rows]

    def of_tenant(self, tenant_id: str) -> list[Row]:
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": tenant_id})
        return [_row(entity) for entity in rows]


# --------------------------------------------------------------------------- runs table

RUN_ROW = "run"
MEMBER = "tenant|"


@dataclass
class RunMember:
    tenant_id: str
    name: str
    period: str


@dataclass
class RunProgress:
    """What finishing a tenant did to its run."""
    header: Row
    counted: bool  # this call recorded the outcome (False: it was recorded before)
    complete: bool = field(init=False)

    def __post_init__(self) -> None:
        self.complete = int(self.header.get("finished", 0)) >= int(self.header.get("tenants_queued", 0))


class RunStore:
    def __init__(self, storage: Any, table: str = RUNS):
        self._storage, self._table_name = storage, table

    @property
    def _table(self):
        return self._storage.table(self._table_name)

    def create(self, run_id: str, period: Period | str, trigger: str, started: datetime,
               members: Iterable[RunMember]) -> Row:
        """The run's member rows, then its header (its existence means the run is complete
        as a record). Member rows go in transactions of up to 100."""
        members = list(members)
        operations = [("upsert", {"PartitionKey": run_id, "RowKey": MEMBER + m.tenant_id, "tenant_id": m.tenant_id,
                                  "name": m.name, "period": m.period, "outcome": ""}) for m in members]
        for start in range(0, len(operations), 100):
            self._table.submit_transaction(operations[start:start + 100])
        header = {"PartitionKey": run_id, "RowKey": RUN_ROW, "period": str(period), "trigger": trigger,
                  "started": format_instant(started), "tenants_queued": len(members), "finished": 0,
                  "failed": 0, "finished_at": ""}
        result = self._table.upsert_entity(header)
        return Row(header, result["etag"])

    def header(self, run_id: str) -> Row | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return _row(self._table.get_entity(run_id, RUN_ROW))
        except ResourceNotFoundError:
            return None

    def members(self, run_id: str) -> list[Row]:
        rows = self._table.query_entities("PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                                          parameters={"pk": run_id, "low": MEMBER, "high": "tenant}"})
        return [_row(entity) for entity in rows]

    def runs_of_period(self, period: Period | str) -> list[Row]:
        rows = self._table.query_entities("RowKey eq @run and period eq @period",
                                          parameters={"run": RUN_ROW, "period": str(period)})
        return sorted((_row(entity) for entity in rows), key=lambda r: r.get("started", ""))

    def finish_member(self, run_id: str, tenant_id: str, outcome: dict[str, Any], *,
                      failed: bool) -> RunProgress | None:
        """Records a tenant's outcome and counts it on the run, in one transaction guarded by
        both rows' ETags, once: a tenant already finished in this run is left as it is.
        None when the run has no record (its timer died between claiming and recording it)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import TableTransactionError, UpdateMode

        for attempt in range(50):
            header = self.header(run_id)
            if header is None:
                return None
            try:
                member = _row(self._table.get_entity(run_id, MEMBER + tenant_id))
            except ResourceNotFoundError:
                return None
            if member.get("outcome"):
                return RunProgress(header, counted=False)
            guard = {"mode": UpdateMode.MERGE, "match_condition": MatchConditions.IfNotModified}
            counts = {"finished": int(header.get("finished", 0)) + 1,
                      "failed": int(header.get("failed", 0)) + (1 if failed else 0)}
            try:
                results = self._table.submit_transaction([
                    ("update", {"PartitionKey": run_id, "RowKey": MEMBER + tenant_id, **outcome},
                     {**guard, "etag": member.etag}),
                    ("update", {"PartitionKey": run_id, "RowKey": RUN_ROW, **counts},
                     {**guard, "etag": header.etag}),
                ])
            except TableTransactionError:
                time.sleep(0.01 * (attempt % 10))
                continue
            return RunProgress(Row({**header.values, **counts}, results[1]["etag"]), counted=True)
        raise RuntimeError(f"run {run_id}: the run record kept changing; tenant {tenant_id} not counted")

    @staticmethod
    def summary(header: Row) -> dict[str, Any] | None:
        """The run's stored summary, or None while the run has not finished."""
        return unpack_json(header, "summary") if header.get("finished_at") else None

    def record_summary(self, header: Row, summary: dict[str, Any], finished_at: datetime) -> bool:
        """Stores the run's summary once (setting `finished_at`); False if another finisher
        stored it first."""
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError
        from azure.data.tables import UpdateMode

        entity = {"PartitionKey": header["PartitionKey"], "RowKey": RUN_ROW,
                  **pack_json(summary, "summary", f"the summary of run {header['PartitionKey']}"),
                  "finished_at": format_instant(finished_at)}
        try:
            self._table.update_entity(entity, mode=UpdateMode.MERGE, etag=header.etag,
                                      match_condition=MatchConditions.IfNotModified)
        except HttpResponseError as error:
            if _is_precondition_failure(error):
                return False
            raise
        return True


def lease_expiry(now: datetime, ttl: timedelta) -> str:
    return format_instant(now + ttl)
