"""The close's step machine: a table of steps run one after the other on a client's invoice
record, under a lease, each recorded before the next begins.

The record's `step` is the last step done (shared/invoicing/steps.py); `NEXT` says which action
follows it. A runner holds a lease on the record (`lease_owner`, `lease_until`), renewed at every
step and released at the end, so two runners never work on one invoice at once and a dead
runner's lease expires. A failure is recorded on the record ("failed: <reason>", the step it
failed at) and raised, so that the queue retries it; the retry resumes after the last step done.

A step whose result a retry can make again at no risk (the rendered PDF; the archived PDF, which
is written once) is recorded with the next step that must be recorded before it goes on (the
draft, whose id must be known before it is sent): `Attempt.defer`. A failure records what was
deferred too. A fresh record (none yet, or one claimed and queued) is leased by the compute
step's own write, guarded by the ETag it was read with: computing writes nothing else, so two
runners may compute at once and only one records it; the other waits for it (`Raced`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Awaitable, Callable, Mapping

from shared.billing import Period
from shared.billing.observations import format_instant
from shared.errors import CloseError
from shared.invoicing.steps import FINISHED_STEPS, Step
from shared.ports import Clock, InvoiceRepository
from shared.services.close.reports import describe, month_label
from shared.storage.records import Conflict, InvoiceRecord, TableValue
from shared.tenants import Tenant

if TYPE_CHECKING:  # pragma: no cover
    from shared.invoicing.document import InvoiceDocument

log = logging.getLogger("prorata.close")

# A runner renews its lease at every step it records, so the lease needs to outlast the longest
# stretch between two (render, with its wait for a PDF worker, + archive + the draft's Graph call
# with its retries: well under a minute); after a crash another runner takes over once it expires.
LEASE_TTL = timedelta(minutes=2)
BUSY_WAIT_SECONDS = 90.0           # how long a runner waits for another runner of the same invoice


class Action(StrEnum):
    """The close's actions, as named in failures and reports."""
    COMPUTE = "compute"
    NUMBER = "number"
    RENDER = "render"
    STORE = "store"
    DRAFT = "draft"
    SEND = "send"


# The action each recorded step leads to.
NEXT: dict[str, Action] = {Step.QUEUED: Action.COMPUTE, Step.COMPUTED: Action.NUMBER, Step.NUMBERED: Action.RENDER,
                           Step.RENDERED: Action.STORE, Step.STORED: Action.DRAFT, Step.DRAFTED: Action.SEND}


class CloseBusy(CloseError):
    """Another runner is closing the same client and month right now."""


class LeaseLost(CloseError):
    """This runner's lease expired and another runner took the invoice over."""


class Raced(CloseError):
    """Another runner recorded a step on a record this runner had read but not leased yet."""


@dataclass
class Known:
    """What one close has read of its client, so that no step reads it again: the tenant (None
    until read) and the client's invoice records up to the month closed, as read before the
    lease (InvoiceRepository.summaries; None until read)."""
    tenant: Tenant | None = None
    history: list[InvoiceRecord] | None = None


@dataclass
class Attempt:
    """What one runner knows while it works on one invoice."""
    owner: str
    row: InvoiceRecord
    pdf: bytes | None = None
    doing: Action = Action.COMPUTE
    archived_pdf: bytes | None = None  # the PDF this runner stored itself: what the archive holds
    archived_xml: bytes | None = None  # the e-invoice this runner stored itself
    known: Known = field(default_factory=Known)
    document: InvoiceDocument | None = None  # the record's invoice document, unpacked once
    deferred: dict[str, TableValue] = field(default_factory=dict)  # done, recorded with the next save

    @property
    def leased(self) -> bool:
        """Whether the record carries this runner's lease (a fresh one is leased by its first save)."""
        return bool(self.row.etag) and self.row.get("lease_owner") == self.owner

    def defer(self, changes: Mapping[str, TableValue]) -> None:
        """A step done whose recording waits for the next save (which writes it first)."""
        self.deferred.update(changes)
        self.row = self.row.merged(changes, self.row.etag)


StepFunction = Callable[[Attempt], Awaitable[None]]


class _Unread:
    """`acquire`'s default: the record is read there."""


_UNREAD = _Unread()


