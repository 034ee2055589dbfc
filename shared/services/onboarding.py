"""Onboarding and offboarding a client tenant, and running a tenant's sync requests."""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from shared.messages import SYNC_QUEUE
from shared.services.sync import SyncReport, recheck_of, run_sync_request, sync_tenant, unseen_users
from shared.tenants import ACTIVE, OFFBOARDED, Tenant

log = logging.getLogger("prorata.tenants")


async def onboard(app: Any, tenant: Tenant) -> dict[str, Any]:
    """Stores the plan and contacts, runs the baseline (a full sync) and subscribes to changes.
    Onboarding again updates the plan and contacts and keeps the ledger."""
    existing = app.tenants.get(tenant.tenant_id)
    stored = replace(tenant, status=ACTIVE, offboarded_at=None,
                     onboarded_at=existing.onboarded_at if existing else app.now(),
                     delta_link=existing.delta_link if existing else None,
                     sku_names=existing.sku_names if existing else {})
    app.tenants.save(stored)
    reports = await sync(app, tenant.tenant_id)
    if not app.subscriptions.for_tenant(tenant.tenant_id):
        await app.subscription_manager.create(tenant.tenant_id)
    users = len([s for s in app.ledger.current_states(tenant.tenant_id).values() if not s.deleted])
    log.info("Onboarded %s (%s): %d user(s) in the baseline, subscribed to changes.", tenant.name,
             tenant.tenant_id, users)
    return {**(app.tenants.get(tenant.tenant_id) or stored).summary(), "users": users,
            "sync": [r.sentence() for r in reports]}


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
    reports = await sync(app, tenant_id, requested_at)
    missing = unseen_users(message, reports, requested_at)
    follow = recheck_of(message, missing, [int(s) for s in app.settings.csv("SYNC_RECHECK_SECONDS")])
    if follow is not None:
        request, delay = follow
        app.enqueue(SYNC_QUEUE, request, delay_seconds=delay)
        log.info("Tenant %s: %d notified user(s) not in the delta yet (Graph's replication delay); "
                 "checking again in %d s (re-check %d).", tenant_id, len(missing), delay, request["recheck"])
    elif missing:
        log.warning("Tenant %s: %d notified user(s) still not in a delta after the re-checks (a change Prorata "
                    "does not track, or a slow replication: the daily delta catches it).", tenant_id, len(missing))
    return reports
