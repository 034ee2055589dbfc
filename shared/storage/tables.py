"""Table helpers shared by every table adapter: point reads, create-or-get, and the one
ETag-guarded merge (optimistic concurrency: a write that lost the race is told, not applied)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from shared.storage.records import Conflict, Record, TableValue

if TYPE_CHECKING:  # pragma: no cover
    from azure.data.tables import TableClient

    from shared.storage.account import Storage


def get_or_none(table: "TableClient", partition_key: str, row_key: str) -> Any:
    """The entity, or None where there is none."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return table.get_entity(partition_key, row_key)
    except ResourceNotFoundError:
        return None


def read(table: "TableClient", partition_key: str, row_key: str) -> Record | None:
    entity = get_or_none(table, partition_key, row_key)
    return None if entity is None else Record.of(entity)


def create(table: "TableClient", entity: Mapping[str, TableValue]) -> Record:
    """Creates the entity; Conflict if one exists under its keys."""
    from azure.core.exceptions import ResourceExistsError

    try:
        result = table.create_entity(dict(entity))
    except ResourceExistsError:
        raise Conflict(f"row {entity['PartitionKey']!s}/{entity['RowKey']!s} exists") from None
    return Record(dict(entity), result["etag"])


def create_or_get(table: "TableClient", entity: Mapping[str, TableValue]) -> Record:
    """The row under the entity's keys, created as `entity` if there is none."""
    while True:
        found = read(table, str(entity["PartitionKey"]), str(entity["RowKey"]))
        if found is not None:
            return found
        try:
            return create(table, entity)
        except Conflict:
            continue


def merge_if_unchanged(table: "TableClient", entity: Mapping[str, TableValue], etag: str, *,
                       replace: bool = False) -> str | None:
    """Writes the entity's properties into its row (merged, or replacing the row) only if the row
    still has `etag`. Returns the row's new ETag, or None if somebody changed it meanwhile (412,
    or 409). A row that is gone raises ResourceNotFoundError."""
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    try:
        result = table.update_entity(dict(entity), mode=UpdateMode.REPLACE if replace else UpdateMode.MERGE,
                                     etag=etag, match_condition=MatchConditions.IfNotModified)
    except ResourceNotFoundError:
        raise
    except HttpResponseError as error:
        if error.status_code in (409, 412):
            return None
        raise
    return str(result["etag"])


class TableStore:
    """A store kept in one table (`TABLE`), reached through Storage on first use."""

    TABLE = ""

    def __init__(self, storage: "Storage"):
        self._storage = storage

    @property
    def _table(self) -> "TableClient":
        return self._storage.table(self.TABLE)
