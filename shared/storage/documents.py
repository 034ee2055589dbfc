"""Which months of a client are invoiced, read from the close's `invoices` table (one row per
client and month, PartitionKey = tenant id, RowKey = YYYY-MM; see invoices.py)."""
from __future__ import annotations

from typing import Any

from shared.billing import InputError, Period

INVOICES = "invoices"


class InvoicedMonthsTable:
    """Months whose close has begun, with the invoice number or where the close stands."""

    def __init__(self, storage: Any, table: str = INVOICES):
        self._storage, self._table_name = storage, table

    def invoiced_months(self, tenant_id: str) -> dict[Period, str]:
        table = self._storage.table(self._table_name)
        rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": tenant_id},
                                    select=["RowKey", "number", "status"])
        months: dict[Period, str] = {}
        for row in rows:
            try:
                period = Period.parse(row["RowKey"])
            except InputError:
                continue  # not a month row
            status = row.get("status") or ""
            if status == "nothing to bill":
                continue
            months[period] = row.get("number") or f"its close is under way ({status or 'queued'})"
        return months
