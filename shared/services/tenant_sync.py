"""The `tenant-sync` queue's work: a tenant's delta under its sync gate, after the lifecycle
events of its Graph subscription (recreate a removed one, reauthorize, catch up what was missed).

A message holds one SyncRequest, or several stored together by the webhook; these run side by
side, each on an event loop of its own (a pool kept by the composition root). If one fails, the
message fails and is retried; the others then find their work done (the gate covers them).

An invocation runs one delta at most: when triggers arrived during it, the next delta goes to
the queue as a follow-up message (sync.FOLLOW_UP). A chain of deltas held in one invocation would
keep its message, and the queue trigger fetches no new batch while more than newBatchThreshold
messages run: with a chain per busy tenant, every other tenant's notifications would wait.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping

from shared.aio import run_async
from shared.heap import freeze_once
from shared.messages import SYNC_QUEUE, SyncRequest, sync_requests
from shared.ports import (Clock, GraphPort, LedgerPort, MessageQueue, SubscriptionRepository, SyncGatePort,
                          TenantRepository)
from shared.services.subscriptions import SubscriptionManager
from shared.services.notifications import MAX_TRACKED_USERS
from shared.services.sync import (FOLLOW_UP, SyncReport, latest_start, recheck_of, run_sync_request, seen_since,
                                  sync_tenant, unseen_users)

log = logging.getLogger("prorata.tenants")


class TenantSync:
    def __init__(self, *, tenants: TenantRepository, subscriptions: SubscriptionRepository, ledger: LedgerPort,
                 gate: SyncGatePort, graph: Callable[[], GraphPort], manager: Callable[[], SubscriptionManager],
                 clock: Clock, pool: Callable[[], Executor], queues: MessageQueue | None = None,
                 recheck_delays: tuple[int, ...] = ()):
        self.tenants, self.subscriptions, self.ledger, self.gate = tenants, subscriptions, ledger, gate
        self._graph, self._manager, self.now, self._pool = graph, manager, clock, pool
        self._queues, self._recheck_delays = queues, list(recheck_delays)
        # notified users of requests that found a delta of this process running (QUEUED behind
        # it): the next delta here shows them, so they are checked then, not by a message each
        self._awaiting: dict[str, dict[str, datetime]] = {}
        self._awaiting_lock = threading.Lock()

    async def sync(self, tenant_id: str, requested_at: datetime | None = None, *,
                   follow_up: Callable[[], None] | None = None) -> list[SyncReport]:
        """A sync of the tenant under its gate (again if triggers arrive meanwhile, in this call or
        through `follow_up`); nothing if a sync that began after `requested_at` already covers it."""
        async def once() -> SyncReport:
            return await sync_tenant(tenant_id, tenants=self.tenants, ledger=self.ledger, graph=self._graph(),
                                     clock=self.now)

        reports = await run_sync_request(tenant_id, gate=self.gate, clock=self.now, run=once,
                                         requested_at=requested_at, follow_up=follow_up)
        for report in reports:
            log.info(report.sentence())
        if reports:
            freeze_once("delta")  # msgraph's models and the SDKs: out of every full collection
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
        reports = await self.sync(tenant_id, requested_at, follow_up=self._follow_up(tenant_id))
        self._recheck(request, reports, requested_at)
        return reports

    def _follow_up(self, tenant_id: str) -> Callable[[], None] | None:
        """Queues the tenant's next delta (no received_at: never covered, it runs or joins one)."""
        queues = self._queues
        if queues is None:
            return None

        def send() -> None:
            queues.send(SYNC_QUEUE, SyncRequest(tenant_id, FOLLOW_UP).to_json())
            log.debug("Tenant %s: triggered again during its delta; the next delta is queued.", tenant_id)
        return send

    def _recheck(self, request: SyncRequest, reports: list[SyncReport], requested_at: datetime | None) -> None:
        """Notified users no delta returned yet (Graph's replication delay) are checked again by
        a delayed message, a few times (SYNC_RECHECK_SECONDS), before they count as covered."""
        tenant_id = request.tenant_id
        missing = unseen_users(request, reports, requested_at)
        if missing and not reports and requested_at is not None and self._await(tenant_id, missing, requested_at):
            missing = []  # the delta running here, or the next one, shows them
        self._send_recheck(request, missing)
        if reports:
            late = self._settle(tenant_id)
            if late:
                self._send_recheck(SyncRequest(tenant_id, "notification", user_ids=tuple(late[:MAX_TRACKED_USERS])),
                                   late[:MAX_TRACKED_USERS])

    def _send_recheck(self, request: SyncRequest, missing: list[str]) -> None:
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

    def _await(self, tenant_id: str, users: list[str], since: datetime) -> bool:
        """Keeps users notified at `since` for the next delta of this process, if one runs here."""
        if not self.gate.syncing_here(tenant_id):
            return False
        with self._awaiting_lock:
            waiting = self._awaiting.setdefault(tenant_id, {})
            if len(waiting) + len(users) > 5 * MAX_TRACKED_USERS:
                return False  # too many to keep: their re-check messages go now
            for user_id in users:
                waiting[user_id] = min(since, waiting.get(user_id, since))
        return True

    def _settle(self, tenant_id: str) -> list[str]:
        """After a delta here: the awaiting users that a finished delta begun after their
        notification did not show (they get a re-check). A user still awaiting after the first
        re-check delay (its delta ran in another process) gets one too."""
        last = latest_start(tenant_id)
        if last is None:
            return []
        overdue = self.now() - timedelta(seconds=self._recheck_delays[0] if self._recheck_delays else 30)
        with self._awaiting_lock:
            waiting = dict(self._awaiting.get(tenant_id, {}))
        seen: dict[datetime, set[str]] = {}
        settled, late = [], []
        for user_id, since in waiting.items():
            if since > last and since > overdue:
                continue  # no delta here has begun since its notification and finished yet
            if since not in seen:
                seen[since] = seen_since(tenant_id, since)
            settled.append(user_id)
            if user_id not in seen[since]:
                late.append(user_id)
        with self._awaiting_lock:
            current = self._awaiting.get(tenant_id, {})
            for user_id in settled:
                current.pop(user_id, None)
            if not current:
                self._awaiting.pop(tenant_id, None)
        return late
