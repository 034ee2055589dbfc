"""The ledger on Azure Table Storage (Azurite locally). See entities.py for the layout.

Appending is idempotent and safe with several writers for one tenant: a user's state row and
that user's new records are written in one batch transaction guarded by the state row's ETag.
A writer that loses the race reads again and finds the change already there, so nothing is lost
or doubled. An observation older than the user's current state (a backfill) is compared with
the state in force at its time; its record key is deterministic, so a replay conflicts instead
of doubling.
"""
from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, Iterable

from shared.billing import Observation, Period
from shared.errors import Busy
from shared.storage import ledger_entities as E
from shared.ports import MonthSlice

log = logging.getLogger(__name__)

TABLE = "ledger"
_BATCH = 100            # Table Storage's limit of operations per transaction
_SNAPSHOT_CHUNK = 30_000  # characters per snapshot entity (a string property holds 32K)
_GUARD = "meta|snapshots"


_row_key = itemgetter("RowKey")
_opening_order = attrgetter("at", "user_id")


class LedgerConflict(Busy):
    """Other writers kept changing the same users; the caller may retry later."""


class TableLedger:
    def __init__(self, storage: Any, table_name: str = TABLE):
        self._storage = storage
        self._table_name = table_name
        self._known_snapshots: set[tuple[str, str]] = set()
        # tenant -> (when, user ids asked, their state rows) of the latest states_of: a sync reads
        # the states, then appends, so the append can start from them (their ETags guard it)
        self._recent_rows: dict[str, tuple[float, frozenset[str], dict[str, Any]]] = {}

    @property
    def _table(self) -> Any:
        return self._storage.table(self._table_name)

    # --- reading -----------------------------------------------------------------------------
    def _query(self, tenant_id: str, low: str, high: str, select: list[str] | None = None,
               **conditions: str) -> Iterable[dict[str, Any]]:
        text = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        parameters = {"pk": tenant_id, "low": low, "high": high}
        for name, value in conditions.items():
            text += f" and {name} eq @{name}"
            parameters[name] = value
        return self._table.query_entities(text, parameters=parameters, select=select)

    def current_states(self, tenant_id: str) -> dict[str, Observation]:
        return {row["user_id"]: E.from_entity(row) for row in self._query(tenant_id, E.USER, "user}")}

    def states_of(self, tenant_id: str, user_ids: set[str]) -> dict[str, Observation]:
        rows = self._user_rows(tenant_id, user_ids)
        self._recent_rows[tenant_id] = (time.monotonic(), frozenset(user_ids), rows)
        return {uid: E.from_entity(row) for uid, row in rows.items()}

    def _rows_for_append(self, tenant_id: str, user_ids: set[str], first_try: bool) -> dict[str, Any]:
        """The users' state rows: those states_of just read when they cover these users (a row
        changed since fails the append's ETag check, and the retry reads them again)."""
        recent = self._recent_rows.pop(tenant_id, None)
        if first_try and recent is not None and time.monotonic() - recent[0] < 10 and user_ids <= recent[1]:
            return {uid: row for uid, row in recent[2].items() if uid in user_ids}
        return self._user_rows(tenant_id, user_ids)

    def _user_rows(self, tenant_id: str, user_ids: set[str]) -> dict[str, Any]:
        """The state rows of these users: one query either way (the whole partition's state rows
        for many users, else the rows named one by one in the filter, as parameters)."""
        if not user_ids:
            return {}
        if len(user_ids) > 40:
            rows = {row["user_id"]: row for row in self._query(tenant_id, E.USER, "user}")}
            return {uid: rows[uid] for uid in user_ids if uid in rows}
        names = {f"u{n}": E.USER + E.key_part(uid) for n, uid in enumerate(sorted(user_ids))}
        # the SDK reads a parameter name up to the next space, so the parenthesis stands apart
        text = "PartitionKey eq @pk and ( " + " or ".join(f"RowKey eq @{name}" for name in names) + " )"
        rows = self._table.query_entities(text, parameters={"pk": tenant_id, **names})
        return {row["user_id"]: row for row in rows}

    def _user_records(self, tenant_id: str, user_id: str) -> list[tuple[Observation, int]]:
        rows = self._query(tenant_id, E.RECORD, "rec}", user_id=user_id)
        return sorted(((E.from_entity(row), int(row["RowKey"].rsplit("|", 1)[1])) for row in rows),
                      key=lambda pair: (pair[0].at, pair[1]))

    def read_month(self, tenant_id: str, period: Period, zone: str) -> MonthSlice:
        """The opening state of every user who exists at the start of the UTC month in which the
        local month's first day ends, then every record from that instant up to the local month's
        end. A day is billed by the state at its end, so the states before that UTC midnight
        matter only through the snapshot taken at it: east of UTC, where the local month starts
        in the previous UTC month, the read no longer pays for that month's records."""
        end = period.end(zone)
        month = E.month_key(period.day_ends(zone)[0])
        # The snapshot's rows and the records in one query (two RowKey ranges of the partition):
        # "rec|..." sorts before "snap|...", so the records come first, in time order.
        rows = self._table.query_entities(
            "PartitionKey eq @pk and ( ( RowKey ge @rec and RowKey lt @until ) or "
            "( RowKey ge @snap and RowKey lt @snapend ) )",
            parameters={"pk": tenant_id, "rec": E.RECORD + E.stamp(E.month_start(month)),
                        "until": E.RECORD + E.stamp(end), "snap": f"{E.SNAPSHOT}{month}|",
                        "snapend": f"{E.SNAPSHOT}{month}}}"})
        records, chunks = [], []
        for row in rows:
            if row["RowKey"].startswith(E.RECORD):
                records.append(E.from_entity(row))
            else:
                chunks.append(row)
        if chunks:  # the users who exist, decoded straight from the stored rows (a deleted one is not)
            opening = [E.from_row(state) for state in self._stored_states(tenant_id, month, chunks)
                       if not E.row_deleted(state)]
        else:
            opening = [state for state in self._build_snapshot(tenant_id, month).values() if not state.deleted]
        opening.sort(key=_opening_order)
        return MonthSlice(opening=tuple(opening), records=tuple(records))

    def learned_since(self, tenant_id: str, start: datetime, end: datetime,
                      since: datetime) -> list[tuple[Observation, datetime]]:
        """The records effective in [start, end) that the ledger learned after `since`, each
        with the time it was learned (what a correction of an invoiced month explains)."""
        rows = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high and observed_at gt @since",
            parameters={"pk": tenant_id, "low": E.RECORD + E.stamp(start), "high": E.RECORD + E.stamp(end),
                        "since": E.stamp(since)})  # stamps are fixed-width: text order is time order
        learned = [(E.from_entity(row), E.unstamp(row["observed_at"])) for row in rows]
        return sorted(learned, key=lambda pair: pair[0].at)

    # --- snapshots (the opening state of each UTC month) --------------------------------------
    def _snapshot(self, tenant_id: str, month: str) -> dict[str, Observation]:
        rows = list(self._query(tenant_id, f"{E.SNAPSHOT}{month}|", f"{E.SNAPSHOT}{month}}}"))
        if rows:
            return {state.user_id: state for state in map(E.from_row, self._stored_states(tenant_id, month, rows))}
        return self._build_snapshot(tenant_id, month)

    def _stored_states(self, tenant_id: str, month: str, rows: list[dict[str, Any]]) -> list[list[Any]]:
        """The users' states (E.to_row's lists) a stored snapshot's rows, its chunks, hold."""
        self._known_snapshots.add((tenant_id, month))
        return [state for row in sorted(rows, key=_row_key) for state in json.loads(row["states"])]

    def _ensure_snapshot(self, tenant_id: str, month: str) -> None:
        if (tenant_id, month) not in self._known_snapshots:
            self._snapshot(tenant_id, month)

    def _build_snapshot(self, tenant_id: str, month: str) -> dict[str, Observation]:
        """Replays the records since the latest earlier snapshot (or since the beginning) up to
        the month's start, then stores the result. The store is guarded by the ETag of the
        tenant's `meta|snapshots` row, which every writer touches after writing records: if one
        wrote meanwhile, this snapshot may be stale and is computed again."""
        from azure.core import MatchConditions
        from azure.data.tables import TableTransactionError, UpdateMode

        states: dict[str, Observation] = {}
        for _ in range(3):
            guard = self._snapshot_guard(tenant_id)
            states = self._replay_until(tenant_id, month)
            rows = [E.to_row(s) for s in sorted(states.values(), key=lambda s: s.user_id)]
            operations: list[tuple] = [("update", {"PartitionKey": tenant_id, "RowKey": _GUARD},
                                        {"mode": UpdateMode.MERGE, "etag": guard,
                                         "match_condition": MatchConditions.IfNotModified})]
            operations += [("upsert", {"PartitionKey": tenant_id, "RowKey": f"{E.SNAPSHOT}{month}|{n:04d}",
                                       "states": chunk}) for n, chunk in enumerate(_chunks(rows))]
            if len(operations) > _BATCH:
                return states  # too large to store in one transaction: replayed on each read
            try:
                self._table.submit_transaction(operations)
            except TableTransactionError:
                continue  # a writer changed the history while we replayed it
            self._known_snapshots.add((tenant_id, month))
            return states
        # Writers keep changing this history right now: the replay is right as of its reading,
        # and the snapshot (only a shortcut) will be stored by a later, quieter read.
        return states

    def _replay_until(self, tenant_id: str, month: str) -> dict[str, Observation]:
        earlier = {row["RowKey"].split("|")[1] for row in
                   self._query(tenant_id, E.SNAPSHOT, f"{E.SNAPSHOT}{month}|", select=["RowKey"])}
        states: dict[str, Observation] = {}
        low = E.RECORD
        if earlier:
            base = max(earlier)
            states = self._snapshot(tenant_id, base)
            low = E.RECORD + E.stamp(E.month_start(base))
        for row in self._query(tenant_id, low, E.RECORD + E.stamp(E.month_start(month))):
            states[row["user_id"]] = E.from_entity(row)  # records come in time order
        return states

    def _snapshot_guard(self, tenant_id: str) -> str:
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        try:
            return self._table.get_entity(tenant_id, _GUARD, select=["RowKey"]).metadata["etag"]
        except ResourceNotFoundError:
            try:
                return self._table.create_entity({"PartitionKey": tenant_id, "RowKey": _GUARD})["etag"]
            except ResourceExistsError:
                return self._snapshot_guard(tenant_id)

    def _invalidate_snapshots_after(self, tenant_id: str, month: str) -> None:
        """Records written in `month` change the opening state of every later month: touch the
        guard (so that a snapshot being built from the old history is not stored), then drop
        the later snapshots."""
        from azure.core.exceptions import ResourceNotFoundError

        self._table.upsert_entity({"PartitionKey": tenant_id, "RowKey": _GUARD})
        later = E.next_month(month)
        for row in self._query(tenant_id, f"{E.SNAPSHOT}{later}", f"{E.SNAPSHOT}~", select=["RowKey"]):
            try:
                self._table.delete_entity(tenant_id, row["RowKey"])
            except ResourceNotFoundError:
                pass
        self._known_snapshots = {key for key in self._known_snapshots
                                 if key[0] != tenant_id or key[1] <= month}

    # --- appending ---------------------------------------------------------------------------
    def append(self, tenant_id: str, observations: Iterable[Observation], *, observed_at: datetime,
               source: str) -> int:
        """Appends every observation that really changes its user. Returns the records written."""
        pending = sorted(observations, key=lambda o: o.at)  # stable: ties keep input order
        tally = _Tally()
        for attempt in range(20):
            try:
                self._append_once(tenant_id, pending, observed_at, source, tally, first_try=attempt == 0)
                return tally.written
            except _Retry:
                log.info("ledger: tenant %s: another writer changed the same users; reading again", tenant_id)
        raise LedgerConflict(f"tenant {tenant_id}: gave up after 20 concurrent-write retries")

    def _append_once(self, tenant_id: str, pending: list[Observation], observed_at: datetime,
                     source: str, tally: "_Tally", first_try: bool = False) -> None:
        rows = self._rows_for_append(tenant_id, {o.user_id for o in pending}, first_try)
        current: dict[str, tuple[Observation, Any]] = {uid: (E.from_entity(row), row) for uid, row in rows.items()}
        seqs = {uid: int(row.get("seq", 0)) for uid, row in rows.items()}
        live: dict[str, list[tuple[Observation, int]]] = defaultdict(list)  # month -> changes
        late: list[Observation] = []
        for observation in pending:
            state = current.get(observation.user_id, (None, None))[0]
            if state is not None and observation.at < state.at:
                late.append(observation)
                continue
            if observation.same_state(state):
                continue
            seq = seqs.get(observation.user_id, -1) + 1 if state is not None and state.at == observation.at else 0
            seqs[observation.user_id] = seq
            current[observation.user_id] = (observation, current.get(observation.user_id, (None, None))[1])
            live[E.month_key(observation.at)].append((observation, seq))
        if live:
            self._write_live(tenant_id, live, rows, observed_at, source, tally)
        earliest_late: str | None = None
        for observation in late:
            if self._append_late(tenant_id, observation, observed_at, source):
                tally.written += 1
                month = E.month_key(observation.at)
                earliest_late = month if earliest_late is None else min(earliest_late, month)
        if earliest_late is not None:
            self._invalidate_snapshots_after(tenant_id, earliest_late)

    def _write_live(self, tenant_id: str, live: dict[str, list[tuple[Observation, int]]],
                    rows: dict[str, Any], observed_at: datetime, source: str,
                    tally: "_Tally") -> None:
        """Writes the changes of months first..last, then keeps the snapshots right once for the
        whole append: the first month's opening exists before (the records do not change it),
        every later snapshot is dropped after, and when the changes span months the openings
        of the months after the first are computed here (the first month's snapshot, the
        records already in those months, these changes) and stored in one transaction.

        Guard: every batch of records touches the `meta|snapshots` row, so a snapshot built
        meanwhile from the history without them is not stored. When this append stores
        snapshots itself, its batches also require the guard unchanged since it read the
        history (a chain of ETags): another writer in between makes it read again."""
        months = sorted(live)
        first, last = months[0], months[-1]
        guard, earlier, opening = None, [], {}
        if last == first:
            self._ensure_snapshot(tenant_id, first)
        else:
            opening = self._snapshot(tenant_id, first)
            guard = self._snapshot_guard(tenant_id)
            earlier = [(E.from_entity(row), row["RowKey"]) for row in self._query(
                tenant_id, E.RECORD + E.stamp(E.month_start(first)), E.RECORD + E.stamp(E.month_start(last)))]
        changes = [change for month in months for change in live[month]]
        guard = self._write_month(tenant_id, changes, rows, observed_at, source, tally, guard)
        stale = [row["RowKey"] for row in self._query(tenant_id, f"{E.SNAPSHOT}{E.next_month(first)}",
                                                      f"{E.SNAPSHOT}~", select=["RowKey"])]
        self._known_snapshots = {key for key in self._known_snapshots if key[0] != tenant_id or key[1] <= first}
        if last > first and guard is not None:
            ours = [(observation, E.record_key(observation, seq)) for observation, seq in changes]
            snapshots = _openings(opening, earlier + ours, first, last)
            if self._store_snapshots(tenant_id, snapshots, stale, guard):
                return
        self._delete_rows(tenant_id, stale)

    def _store_snapshots(self, tenant_id: str, snapshots: dict[str, dict[str, Observation]],
                         stale: list[str], guard: str) -> bool:
        """Stores the months' snapshots and drops the other stale ones in one transaction, if
        the guard is still as this append left it (and all fits in one transaction)."""
        from azure.core import MatchConditions
        from azure.data.tables import TableTransactionError, UpdateMode

        upserts = [("upsert", {"PartitionKey": tenant_id, "RowKey": f"{E.SNAPSHOT}{month}|{n:04d}", "states": chunk})
                   for month, states in snapshots.items()
                   for n, chunk in enumerate(_chunks([E.to_row(s) for s in sorted(states.values(), key=lambda s: s.user_id)]))]
        keys = {operation[1]["RowKey"] for operation in upserts}
        deletes = [("delete", {"PartitionKey": tenant_id, "RowKey": key}) for key in stale if key not in keys]
        operations = [("update", {"PartitionKey": tenant_id, "RowKey": _GUARD},
                       {"mode": UpdateMode.MERGE, "etag": guard, "match_condition": MatchConditions.IfNotModified}),
                      *upserts, *deletes]
        if len(operations) > _BATCH:
            return False
        try:
            self._table.submit_transaction(operations)
        except TableTransactionError:
            return False  # another writer or builder came in between: drop, let reads rebuild
        self._known_snapshots |= {(tenant_id, month) for month in snapshots}
        return True

    def _delete_rows(self, tenant_id: str, keys: list[str]) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        for key in keys:
            try:
                self._table.delete_entity(tenant_id, key)
            except ResourceNotFoundError:
                pass

    def _write_month(self, tenant_id: str, changes: list[tuple[Observation, int]],
                     rows: dict[str, Any], observed_at: datetime, source: str,
                     tally: "_Tally", guard: str | None = None) -> str | None:
        """Writes the changes: each user's records and final state row in one transaction,
        guarded by the row's ETag (or created if the user is new). Each transaction also touches
        the snapshot guard row; given its ETag (`guard`), only if it is unchanged since. Returns
        the guard's ETag after the last transaction."""
        from azure.core import MatchConditions
        from azure.data.tables import TableTransactionError, UpdateMode

        by_user: dict[str, list[tuple[Observation, int]]] = defaultdict(list)
        for observation, seq in changes:
            by_user[observation.user_id].append((observation, seq))
        batch: list[tuple] = []
        batch_users: list[str] = []

        def flush() -> None:
            nonlocal batch, batch_users, guard
            if not batch:
                return
            touch = {"PartitionKey": tenant_id, "RowKey": _GUARD}
            batch.append(("upsert", touch, {"mode": UpdateMode.MERGE}) if guard is None else
                         ("update", touch, {"mode": UpdateMode.MERGE, "etag": guard,
                                            "match_condition": MatchConditions.IfNotModified}))
            batch_users.append("")
            try:
                results = self._table.submit_transaction(batch)
            except TableTransactionError as error:
                raise _Retry() from error
            for user_id, result in zip(batch_users, results):
                if user_id:
                    rows[user_id] = {**rows.get(user_id, {}), "etag": result.get("etag")}
            guard = results[-1].get("etag")
            tally.written += sum(1 for op in batch if op[1]["RowKey"].startswith(E.RECORD))
            batch, batch_users = [], []

        for user_id, items in by_user.items():
            for start in range(0, len(items), _BATCH - 2):
                part = items[start:start + _BATCH - 2]
                if len(batch) + len(part) + 2 > _BATCH:  # with the state row and the guard
                    flush()
                for observation, seq in part:
                    batch.append(("create", {"PartitionKey": tenant_id, "RowKey": E.record_key(observation, seq),
                                             **E.state_fields(observation), "observed_at": E.stamp(observed_at),
                                             "source": source}))
                    batch_users.append("")
                last, last_seq = part[-1]
                state_row = {"PartitionKey": tenant_id, "RowKey": E.USER + E.key_part(user_id),
                             **E.state_fields(last), "seq": last_seq, "observed_at": E.stamp(observed_at)}
                known = rows.get(user_id)
                if known is None:
                    batch.append(("create", state_row))
                else:
                    etag = known.get("etag") or known.metadata["etag"]
                    batch.append(("update", state_row, {"mode": UpdateMode.REPLACE, "etag": etag,
                                                        "match_condition": MatchConditions.IfNotModified}))
                batch_users.append(user_id)
                if start + len(part) < len(items):
                    flush()  # the next part needs this part's ETag
        flush()
        return guard

    def _append_late(self, tenant_id: str, observation: Observation, observed_at: datetime, source: str) -> int:
        """A back-dated observation: recorded if it differs from the state in force at its time."""
        from azure.core.exceptions import ResourceExistsError

        history = self._user_records(tenant_id, observation.user_id)
        in_force = [pair for pair in history if pair[0].at <= observation.at]
        if in_force and observation.same_state(in_force[-1][0]):
            return 0
        seq = in_force[-1][1] + 1 if in_force and in_force[-1][0].at == observation.at else 0
        entity = {"PartitionKey": tenant_id, "RowKey": E.record_key(observation, seq),
                  **E.state_fields(observation), "observed_at": E.stamp(observed_at), "source": source}
        try:
            self._table.create_entity(entity)
        except ResourceExistsError:
            raise _Retry() from None
        return 1