class StepRunner:
    """Runs a table of steps on invoice records under a lease. `after_step(action)` is called
    after each step is recorded (a seam for observing or interrupting the steps)."""

    def __init__(self, invoices: InvoiceRepository, clock: Clock, *, lease_ttl: timedelta = LEASE_TTL,
                 busy_wait: float = BUSY_WAIT_SECONDS, after_step: Callable[[str], None] | None = None):
        self.invoices, self.now = invoices, clock
        self.lease_ttl, self.busy_wait, self._after_step = lease_ttl, busy_wait, after_step

    async def run(self, work: Attempt, steps: Mapping[Action, StepFunction]) -> None:
        """Runs the steps from the record's last step done to a finished one."""
        try:
            while work.row.get("step") not in FINISHED_STEPS:
                work.doing = NEXT[work.row.get("step")]
                await steps[work.doing](work)
                if self._after_step is not None:
                    self._after_step(work.doing)
        except Exception as error:
            error._close_step = work.doing  # type: ignore[attr-defined]
            self.record_failure(work, error)
            raise

    async def acquire(self, tenant_id: str, period: Period, owner: str, run_id: str | None,
                      first: InvoiceRecord | None | _Unread = _UNREAD, *, lazy: bool = False) -> InvoiceRecord:
        """The invoice record with this runner's lease on it (created if there is none), or the
        finished record. Waits while another runner's lease is live. `first`: the record as the
        caller has just read it (None: there is none), else it is read here. With `lazy`, a
        fresh record (none yet, or queued) is returned unleased (ETag "" if it does not exist
        yet): the runner's first save leases it (see the module's docstring)."""
        deadline = time.monotonic() + self.busy_wait
        while True:
            now = self.now()
            lease: dict[str, TableValue] = {"lease_owner": owner, "lease_until": format_instant(now + self.lease_ttl)}
            row = self.invoices.get(tenant_id, period) if isinstance(first, _Unread) else first
            first = _UNREAD
            if row is None and lazy:
                return InvoiceRecord({"PartitionKey": tenant_id, "RowKey": str(period), "step": Step.QUEUED,
                                      "status": "in progress", "run_id": run_id or "", "queued_at": format_instant(now), "attempts": 1}, "")
            if row is None:
                try:
                    return self.invoices.create(tenant_id, period, {
                        "step": Step.QUEUED, "status": "in progress", "run_id": run_id or "",
                        "queued_at": format_instant(now), "attempts": 1, **lease})
                except Conflict:
                    continue
            if row.get("step") in FINISHED_STEPS:
                return row
            if self.leased(row, now) and row.get("lease_owner") != owner:
                if time.monotonic() >= deadline:
                    what = month_label(period) if isinstance(period, Period) else period  # or a document's key
                    raise CloseBusy(f"another close of this client's {what} is running "
                                    f"(lease until {row.get('lease_until')})")
                await asyncio.sleep(0.2)
                continue
            changes: dict[str, TableValue] = {"status": "in progress", "run_id": run_id or row.get("run_id", ""),
                                              "attempts": int(row.get("attempts", 0)) + 1}
            if lazy and row.get("step") == Step.QUEUED:
                return row.merged(changes, row.etag)  # leased by the compute step's write (begin)
            try:
                return self.invoices.update(row, {**lease, **changes})
            except Conflict:
                continue

    @staticmethod
    def begin(owner: str, row: InvoiceRecord, known: Known | None = None) -> Attempt:
        """The attempt of a runner on a record `acquire` gave it: an unleased one records its
        claim (status, run, attempts) with its first save."""
        work = Attempt(owner, row, known=known or Known())
        if not work.leased:
            work.deferred = {name: row.values[name] for name in ("status", "run_id", "attempts") if name in row.values}
        return work

    @staticmethod
    def leased(row: InvoiceRecord, now: datetime) -> bool:
        until = row.time("lease_until")
        return bool(row.get("lease_owner")) and until is not None and until > now

    def save(self, work: Attempt, changes: Mapping[str, TableValue], *, release: bool = False,
             once: bool = False) -> InvoiceRecord:
        """Records a step (after the deferred ones) on the record under this runner's lease
        (renewed, or released at the end); a fresh record is leased, or created, by this write.
        `once`: never written again over a change this runner did not see (Raced instead)."""
        now = self.now()
        lease: dict[str, TableValue] = {"lease_owner": "", "lease_until": ""} if release else \
            {"lease_owner": work.owner, "lease_until": format_instant(now + self.lease_ttl)}
        changes = {**work.deferred, **changes, **lease}
        for _ in range(10):
            try:
                if not work.row.etag:  # none yet: created by this write (Conflict: another runner did)
                    values = {k: v for k, v in work.row.values.items() if k not in ("PartitionKey", "RowKey")}
                    work.row = self.invoices.create(work.row.partition_key, work.row.row_key, {**values, **changes})
                else:
                    work.row = self.invoices.update(work.row, changes)
                work.deferred = {}
                return work.row
            except Conflict:
                if once or work.row.get("lease_owner") != work.owner or not work.row.etag:
                    raise Raced("another runner recorded a step on this invoice meanwhile") from None
                current = self.invoices.get(work.row["PartitionKey"], work.row["RowKey"])
                if current is None or current.get("lease_owner") != work.owner:
                    raise LeaseLost("this runner's lease expired and another runner took the invoice over") from None
                work.row = current  # something else changed on the row (not the lease): write again
        raise CloseError("the invoice row kept changing under this runner")

    def record_failure(self, work: Attempt, error: BaseException) -> None:
        if isinstance(error, (LeaseLost, Raced)):
            return  # the row is the other runner's now
        try:
            self.save(work, {"status": f"failed: {describe(error)}", "last_error": describe(error),
                             "failed_at": format_instant(self.now()), "failed_step": str(work.doing)}, release=True)
        except Exception as inner:  # noqa: BLE001 - the original error is the one to raise
            log.warning("Could not record the failure on invoice row %s/%s: %s", work.row["PartitionKey"],
                        work.row["RowKey"], describe(inner))
