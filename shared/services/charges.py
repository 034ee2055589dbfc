"""One-off charges and credits: added to a period's invoice before it is closed."""
from __future__ import annotations

import logging
from typing import Any, Protocol

from shared.billing import Period
from shared.billing.charges import Charge, parse_charge
from shared.errors import ProrataError, TenantNotOnboarded
from shared.ports import Clock, InvoiceRepository, TenantRepository
from shared.services.close.reports import month_label

log = logging.getLogger("prorata.tenants")


class ChargeRepository(Protocol):
    def add(self, tenant_id: str, charge: Charge, currency: str, now: Any) -> str: ...

    def of_period(self, tenant_id: str, period: Period) -> list[Charge]: ...


class ChargeRefused(ProrataError):
    """The period's invoice is issued or being closed (HTTP 409)."""


def add_charge(*, tenants: TenantRepository, invoices: InvoiceRepository, charges: ChargeRepository, clock: Clock,
               tenant_id: str, data: object) -> dict[str, Any]:
    """Adds a one-off charge (negative: a credit) to the client's invoice of its period.
    Rule: refused once that period's close has begun (an issued invoice never changes; a charge
    for it goes on a later month, or a correction)."""
    tenant = tenants.get(tenant_id)
    if tenant is None:
        raise TenantNotOnboarded(tenant_id)
    charge = parse_charge(data, tenant.plan)
    row = invoices.get(tenant_id, charge.period)
    if row is not None:
        where = f"invoiced ({row.get('number')})" if row.get("number") else f"closed or being closed ({row.get('status')})"
        raise ChargeRefused(f"{month_label(charge.period)} of {tenant.name} is {where}; an issued invoice never "
                            "changes: put the charge on a month not yet closed")
    key = charges.add(tenant_id, charge, tenant.plan.currency, clock())
    kind = "credit" if charge.amount < 0 else "charge"
    sentence = (f"{tenant.name}: one-off {kind} \"{charge.description}\" of {charge.amount} {tenant.plan.currency} "
                f"on the invoice of {month_label(charge.period)}.")
    log.info(sentence)
    return {"tenant_id": tenant_id, "id": key, **charge.to_json(tenant.plan.currency), "message": sentence}
