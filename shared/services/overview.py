"""What `GET /api/tenants` and `./dev tenants list` show of each client: status, users billed
now, when it last synced and its last invoice."""
from __future__ import annotations

from typing import TYPE_CHECKING

from shared.billing.observations import format_instant
from shared.messages import JsonObject
from shared.tenants import ACTIVE, AWAITING_CONSENT, Tenant

if TYPE_CHECKING:  # pragma: no cover
    from shared.app import Prorata


def tenant_overview(app: Prorata, tenant: Tenant) -> JsonObject:
    tenant_id = tenant.tenant_id
    if tenant.status == AWAITING_CONSENT and tenant.delta_link is None:
        # never synced, never billed: nothing to read (a long list of these stays quick)
        return {**tenant.summary(), "users": 0, "last_sync": None, "last_invoice": None}
    users = len([s for s in app.ledger.current_states(tenant_id).values() if not s.deleted])
    last_sync = app.sync_gate.last_started(tenant_id)
    issued = sorted((record for record in app.invoices.of_tenant(tenant_id) if record.number),
                    key=lambda record: record.period)
    last = issued[-1] if issued else None
    return {**tenant.summary(), "users": users, "last_sync": format_instant(last_sync) if last_sync else None,
            "last_invoice": None if last is None else {
                "number": last.number, "period": last.period, "total": last.get("total"),
                "status": last.status, "emailed_at": last.get("emailed_at")}}


def tenants_overview(app: Prorata) -> list[JsonObject]:
    """Every client, active ones first, then by name."""
    tenants = sorted(app.tenants.all(), key=lambda t: (t.status != ACTIVE, t.name.lower()))
    return [tenant_overview(app, tenant) for tenant in tenants]


def overview_line(row: JsonObject) -> str:
    """One line of `./dev tenants list`."""
    invoice = row["last_invoice"]
    last_invoice = f"{invoice['number']} ({invoice['period']}, {invoice['status']})" if isinstance(invoice, dict) \
        else "no invoice yet"
    return (f"{row['tenant_id']}  {row['status']:<16}  {row['users']:>5} user(s)  "
            f"last sync {row['last_sync'] or 'never':<20}  {last_invoice:<32}  {row['currency']}  {row['name']}")
