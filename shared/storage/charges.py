"""One-off charges and credits on Table Storage.

Table `charges`: one partition per client tenant; one row per charge, RowKey `<YYYY-MM>|<id>`
(the period whose invoice carries it), with its description, amount (a decimal string in the
plan's currency) and when it was added.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.billing import Period
from shared.billing.charges import Charge
from shared.billing.observations import format_instant

TABLE = "charges"


class ChargeStore:
    def __init__(self, storage: Any, table: str = TABLE):
        self._storage, self._table_name = storage, table

    @property
    def _table(self) -> Any:
        return self._storage.table(self._table_name)

    def add(self, tenant_id: str, charge: Charge, currency: str, now: datetime) -> str:
        key = f"{charge.period}|{uuid.uuid4().hex[:12]}"
        self._table.create_entity({"PartitionKey": tenant_id, "RowKey": key, "description": charge.description,
                                   "amount": str(charge.amount), "currency": currency,
                                   "added_at": format_instant(now)})
        return key

    def of_period(self, tenant_id: str, period: Period) -> list[Charge]:
        rows = self._table.query_entities("PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                                          parameters={"pk": tenant_id, "low": f"{period}|", "high": f"{period}}}"})
        ordered = sorted(rows, key=lambda row: (row.get("added_at", ""), row["RowKey"]))
        return [Charge(period=period, description=row["description"], amount=Decimal(row["amount"]))
                for row in ordered]
