"""At most one delta at a time per tenant, and no trigger lost.

One row per tenant (table `tenants`, partition `sync-lock`), changed only under its ETag:
`owner` (empty when free) and `until` (when a dead holder's claim lapses), `pending` (a trigger
came while the delta ran) and `started` (when the latest delta began).

Rules:
- a trigger received well before the latest delta began is covered by it (that delta read
  Graph after the change): nothing to do;
- otherwise, if a delta is running, the trigger marks `pending` and ends; the holder, before
  releasing, sees the mark and runs once more;
- otherwise the trigger takes the row and runs the delta.

The same rules hold inside one process without a table round trip: the process remembers when
the deltas it ran began and which tenants it is syncing, so a burst of notifications for a
tenant costs table reads only for the first of them.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.billing.observations import format_instant, parse_instant
from shared.errors import Busy
from shared.storage.records import Record, TableValue
from shared.storage.tables import create_or_get, merge_if_unchanged, read

PARTITION = "sync-lock"


class Decision(StrEnum):
    """What a trigger does at the gate."""
    RUN = "run"          # this trigger's runner runs the delta now
    COVERED = "covered"  # a delta that began after the trigger covers it: nothing to do
    QUEUED = "queued"    # a delta is running; it goes once more for this trigger


RUN, COVERED, QUEUED = Decision.RUN, Decision.COVERED, Decision.QUEUED


class SyncGate:
    def __init__(self, storage: Any, table: str = "tenants", ttl: timedelta = timedelta(minutes=10),
                 margin: timedelta = timedelta(seconds=2)):
        self._storage, self._table_name, self._ttl, self._margin = storage, table, ttl, margin
        self._lock = threading.Lock()
        self._started: dict[str, datetime] = {}  # tenant -> when the latest delta known here began
        self._holding: dict[str, str] = {}       # tenant -> owner, for deltas running in this process
        self._pending: set[str] = set()          # tenants triggered while this process syncs them
        self._written: dict[str, Record] = {}    # tenant -> its row as this process last wrote it

    @property
    def _table(self) -> Any:
        return self._storage.table(self._table_name)

    def _row(self, tenant_id: str) -> Record:
        return create_or_get(self._table, {"PartitionKey": PARTITION, "RowKey": tenant_id, "owner": "",
                                           "until": "", "pending": False, "started": ""})

    def last_started(self, tenant_id: str) -> datetime | None:
        """When the tenant's latest delta began (None if it never ran); reads only."""
        row = read(self._table, PARTITION, tenant_id)
        return row.time("started") if row is not None else None

    def _change(self, row: Record, **fields: TableValue) -> bool:
        """Merges fields into the row if nobody changed it since it was read."""
        etag = merge_if_unchanged(self._table, {"PartitionKey": PARTITION, "RowKey": row.row_key, **fields}, row.etag)
        with self._lock:
            if etag is None:
                self._written.pop(row.row_key, None)
            else:
                self._written[row.row_key] = Record({**row.values, **fields}, etag)
        return etag is not None

    def _row_as_written(self, tenant_id: str, attempt: int) -> Record:
        """The row as this process last wrote it (its ETag tells whether anyone changed it
        since: if so, the write fails and the next attempt reads it), else as stored."""
        with self._lock:
            written = self._written.get(tenant_id) if attempt == 0 else None
        return written if written is not None else self._row(tenant_id)

    def acquire(self, tenant_id: str, owner: str, now: datetime, requested_at: datetime | None = None) -> Decision:
        """RUN if `owner` must run the delta now, COVERED or QUEUED if nothing more is needed."""
        with self._lock:
            started = self._started.get(tenant_id)
            if requested_at is not None and started is not None and requested_at < started - self._margin:
                return COVERED
            if tenant_id in self._holding:
                self._pending.add(tenant_id)
                return QUEUED
        for _ in range(20):
            row = self._row(tenant_id)
            if requested_at is not None and row.get("started") and \
                    requested_at < parse_instant(row["started"]) - self._margin:
                with self._lock:
                    self._started[tenant_id] = max(parse_instant(row["started"]), self._started.get(tenant_id, now))
                return COVERED
            free = not row.get("owner") or not row.get("until") or parse_instant(row["until"]) <= now
            if free:
                if self._change(row, owner=owner, until=format_instant(now + self._ttl), pending=False,
                                started=format_instant(now)):
                    with self._lock:
                        self._holding[tenant_id], self._started[tenant_id] = owner, now
                    return RUN
            elif row.get("pending") or self._change(row, pending=True):
                return QUEUED
        raise Busy(f"tenant {tenant_id}: the sync lock kept changing; the queue will try again")

    def release(self, tenant_id: str, owner: str, now: datetime) -> bool:
        """Frees the row, or keeps it and returns True when a trigger arrived meanwhile (the
        caller runs once more, from now)."""
        with self._lock:
            if tenant_id in self._pending and self._holding.get(tenant_id) == owner:
                self._pending.discard(tenant_id)
                self._started[tenant_id] = now
                local_rerun = True
            else:
                self._holding.pop(tenant_id, None)  # later triggers here take the table's path
                local_rerun = False
        if local_rerun:
            for attempt in range(2):  # keep the claim alive and tell other processes it began again
                row = self._row_as_written(tenant_id, attempt)
                if row.get("owner") == owner and self._change(row, started=format_instant(now),
                                                              until=format_instant(now + self._ttl)):
                    return True
            with self._lock:
                self._holding.pop(tenant_id, None)
        for attempt in range(20):
            row = self._row_as_written(tenant_id, attempt)
            if row.get("owner") != owner:
                if attempt == 0:
                    continue  # as this process wrote it last: read it as it is
                return False  # our claim lapsed and another holder took over: it runs
            if row.get("pending"):
                if self._change(row, pending=False, started=format_instant(now), until=format_instant(now + self._ttl)):
                    with self._lock:
                        self._holding[tenant_id], self._started[tenant_id] = owner, now
                    return True
            elif self._change(row, owner="", until=""):
                return False
        raise Busy(f"tenant {tenant_id}: the sync lock kept changing; the queue will try again")

    def hand_over(self, tenant_id: str, owner: str, now: datetime) -> bool:
        """Frees the row after a delta, as release does, but never keeps it for another run: True
        when a trigger arrived meanwhile, and then the row stays marked pending (and free), so
        that the caller's follow-up message (or any trigger) runs the next delta. A queue
        invocation thus holds its message for one delta at most, never for a chain of them."""
        with self._lock:
            here = self._holding.get(tenant_id) == owner
            local = here and tenant_id in self._pending
            if here:
                self._holding.pop(tenant_id, None)
                self._pending.discard(tenant_id)
        for attempt in range(20):
            row = self._row_as_written(tenant_id, attempt)
            if row.get("owner") != owner:
                if attempt == 0:
                    continue  # as this process wrote it last: read it as it is
                return local  # our claim lapsed and another holder took over; triggers seen here still need a run
            pending = local or bool(row.get("pending"))
            if self._change(row, owner="", until="", pending=pending):
                return pending
        raise Busy(f"tenant {tenant_id}: the sync lock kept changing; the queue will try again")

    def syncing_here(self, tenant_id: str) -> bool:
        """True while a delta of the tenant runs in this process."""
        with self._lock:
            return tenant_id in self._holding

    def abandon(self, tenant_id: str, owner: str) -> None:
        """Frees the row after a failure. The failed delta covers nothing: its start is forgotten,
        so the retried message (and whatever waited on this delta) runs again."""
        with self._lock:
            if self._holding.get(tenant_id) == owner:
                self._holding.pop(tenant_id, None)
                self._pending.discard(tenant_id)
            self._started.pop(tenant_id, None)
        row = self._row(tenant_id)
        if row.get("owner") == owner:
            self._change(row, owner="", until="", started="")
