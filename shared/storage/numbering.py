"""Invoice numbers: one gap-free, increasing sequence per MSP (all client tenants share it).

The counter is one row (table `counters`, PartitionKey `invoice-number`, RowKey `msp`) holding
`last_number` and `last_assigned_to` (`<tenant id>|<period>`), changed only with its ETag.
Taking a number is a reservation on that row followed by recording the number on the invoice
record; a crash between the two must neither lose the number (a gap) nor give it twice. The
close reserves a number for an invoice it has just computed and writes the computed invoice and
its number in one write (`reserve`), guarded by the record's ETag (a record that does not exist
yet is created by that write); a correcting document, created computed, records its number on
its record (`assign`).

* A runner whose invoice is named in `last_assigned_to` finds its own reservation and records
  it (a retry after a crash, or a second runner of the same invoice).
* Before reserving the next number, a runner settles the current reservation: if the invoice it
  names holds it, or is computed and can be given it (its runner died before recording it), the
  number stays there. If that invoice's compute write never landed (its runner died, or is just
  about to write), its record is fenced: changed (or created, queued) so that the pending write,
  guarded by the ETag read before it, fails; and the number goes to the next invoice instead.
  The fenced invoice's runner (or its retry) computes it again and reserves a new number.
So every number handed out is on exactly one invoice, and the numbers on invoices are 1, 2, 3,
... with no hole.

Numbers are taken only by invoices that are final (computed, with something to bill).
The sequence never restarts: `{year}` and `{month}` in INVOICE_NUMBER_FORMAT are the invoice
date's and only decorate the number (INV-2026-00041, INV-2027-00042), so that any format stays
unique.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from datetime import date, datetime
from typing import Any, Callable, TypeVar

from shared.billing.observations import format_instant
from shared.errors import Busy, CloseError
from shared.invoicing.numbers import check_format, format_number
from shared.invoicing.steps import Step
from shared.ports import InvoiceRepository
from shared.storage.invoices import Conflict, InvoiceRecord
from shared.storage.records import Record, TableValue
from shared.storage.tables import create_or_get, merge_if_unchanged

log = logging.getLogger("prorata.close")

TABLE = "counters"
PARTITION, ROW = "invoice-number", "msp"


def holder(tenant_id: str, period: str) -> str:
    return f"{tenant_id}|{period}"


# Reservations this process has seen recorded on their invoice ("<tenant>|<period>" -> number):
# the next reservation need not read that invoice again to settle it. A few recent ones suffice.
_recorded: dict[str, int] = {}


def _remember(reserved_for: str, seq: int) -> None:
    if len(_recorded) > 256:
        _recorded.clear()
    _recorded[reserved_for] = seq


# Each counter row as this process last read or wrote it ((table URL, partition) -> row): the next
# reservation writes with its ETag at once. If another process reserved meanwhile, the ETag no
# longer matches, the write is refused, and the row is read again: a stale copy costs the read it
# was meant to save, never a number.
_counters: dict[tuple[str, str], Record] = {}
T = TypeVar("T")
_lock = threading.Lock()  # one reservation at a time in this process: its closes never race each other


class InvoiceNumbering:
    partition = PARTITION  # one counter row per sequence (credit notes have their own)

    def __init__(self, storage: Any, invoices: InvoiceRepository, *, template: str, prefix: str):
        check_format(template, prefix)
        self._storage, self._invoices = storage, invoices
        self.template, self.prefix = template, prefix

    @property
    def _table(self) -> Any:
        return self._storage.table(TABLE)

    def last_number(self) -> int:
        row = self._counter()
        return int(row.get("last_number", 0))

    def _counter(self) -> Record:
        return create_or_get(self._table, {"PartitionKey": self.partition, "RowKey": ROW, "last_number": 0,
                                           "last_assigned_to": ""})

    @property
    def _key(self) -> tuple[str, str]:
        return str(self._table.url), self.partition

    def assign(self, tenant_id: str, period: str, now: datetime, row: InvoiceRecord | None = None) -> InvoiceRecord:
        """Gives the computed invoice of (tenant, period) its number, or finds the one it has.
        Returns the invoice row as it now is. `row`: the invoice row as the caller has it (its
        ETag guards the write, so a stale one only costs a read)."""
        for attempt in range(200):
            if row is None or attempt:
                row = self._invoices.get(tenant_id, period)
            if row is None:
                raise CloseError(f"invoice {tenant_id}/{period} vanished before it was numbered")
            if row.get("number"):
                return row
            if row.get("step") != Step.COMPUTED:
                raise CloseError(f"invoice {tenant_id}/{period} is at step {row.get('step')!r}, not computed: "
                                   "only a computed invoice takes a number")
            with _lock:
                seq = self._reserve(holder(tenant_id, period), now)
            return self._record(tenant_id, period, seq, now, row)
        raise Busy("the invoice number counter kept changing; giving up for now (the close is retried)")

    def reserve(self, tenant_id: str, period: str, now: datetime, issued_on: date,
                write: Callable[[int, str], T]) -> T:
        """Reserves a number for the invoice of (tenant, period), which its close has computed,
        and has `write(sequence number, number)` write it with the computed invoice in one
        write guarded by its record's ETag (see the module's docstring): the same number again
        for it until another invoice reserves. This process's next reservation waits for the
        write, so it never finds the number reserved and not written."""
        with _lock:
            seq = self._reserve(holder(tenant_id, period), now)
            written = write(seq, format_number(self.template, self.prefix, issued_on, seq))
            _remember(holder(tenant_id, period), seq)
            return written

    def _reserve(self, me: str, now: datetime) -> int:
        """The number reserved for `me` on the counter, after settling the previous reservation."""
        from azure.core.exceptions import ResourceNotFoundError

        for attempt in range(200):
            counter = _counters.get(self._key) or self._counter()
            reserved_for = counter.get("last_assigned_to", "")
            last = int(counter.get("last_number", 0))
            if reserved_for == me and self._key in _counters:  # only the row itself is trusted for that
                _counters.pop(self._key)
                counter = self._counter()
                reserved_for, last = counter.get("last_assigned_to", ""), int(counter.get("last_number", 0))
            if reserved_for == me:
                return last
            taken_over = False
            if reserved_for and _recorded.get(reserved_for) != last:
                taken_over = not self._settle(reserved_for, last, now)  # True: that invoice will not have it
            seq = last if taken_over else last + 1
            values: dict[str, TableValue] = {"PartitionKey": self.partition, "RowKey": ROW, "last_number": seq,
                                             "last_assigned_to": me}
            try:
                reserved = merge_if_unchanged(self._table, values, counter.etag, replace=True)
            except ResourceNotFoundError:  # the copy names a row that is gone (a new table): read it
                reserved = None
            if reserved is None:
                if _counters.pop(self._key, None) is None:  # read just now: another invoice took it
                    time.sleep(random.uniform(0, 0.02 * min(attempt + 1, 10)))
                continue
            _counters[self._key] = Record(values, reserved)
            if taken_over:
                log.warning("Invoice number %d, reserved for %s whose close stopped before writing it, goes to "
                            "%s instead.", seq, reserved_for, me)
            return seq
        raise Busy("the invoice number counter kept changing; giving up for now (the close is retried)")

    def _record(self, tenant_id: str, period: str, seq: int, now: datetime,
                known: InvoiceRecord | None = None) -> InvoiceRecord:
        """Writes reserved number `seq` on the invoice (idempotent); `known`: the row as last read."""
        for attempt in range(50):
            row = known if known is not None and not attempt else self._invoices.get(tenant_id, period)
            if row is None:
                raise CloseError(f"invoice {tenant_id}/{period} vanished while it was being numbered")
            if row.get("number_seq") is not None and row.get("number"):
                if int(row["number_seq"]) != seq:
                    raise CloseError(f"invoice {tenant_id}/{period} already has number {row['number']}, "
                                       f"yet the counter reserved {seq} for it")
                _remember(holder(tenant_id, period), seq)
                return row
            issued_on = date.fromisoformat(row["issued_on"])
            number = format_number(self.template, self.prefix, issued_on, seq)
            try:
                recorded = self._invoices.update(row, {"number": number, "number_seq": seq, "step": Step.NUMBERED,
                                                       "numbered_at": format_instant(now)})
                _remember(holder(tenant_id, period), seq)
                return recorded
            except Conflict:
                continue  # its runner touched it (lease, status): read again
        raise Busy(f"invoice {tenant_id}/{period}: could not record number {seq}")

    def _settle(self, reserved_for: str, seq: int, now: datetime) -> bool:
        """Settles reservation `seq` of `reserved_for`: True if the number is on that invoice (or
        recorded there now), False if it never will be (the invoice is fenced, finished without
        it, or gone), so the next reservation takes the number over."""
        tenant_id, _, period = reserved_for.partition("|")
        for _ in range(20):
            row = self._invoices.get(tenant_id, period)
            if row is None:
                try:  # its compute write (a create) has not landed: make it fail if it ever comes
                    self._invoices.create(tenant_id, period, {"step": Step.QUEUED, "status": "in progress",
                                                              "queued_at": format_instant(now), "number_fenced": seq})
                    return False
                except Conflict:
                    continue
            if row.get("number"):
                if row.get("number_seq") is not None and int(row["number_seq"]) != seq:
                    return False  # it holds another number: this one is free
                _remember(reserved_for, seq)
                return True
            if row.get("step") == Step.COMPUTED:
                log.warning("Invoice number %d was reserved for %s by a close that stopped before recording it; "
                            "recording it on that invoice now.", seq, reserved_for)
                self._record(tenant_id, period, seq, now)
                return True
            if row.get("step") != Step.QUEUED:
                return False  # finished without a number (nothing to bill, a review draft)
            try:  # queued: its compute write, guarded by the ETag it read, fails after this one
                self._invoices.update(row, {"number_fenced": seq})
                return False
            except Conflict:
                continue
        raise Busy(f"invoice {reserved_for} kept changing while number {seq} reserved for it was settled")


class CreditNoteNumbering(InvoiceNumbering):
    """Credit notes: a gap-free sequence of their own (CREDIT_NOTE_NUMBER_FORMAT), same rules."""
    partition = "credit-note-number"
