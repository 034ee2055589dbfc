"""Correcting documents (supplementary invoices and credit notes) on Table Storage.

Table `documents`: one partition per client tenant; one row per document, RowKey
`<YYYY-MM>|<round>|<kind>` (the corrected month, the correction round of that month 01, 02, ...,
and `supplementary_invoice` or `credit_note`). A round's documents are created in one
transaction, so a month is never half-corrected; a second runner computing the same round
finds its rows taken (Conflict) and reads again. Each row then moves through the invoice's own
steps (computed -> numbered -> rendered -> stored -> drafted -> emailed) with the same fields
and lease as an invoice row in table `invoices` (see invoices.py); the document itself is
frozen in the row (gzip JSON in binary chunks).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from shared.billing import Period
from shared.storage.invoices import InvoiceStore
from shared.storage.records import Conflict, InvoiceRecord, TableValue
from shared.storage.tables import read

INVOICES = "invoices"
DOCUMENTS = "documents"


def _record(entity: Any) -> InvoiceRecord:
    return InvoiceRecord(dict(entity), entity.metadata["etag"])


def document_key(period: Period | str, round_: int, kind: str) -> str:
    return f"{period}|{round_:02d}|{kind}"


def is_document_key(key: str) -> bool:
    return "|" in key


class DocumentStore:
    """Rows of the `documents` table, each change guarded by the row's ETag."""

    def __init__(self, storage: Any, table: str = DOCUMENTS):
        self._storage, self._table_name = storage, table

    @property
    def _table(self) -> Any:
        return self._storage.table(self._table_name)

    def get(self, tenant_id: str, key: Period | str) -> InvoiceRecord | None:
        found = read(self._table, tenant_id, str(key))
        return None if found is None else InvoiceRecord(found.values, found.etag)

    def create(self, tenant_id: str, key: Period | str, values: Mapping[str, TableValue]) -> InvoiceRecord:
        raise Conflict(f"document {tenant_id}/{key}: documents are made by create_round only")

    def of_month(self, tenant_id: str, period: Period | str) -> list[InvoiceRecord]:
        rows = self._table.query_entities("PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                                          parameters={"pk": tenant_id, "low": f"{period}|", "high": f"{period}}}"})
        return sorted((_record(entity) for entity in rows), key=lambda row: row.row_key)

    def of_tenant(self, tenant_id: str) -> list[InvoiceRecord]:
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": tenant_id})
        return sorted((_record(entity) for entity in rows), key=lambda row: row.row_key)

    def summaries(self, tenant_id: str, last: Period | str) -> list[InvoiceRecord]:
        return [row for row in self.of_tenant(tenant_id) if row.row_key <= str(last)]

    def by_number(self, number: str) -> InvoiceRecord | None:
        """The document with this number (a scan: for a person's command, not for hot paths)."""
        rows = self._table.query_entities("number eq @number", parameters={"number": number})
        return next((_record(row) for row in rows), None)

    def create_round(self, tenant_id: str, rows: Iterable[tuple[str, Mapping[str, TableValue]]]) -> list[InvoiceRecord]:
        """Creates a round's documents in one transaction; Conflict if any of them exists. Their
        month's invoice record is marked `corrected` first (InvoiceStore.mark_corrected): a close
        reads this table only for a client with such a mark."""
        from azure.data.tables import TableTransactionError

        entities = [{"PartitionKey": tenant_id, "RowKey": key, **values} for key, values in rows]
        for month in sorted({str(entity["RowKey"]).split("|")[0] for entity in entities}):
            InvoiceStore(self._storage, INVOICES).mark_corrected(tenant_id, month)
        try:
            results = self._table.submit_transaction([("create", entity) for entity in entities])
        except TableTransactionError:
            raise Conflict(f"documents of tenant {tenant_id}: this correction round exists already") from None
        return [InvoiceRecord(entity, result["etag"]) for entity, result in zip(entities, results)]

    def update(self, row: InvoiceRecord, changes: Mapping[str, TableValue]) -> InvoiceRecord:
        return InvoiceStore(self._storage, self._table_name).update(row, changes)


class NumberedRows:
    """The rows that take numbers, wherever they live: an invoice row (`invoices`, RowKey the
    month) or a correcting document (`documents`, RowKey with `|`). A number counter settles a
    reservation on whichever row it was made for, so one counter may serve both."""

    def __init__(self, invoices: InvoiceStore, documents: DocumentStore):
        self._invoices, self._documents = invoices, documents

    def _store(self, key: str) -> DocumentStore | InvoiceStore:
        return self._documents if is_document_key(key) else self._invoices

    def get(self, tenant_id: str, key: Period | str) -> InvoiceRecord | None:
        return self._store(str(key)).get(tenant_id, str(key))

    def create(self, tenant_id: str, key: Period | str, values: Mapping[str, TableValue]) -> InvoiceRecord:
        return self._store(str(key)).create(tenant_id, key, values)

    def update(self, row: InvoiceRecord, changes: Mapping[str, TableValue]) -> InvoiceRecord:
        return self._store(row.row_key).update(row, changes)

    def of_tenant(self, tenant_id: str) -> list[InvoiceRecord]:
        return self._invoices.of_tenant(tenant_id) + self._documents.of_tenant(tenant_id)

    def summaries(self, tenant_id: str, last: Period | str) -> list[InvoiceRecord]:
        return self._store(str(last)).summaries(tenant_id, last)

    def by_number(self, number: str) -> InvoiceRecord | None:
        return self._invoices.by_number(number) or self._documents.by_number(number)

