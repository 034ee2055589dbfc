"""Onboarding and offboarding a client tenant, and running a tenant's sync requests."""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from shared.services.sync import SyncReport, run_sync_request, sync_tenant
from shared.tenants import ACTIVE, AWAITING_CONSENT, OFFBOARDED, Tenant

log = logging.getLogger("prorata.tenants")


async def onboard(app: Any, tenant: Tenant) -> dict[str, Any]:
    """Stores the plan and contacts, runs the baseline (a full sync) and subscribes to changes.
    Onboarding again updates the plan and contacts and keeps the ledger. A client whose admin
    has not consented yet is stored as awaiting_consent (see `activate`)."""
    existing = app.tenants.get(tenant.tenant_id)
    stored = replace(tenant, status=ACTIVE, offboarded_at=None,
                     onboarded_at=existing.onboarded_at if existing else app.now(),
                     delta_link=existing.delta_link if existing else None,
                     sku_names=existing.sku_names if existing else {})
    app.tenants.save(stored)
    return await activate(app, stored)


def consent_url(settings: Any, tenant_id: str) -> str:
    """The admin-consent URL a client's admin opens once to grant the MSP's app its permissions
    (https://learn.microsoft.com/entra/identity-platform/v2-admin-consent)."""
    from urllib.parse import quote

    app_id = settings.get("GRAPH_APP_CLIENT_ID") or "<GRAPH_APP_CLIENT_ID>"
    return f"https://login.microsoftonline.com/{quote(tenant_id, safe='')}/adminconsent?client_id={quote(app_id, safe='<>_')}"


async def activate(app: Any, tenant: Tenant) -> dict[str, Any]:
    """The baseline and the subscription of a stored tenant. If Graph refuses with 401 or 403
    (the client's admin has not consented), the tenant is stored as awaiting_consent, nothing
    is billed for it, and the answer carries the admin-consent URL; the daily timer tries again
    (`retry_awaiting_consent`) and the tenant becomes active by itself once consent exists."""
    tenant_id = tenant.tenant_id
    try:
        if tenant.status != ACTIVE:
            app.tenants.update(tenant_id, status=ACTIVE)
        reports = await sync(app, tenant_id)
        if not app.subscriptions.for_tenant(tenant_id):
            await app.subscription_manager.create(tenant_id)
    except Exception as error:
        refusal = _not_consented(error)
        if refusal is None:
            raise
        app.tenants.update(tenant_id, status=AWAITING_CONSENT)
        url = consent_url(app.settings, tenant_id)
        log.warning("%s (%s) is awaiting consent: %s. Nothing is synced or billed until the client's admin "
                    "opens %s; the daily sync tries again.", tenant.name, tenant_id, refusal, url)
        stored = app.tenants.get(tenant_id) or replace(tenant, status=AWAITING_CONSENT)
        return {**stored.summary(), "users": 0, "sync": [], "consent_url": url,
                "message": f"{tenant.name} has not consented yet ({refusal}). "
                           f"Send the client's admin this link: {url}"}
    users = len([s for s in app.ledger.current_states(tenant_id).values() if not s.deleted])
    log.info("Onboarded %s (%s): %d user(s) in the baseline, subscribed to changes.", tenant.name, tenant_id, users)
    return {**(app.tenants.get(tenant_id) or tenant).summary(), "users": users,
            "sync": [r.sentence() for r in reports]}


# Entra sign-in errors that mean the app has no consent in the client's tenant
# (https://learn.microsoft.com/entra/identity-platform/reference-error-codes): 65001 consent
# missing, 700016 application not found in the directory, 7000229 no service principal.
_NO_CONSENT_CODES = ("AADSTS65001", "AADSTS700016", "AADSTS7000229")


def _not_consented(error: Exception) -> str | None:
    """Why the error means the client has not consented (Graph 401/403, or a sign-in refused
    for want of consent), or None for any other failure."""
    from azure.core.exceptions import ClientAuthenticationError

    from shared.graph.gateway import GraphError

    if isinstance(error, GraphError) and error.status in (401, 403):
        return f"Microsoft Graph answered {error.status}"
    if isinstance(error, ClientAuthenticationError):
        code = next((c for c in _NO_CONSENT_CODES if c in str(error)), None)
        if code:
            return f"sign-in refused with {code}"
    return None


