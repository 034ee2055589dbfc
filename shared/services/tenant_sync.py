"""The `tenant-sync` queue's work: a tenant's delta under its sync gate, after the lifecycle
events of its Graph subscription (recreate a removed one, reauthorize, catch up what was missed).

A message holds one SyncRequest, or several stored together by the webhook; these run side by
side, each on an event loop of its own (a pool kept by the composition root). If one fails, the
message fails and is retried; the others then find their work done (the gate covers them).
"""
from __future__ import annotations

import logging
from concurrent.futures import Executor
from datetime import datetime, timezone
from typing import Callable, Mapping

from shared.aio import run_async
from shared.messages import SYNC_QUEUE, SyncRequest, sync_requests
from shared.ports import (Clock, GraphPort, LedgerPort, MessageQueue, SubscriptionRepository, SyncGatePort,
                          TenantRepository)
from shared.services.subscriptions import SubscriptionManager
from shared.services.sync import SyncReport, recheck_of, run_sync_request, sync_tenant, unseen_users

log = logging.getLogger("prorata.tenants")


class TenantSync:
    def __init__(self, *, tenants: TenantRepository, subscriptions: SubscriptionRepository, ledger: LedgerPort,
                 gate: SyncGatePort, graph: Callable[[], GraphPort], manager: Callable[[], SubscriptionManager],
                 clock: Clock, pool: Callable[[], Executor], queues: MessageQueue | None = None,
                 recheck_delays: tuple[int, ...] = ()):
        self.tenants, self.subscriptions, self.ledger, self.gate = tenants, subscriptions, ledger, gate
        self._graph, self._manager, self.now, self._pool = graph, manager, clock, pool
        self._queues, self._recheck_delays = queues, list(recheck_delays)

    async def sync(self, tenant_id: str, requested_at: datetime | None = None) -> list[SyncReport]:
        """A sync of the tenant under its gate (again if triggers arrive meanwhile); nothing if a
        sync that began after `requested_at` already covers it."""
        async def once() -> SyncReport:
            return await sync_tenant(tenant_id, tenants=self.tenants, ledger=self.ledger, graph=self._graph(),
                                     clock=self.now)

        reports = await run_sync_request(tenant_id, gate=self.gate, clock=self.now, run=once,
                                         requested_at=requested_at)
        for report in reports:
            log.info(report.sentence())
        return reports

    def run_message(self, message: Mapping[str, object]) -> list[SyncReport]:
        """A `tenant-sync` queue message: its requests, side by side."""
        requests = sync_requests(message)
        if len(requests) == 1:
            return run_async(self.handle(requests[0]))
        done = list(self._pool().map(lambda request: run_async(self.handle(request)), requests))
        return [report for reports in done for report in reports]

    async def handle(self, request: SyncRequest) -> list[SyncReport]:
        """One sync request: lifecycle events first, then the delta."""
        tenant_id, events, subscription_id = request.tenant_id, request.lifecycle_events, request.subscription_id
        if events and subscription_id:
            manager = self._manager()
            subscription = self.subscriptions.get(subscription_id)
            if "subscriptionRemoved" in events or subscription is None:
                if subscription is not None:
                    self.subscriptions.delete(subscription_id)
                if not self.subscriptions.for_tenant(tenant_id):
                    await manager.create(tenant_id)
                log.warning("Tenant %s: Graph removed subscription %s; created it again, then a delta.", tenant_id,
                            subscription_id)
            elif "reauthorizationRequired" in events:
                await manager.reauthorize(subscription)
                log.info("Tenant %s: subscription %s reauthorized, then a delta.", tenant_id, subscription_id)
            if "missed" in events:
                log.warning("Tenant %s: Graph says notifications were missed; running a delta.", tenant_id)
        received = request.received_at
        requested_at = datetime.fromtimestamp(received, timezone.utc) if received is not None else None
        reports = await self.sync(tenant_id, requested_at)
        self._recheck(request, reports, requested_at)
        return reports

    def _recheck(self, request: SyncRequest, reports: list[SyncReport], requested_at: datetime | None) -> None:
        """Notified users no delta returned yet (Graph's replication delay) are checked again by
        a delayed message, a few times (SYNC_RECHECK_SECONDS), before they count as covered."""
        missing = unseen_users(request, reports, requested_at)
        follow = recheck_of(request, missing, self._recheck_delays)
        if follow is not None and self._queues is not None:
            again, delay = follow
            self._queues.send(SYNC_QUEUE, again.to_json(), delay_seconds=delay)
            log.info("Tenant %s: %d notified user(s) not in the delta yet (Graph's replication delay); "
                     "checking again in %d s (re-check %d).", request.tenant_id, len(missing), delay, again.recheck)
        elif missing:
            log.warning("Tenant %s: %d notified user(s) still not in a delta after the re-checks (a change Prorata "
                        "does not track, or a slow replication: the daily delta catches it).",
                        request.tenant_id, len(missing))
