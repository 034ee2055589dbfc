"""Client tenants: their plan, billing contacts, address, status and Graph sync state.

Table `tenants`, partition `tenant`, one row per client tenant id.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Mapping

from shared.billing import InputError, Plan, parse_plan
from shared.billing.observations import format_instant, parse_instant
from shared.storage.account import TableStore, get_or_none

TABLE = "tenants"
PARTITION = "tenant"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ACTIVE, OFFBOARDED = "active", "offboarded"


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    plan: Plan
    billing_contacts: tuple[str, ...]
    address: tuple[str, ...] = ()
    locale: str = "en_US"
    status: str = ACTIVE
    delta_link: str | None = None
    sku_names: Mapping[str, str] = field(default_factory=dict)  # SKU id -> part number
    onboarded_at: datetime | None = None
    offboarded_at: datetime | None = None  # service ended: billed up to this instant

    @property
    def name(self) -> str:
        return self.plan.name

    def summary(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "name": self.name, "status": self.status,
                "currency": self.plan.currency, "timezone": self.plan.timezone,
                "billing_contacts": list(self.billing_contacts), "locale": self.locale,
                "onboarded_at": format_instant(self.onboarded_at) if self.onboarded_at else None,
                "synced": self.delta_link is not None}


def parse_onboarding(data: object, source: str = "request") -> Tenant:
    """Reads an onboarding request: {"plan": {...}, "billing_contacts": [...], "address": [...],
    "locale": "en_US"}. The tenant id is the plan's. Errors name the field."""
    if not isinstance(data, Mapping):
        raise InputError("expected a JSON object with plan and billing_contacts", source=source)
    known = {"plan", "billing_contacts", "address", "locale"}
    for name in data:
        if name not in known:
            raise InputError(f"unknown field (known: {', '.join(sorted(known))})", source=source, field=name)
    plan = parse_plan(data.get("plan"), source=source)
    if not _GUID.match(plan.tenant_id):
        raise InputError("must be the client's Entra tenant id (a GUID)", source=source, field="plan.tenant_id")
    contacts = data.get("billing_contacts")
    if not isinstance(contacts, list) or not contacts or not all(isinstance(c, str) and _EMAIL.match(c) for c in contacts):
        raise InputError("must be a non-empty list of email addresses", source=source, field="billing_contacts")
    address = data.get("address", [])
    if not isinstance(address, list) or not all(isinstance(line, str) for line in address):
        raise InputError("must be a list of address lines", source=source, field="address")
    locale = data.get("locale", "en_US")
    try:
        from babel import Locale
        Locale.parse(locale)
    except Exception:
        raise InputError(f"unknown locale {locale!r} (expected e.g. en_US, de_DE)", source=source, field="locale") from None
    return Tenant(tenant_id=plan.tenant_id, plan=plan, billing_contacts=tuple(contacts),
                  address=tuple(address), locale=locale)


class TenantStore(TableStore):
    TABLE = TABLE

    @staticmethod
    def _to_entity(tenant: Tenant) -> dict[str, Any]:
        return {"PartitionKey": PARTITION, "RowKey": tenant.tenant_id, "plan": json.dumps(tenant.plan.to_dict()),
                "contacts": json.dumps(list(tenant.billing_contacts)), "address": json.dumps(list(tenant.address)),
                "locale": tenant.locale, "status": tenant.status, "delta_link": tenant.delta_link or "",
                "sku_names": json.dumps(dict(tenant.sku_names)),
                "onboarded_at": format_instant(tenant.onboarded_at) if tenant.onboarded_at else "",
                "offboarded_at": format_instant(tenant.offboarded_at) if tenant.offboarded_at else ""}

    @staticmethod
    def _from_entity(entity: Mapping[str, Any]) -> Tenant:
        return Tenant(tenant_id=entity["RowKey"], plan=parse_plan(json.loads(entity["plan"])),
                      billing_contacts=tuple(json.loads(entity["contacts"])),
                      address=tuple(json.loads(entity.get("address") or "[]")), locale=entity.get("locale") or "en_US",
                      status=entity.get("status") or ACTIVE, delta_link=entity.get("delta_link") or None,
                      sku_names=json.loads(entity.get("sku_names") or "{}"),
                      onboarded_at=parse_instant(entity["onboarded_at"]) if entity.get("onboarded_at") else None,
                      offboarded_at=parse_instant(entity["offboarded_at"]) if entity.get("offboarded_at") else None)

    def get(self, tenant_id: str) -> Tenant | None:
        entity = get_or_none(self._table, PARTITION, tenant_id)
        return None if entity is None else self._from_entity(entity)

    def all(self, *, active_only: bool = False) -> list[Tenant]:
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION})
        tenants = [self._from_entity(row) for row in rows]
        return [t for t in tenants if t.status == ACTIVE or not active_only]

    def save(self, tenant: Tenant) -> None:
        self._table.upsert_entity(self._to_entity(tenant))

    def update(self, tenant_id: str, **changes: Any) -> None:
        """Changes some fields of a stored tenant in one merge (other writers' fields are kept)."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        unknown = set(changes) - set(_COLUMNS)
        if unknown:
            raise TypeError(f"not tenant fields: {', '.join(sorted(unknown))}")
        entity = self._to_entity(replace(_BLANK, **changes))
        try:
            self._table.update_entity({"PartitionKey": PARTITION, "RowKey": tenant_id,
                                       **{_COLUMNS[name]: entity[_COLUMNS[name]] for name in changes}},
                                      mode=UpdateMode.MERGE)
        except ResourceNotFoundError:
            raise KeyError(tenant_id) from None


_COLUMNS = {"plan": "plan", "billing_contacts": "contacts", "address": "address", "locale": "locale",
            "status": "status", "delta_link": "delta_link", "sku_names": "sku_names", "onboarded_at": "onboarded_at",
            "offboarded_at": "offboarded_at"}
_BLANK = Tenant(tenant_id="", plan=Plan(tenant_id="", name="", currency="USD", timezone="UTC"), billing_contacts=())
