"""At most one delta at a time per tenant, and no trigger lost.

A lock row per tenant (table `tenants`, partition `sync-lock`) guarded by ETags. A trigger that
finds the lock taken marks it `pending` and ends; the holder, before releasing, sees the mark and
runs the delta once more. A holder that dies leaves a lock that expires after `ttl`.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.billing.observations import format_instant, parse_instant

PARTITION = "sync-lock"


class SyncGate:
    def __init__(self, storage: Any, table: str = "tenants", ttl: timedelta = timedelta(minutes=10)):
        self._storage, self._table_name, self._ttl = storage, table, ttl

    @property
    def _table(self):
        return self._storage.table(self._table_name)

    def acquire(self, tenant_id: str, owner: str, now: datetime) -> bool:
        """True if `owner` now holds the tenant's lock; False if another holder will run again."""
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        mine = {"PartitionKey": PARTITION, "RowKey": tenant_id, "owner": owner,
                "until": format_instant(now + self._ttl), "pending": False}
        for _ in range(10):
            try:
                row = self._table.get_entity(PARTITION, tenant_id)
            except ResourceNotFoundError:
                try:
                    self._table.create_entity(mine)
                    return True
                except ResourceExistsError:
                    continue
            condition = {"etag": row.metadata["etag"], "match_condition": MatchConditions.IfNotModified}
            try:
                if parse_instant(row["until"]) <= now:  # the last holder died: take over
                    self._table.update_entity(mine, mode=UpdateMode.REPLACE, **condition)
                    return True
                if row.get("pending"):
                    return False
                self._table.update_entity({"PartitionKey": PARTITION, "RowKey": tenant_id, "pending": True},
                                          mode=UpdateMode.MERGE, **condition)
                return False
            except HttpResponseError as error:
                if error.status_code != 412:
                    raise
        raise RuntimeError(f"tenant {tenant_id}: the sync lock kept changing; try again")

    def release(self, tenant_id: str, owner: str, now: datetime) -> bool:
        """Releases the lock, or keeps it and returns True when a trigger arrived meanwhile
        (the caller must run once more)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        for _ in range(10):
            try:
                row = self._table.get_entity(PARTITION, tenant_id)
            except ResourceNotFoundError:
                return False
            if row.get("owner") != owner:
                return False  # expired and taken over: the new holder runs
            condition = {"etag": row.metadata["etag"], "match_condition": MatchConditions.IfNotModified}
            try:
                if row.get("pending"):
                    self._table.update_entity({"PartitionKey": PARTITION, "RowKey": tenant_id, "pending": False,
                                               "until": format_instant(now + self._ttl)},
                                              mode=UpdateMode.MERGE, **condition)
                    return True
                self._table.delete_entity(PARTITION, tenant_id, **condition)
                return False
            except HttpResponseError as error:
                if error.status_code != 412:
                    raise
        raise RuntimeError(f"tenant {tenant_id}: the sync lock kept changing; try again")

    def abandon(self, tenant_id: str, owner: str) -> None:
        """Drops the lock after a failure (the queue retries the message)."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            row = self._table.get_entity(PARTITION, tenant_id)
            if row.get("owner") == owner:
                self._table.delete_entity(PARTITION, tenant_id)
        except ResourceNotFoundError:
            pass
