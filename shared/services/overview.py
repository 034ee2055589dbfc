"""What `GET /api/tenants` and `./dev tenants list` show of each client: status, users billed
now, when it last synced and its last invoice."""
from __future__ import annotations

from typing import Any

from shared.billing.observations import format_instant
from shared.tenants import ACTIVE, Tenant


def tenant_overview(app: Any, tenant: Tenant, invoices: Any) -> dict[str, Any]:
    tenant_id = tenant.tenant_id
    users = len([s for s in app.ledger.current_states(tenant_id).values() if not s.deleted])
    last_sync = app.sync_gate.last_started(tenant_id)
    issued = sorted((row for row in invoices.of_tenant(tenant_id) if row.get("number")), key=lambda row: row["RowKey"])
    last = issued[-1] if issued else None
    return {**tenant.summary(), "users": users, "last_sync": format_instant(last_sync) if last_sync else None,
            "last_invoice": None if last is None else {
                "number": last.get("number"), "period": last["RowKey"], "total": last.get("total"),
                "status": last.get("status"), "emailed_at": last.get("emailed_at")}}


def tenants_overview(app: Any) -> list[dict[str, Any]]:
    """Every client, active ones first, then by name."""
    from shared.storage.invoices import InvoiceStore

    invoices = InvoiceStore(app.storage)
    tenants = sorted(app.tenants.all(), key=lambda t: (t.status != ACTIVE, t.name.lower()))
    return [tenant_overview(app, tenant, invoices) for tenant in tenants]


def overview_line(row: dict[str, Any]) -> str:
    """One line of `./dev tenants list`."""
    invoice = row["last_invoice"]
    last_invoice = f"{invoice['number']} ({invoice['period']}, {invoice['status']})" if invoice else "no invoice yet"
    return (f"{row['tenant_id']}  {row['status']:<16}  {row['users']:>5} user(s)  "
            f"last sync {row['last_sync'] or 'never':<20}  {last_invoice:<32}  {row['currency']}  {row['name']}")
