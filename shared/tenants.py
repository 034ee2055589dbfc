"""Client tenants: their plan, billing contacts, address, status and Graph sync state.

Stored by shared/storage/tenants.py (table `tenants`, partition `tenant`, one row per tenant id).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from shared.billing import InputError, Plan, parse_plan
from shared.billing.observations import format_instant

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ACTIVE, OFFBOARDED = "active", "offboarded"
AWAITING_CONSENT = "awaiting_consent"  # onboarded, but the client's admin has not consented yet


def is_tenant_id(text: object) -> bool:
    """An Entra tenant id: a GUID (checked before a tenant id reaches storage or Graph)."""
    return isinstance(text, str) and _GUID.match(text) is not None


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
    if not is_tenant_id(plan.tenant_id):
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