def _openings(opening: dict[str, Observation], records: list[tuple[Observation, str]], first: str,
              last: str) -> dict[str, dict[str, Observation]]:
    """Every user's state at the start of each month after `first` up to `last`, from the state
    at the start of `first` and the records (with their keys) from then on."""
    states = dict(opening)
    result: dict[str, dict[str, Observation]] = {}
    ordered = iter(sorted(records, key=lambda pair: pair[1]))  # record keys sort in time order
    pending = next(ordered, None)
    month = E.next_month(first)
    while month <= last:
        start = E.month_start(month)
        while pending is not None and pending[0].at < start:
            states[pending[0].user_id] = pending[0]
            pending = next(ordered, None)
        result[month] = dict(states)
        month = E.next_month(month)
    return result


def _chunks(rows: list[list[Any]]) -> Iterable[str]:
    """JSON lists of rows, each short enough for one string property."""
    chunk: list[str] = []
    size = 2
    for row in rows:
        text = json.dumps(row)
        if chunk and size + len(text) + 1 > _SNAPSHOT_CHUNK:
            yield "[" + ",".join(chunk) + "]"
            chunk, size = [], 2
        chunk.append(text)
        size += len(text) + 1
    yield "[" + ",".join(chunk) + "]"


class _Retry(Exception):
    """Another writer got there first: read again and redo what is still missing."""


class _Tally:
    written = 0
