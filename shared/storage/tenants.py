"""Table `tenants`, partition `tenant`: one row per client tenant id (shared/tenants.py's Tenant)."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Iterable, Mapping

from shared.billing import Plan, parse_plan
from shared.billing.observations import format_instant, parse_instant
from shared.invoicing.parties import parse_client_legal
from shared.storage.tables import TableStore, get_or_none
from shared.tenants import ACTIVE, Tenant

TABLE = "tenants"
PARTITION = "tenant"


class TenantStore(TableStore):
    TABLE = TABLE

    @staticmethod
    def _to_entity(tenant: Tenant) -> dict[str, Any]:
        return {"PartitionKey": PARTITION, "RowKey": tenant.tenant_id, "plan": json.dumps(tenant.plan.to_dict()),
                "contacts": json.dumps(list(tenant.billing_contacts)), "address": json.dumps(list(tenant.address)),
                "locale": tenant.locale, "status": tenant.status, "delta_link": tenant.delta_link or "",
                "sku_names": json.dumps(dict(tenant.sku_names)),
                "onboarded_at": format_instant(tenant.onboarded_at) if tenant.onboarded_at else "",
                "offboarded_at": format_instant(tenant.offboarded_at) if tenant.offboarded_at else "",
                "legal": json.dumps(tenant.legal.to_dict())}

    @staticmethod
    def _from_entity(entity: Mapping[str, Any]) -> Tenant:
        return Tenant(tenant_id=entity["RowKey"], plan=parse_plan(json.loads(entity["plan"])),
                      billing_contacts=tuple(json.loads(entity["contacts"])),
                      address=tuple(json.loads(entity.get("address") or "[]")), locale=entity.get("locale") or "en_US",
                      status=entity.get("status") or ACTIVE, delta_link=entity.get("delta_link") or None,
                      sku_names=json.loads(entity.get("sku_names") or "{}"),
                      onboarded_at=parse_instant(entity["onboarded_at"]) if entity.get("onboarded_at") else None,
                      offboarded_at=parse_instant(entity["offboarded_at"]) if entity.get("offboarded_at") else None,
                      legal=parse_client_legal(json.loads(entity.get("legal") or "{}")))

    def get(self, tenant_id: str) -> Tenant | None:
        entity = get_or_none(self._table, PARTITION, tenant_id)
        return None if entity is None else self._from_entity(entity)

    def get_many(self, tenant_ids: Iterable[str]) -> dict[str, Tenant]:
        """The onboarded ones of these tenants, by id: one query per 14 ids (a filter holds at
        most 15 comparisons; the SDK reads a parameter name up to the next space, hence the
        spaces inside the parentheses)."""
        ids = sorted(set(tenant_ids))
        found: dict[str, Tenant] = {}
        for start in range(0, len(ids), 14):
            chunk = ids[start:start + 14]
            names = {f"t{n}": tenant_id for n, tenant_id in enumerate(chunk)}
            text = "PartitionKey eq @pk and ( " + " or ".join(f"RowKey eq @{name}" for name in names) + " )"
            for row in self._table.query_entities(text, parameters={"pk": PARTITION, **names}):
                tenant = self._from_entity(row)
                found[tenant.tenant_id] = tenant
        return found

    def all(self, *, active_only: bool = False) -> list[Tenant]:
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION})
        tenants = [self._from_entity(row) for row in rows]
        return [t for t in tenants if t.status == ACTIVE or not active_only]

    def save(self, tenant: Tenant) -> None:
        self._table.upsert_entity(self._to_entity(tenant))

    def update(self, tenant_id: str, **changes: object) -> None:
        """Changes some fields of a stored tenant in one merge (other writers' fields are kept)."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        unknown = set(changes) - set(_COLUMNS)
        if unknown:
            raise TypeError(f"not tenant fields: {', '.join(sorted(unknown))}")
        entity = self._to_entity(replace(_BLANK, **changes))  # type: ignore[arg-type]
        try:
            self._table.update_entity({"PartitionKey": PARTITION, "RowKey": tenant_id,
                                       **{_COLUMNS[name]: entity[_COLUMNS[name]] for name in changes}},
                                      mode=UpdateMode.MERGE)
        except ResourceNotFoundError:
            raise KeyError(tenant_id) from None


_COLUMNS = {"plan": "plan", "billing_contacts": "contacts", "address": "address", "locale": "locale",
            "status": "status", "delta_link": "delta_link", "sku_names": "sku_names", "onboarded_at": "onboarded_at",
            "offboarded_at": "offboarded_at", "legal": "legal"}
_BLANK = Tenant(tenant_id="", plan=Plan(tenant_id="", name="", currency="USD", timezone="UTC"), billing_contacts=())