async def retry_awaiting_consent(app: Any) -> list[dict[str, Any]]:
    """Tries the baseline of every tenant awaiting consent again (the daily timer)."""
    results = []
    for tenant in app.tenants.all():
        if tenant.status == AWAITING_CONSENT:
            results.append(await activate(app, tenant))
    return results


async def offboard(app: Any, tenant_id: str) -> dict[str, Any] | None:
    """Deletes the Graph subscription and ends the service now: the month under way is still
    invoiced at month end, up to this instant (docs/billing-rules.md); the ledger is kept."""
    tenant = app.tenants.get(tenant_id)
    if tenant is None:
        return None
    removed = await app.subscription_manager.remove_all(tenant_id)
    app.tenants.update(tenant_id, status=OFFBOARDED, offboarded_at=app.now())
    log.info("Offboarded %s (%s): %d subscription(s) deleted, ledger kept.", tenant.name, tenant_id, removed)
    return {"tenant_id": tenant_id, "name": tenant.name, "status": OFFBOARDED, "subscriptions_deleted": removed}


async def sync(app: Any, tenant_id: str, requested_at: datetime | None = None) -> list[SyncReport]:
    """A sync of the tenant under its gate (again if triggers arrive meanwhile); nothing if a
    sync that began after `requested_at` already covers it."""
    async def once() -> SyncReport:
        return await sync_tenant(tenant_id, tenants=app.tenants, ledger=app.ledger, graph=app.graph, clock=app.now)

    reports = await run_sync_request(tenant_id, gate=app.sync_gate, clock=app.now, run=once, requested_at=requested_at)
    for report in reports:
        log.info(report.sentence())
    return reports


def run_sync_message(app: Any, message: dict[str, Any], workers: int = 4) -> list[SyncReport]:
    """A `tenant-sync` queue message: one request, or several stored together by the webhook
    (`{"requests": [...]}`), run side by side, each on an event loop of its own. If one fails,
    the message fails and is retried; the others then find their work done."""
    from shared.app import run_async

    requests = message["requests"] if isinstance(message.get("requests"), list) else [message]
    if len(requests) == 1:
        return run_async(handle_sync_request(app, requests[0]))
    done = list(_pool(workers).map(lambda request: run_async(handle_sync_request(app, request)), requests))
    return [report for reports in done for report in reports]


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """A pool kept for the process, so its threads (and their event loops) are reused."""
    with _pools_lock:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="sync")
        return _pools[workers]


async def handle_sync_request(app: Any, message: dict[str, Any]) -> list[SyncReport]:
    """One sync request: lifecycle events first, then the delta."""
    tenant_id = message.get("tenant_id")
    if not isinstance(tenant_id, str) or not tenant_id:
        raise ValueError(f"sync message without tenant_id: {message!r}")
    events = message.get("lifecycle_events") or []
    subscription_id = message.get("subscription_id")
    if events and subscription_id:
        manager = app.subscription_manager
        subscription = app.subscriptions.get(subscription_id)
        if "subscriptionRemoved" in events or subscription is None:
            if subscription is not None:
                app.subscriptions.delete(subscription_id)
            if not app.subscriptions.for_tenant(tenant_id):
                await manager.create(tenant_id)
            log.warning("Tenant %s: Graph removed subscription %s; created it again, then a delta.", tenant_id,
                        subscription_id)
        elif "reauthorizationRequired" in events:
            await manager.reauthorize(subscription)
            log.info("Tenant %s: subscription %s reauthorized, then a delta.", tenant_id, subscription_id)
        if "missed" in events:
            log.warning("Tenant %s: Graph says notifications were missed; running a delta.", tenant_id)
    received = message.get("received_at")
    requested_at = datetime.fromtimestamp(received, timezone.utc) if isinstance(received, (int, float)) else None
    return await sync(app, tenant_id, requested_at)
