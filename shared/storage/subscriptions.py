"""Table `subscriptions`, partition `subscription`: one row per Graph subscription id. The
webhook reads a row by id on every delivery (a point read) to check clientState and tenantId."""
from __future__ import annotations

from typing import Any

from shared.billing.observations import format_instant, parse_instant
from shared.storage.tables import TableStore, get_or_none
from shared.subscriptions import Subscription

TABLE = "subscriptions"
PARTITION = "subscription"


class SubscriptionStore(TableStore):
    TABLE = TABLE

    @staticmethod
    def _from_entity(entity: Any) -> Subscription:
        return Subscription(subscription_id=entity["RowKey"], tenant_id=entity["tenant_id"],
                            client_state=entity["client_state"], expires_at=parse_instant(entity["expires_at"]))

    def get(self, subscription_id: str) -> Subscription | None:
        entity = get_or_none(self._table, PARTITION, subscription_id)
        return None if entity is None else self._from_entity(entity)

    def for_tenant(self, tenant_id: str) -> list[Subscription]:
        rows = self._table.query_entities("PartitionKey eq @pk and tenant_id eq @tenant",
                                          parameters={"pk": PARTITION, "tenant": tenant_id})
        return [self._from_entity(row) for row in rows]

    def all(self) -> list[Subscription]:
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION})
        return [self._from_entity(row) for row in rows]

    def save(self, subscription: Subscription) -> None:
        self._table.upsert_entity({"PartitionKey": PARTITION, "RowKey": subscription.subscription_id,
                                   "tenant_id": subscription.tenant_id, "client_state": subscription.client_state,
                                   "expires_at": format_instant(subscription.expires_at)})

    def delete(self, subscription_id: str) -> None:
        self._table.delete_entity(PARTITION, subscription_id)
