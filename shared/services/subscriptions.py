"""Keeping one Graph subscription on /users alive per active client tenant.

Rule (docs/graph-facts.md): users subscriptions live at most 41,760 minutes; renew with PATCH before
they expire; an expired one is gone and must be created again, after which a delta catches up
what was missed. A timer runs `renew_all`.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from shared.graph.gateway import GraphError
from shared.messages import SYNC_QUEUE, SyncRequest
from shared.ports import Clock, GraphPort, MessageQueue, SubscriptionRepository, TenantRepository
from shared.settings import Settings
from shared.subscriptions import Subscription

log = logging.getLogger("prorata.subscriptions")
MAX_LIFETIME = timedelta(minutes=41_760)


@dataclass
class SubscriptionManager:
    settings: Settings
    subscriptions: SubscriptionRepository
    tenants: TenantRepository
    graph: GraphPort
    clock: Clock
    queues: MessageQueue | None = None  # for the catch-up delta after a subscription is created

    def _lifetime(self) -> timedelta:
        return min(timedelta(minutes=self.settings.integer("SUBSCRIPTION_LIFETIME_MINUTES")),
                   MAX_LIFETIME - timedelta(minutes=5))

    def _urls(self) -> tuple[str, str]:
        base = self.settings.require("PUBLIC_BASE_URL").rstrip("/")
        return f"{base}/api/graph/notifications", f"{base}/api/graph/lifecycle"

    async def create(self, tenant_id: str) -> Subscription:
        notification_url, lifecycle_url = self._urls()
        client_state = secrets.token_urlsafe(48)  # 64 characters, within Graph's 128
        subscription_id, expires = await self.graph.create_subscription(
            tenant_id, notification_url=notification_url, lifecycle_url=lifecycle_url,
            expires_at=self.clock() + self._lifetime(), client_state=client_state)
        subscription = Subscription(subscription_id, tenant_id, client_state, expires)
        self.subscriptions.save(subscription)
        log.info("Tenant %s: Graph subscription %s created, expires %s.", tenant_id, subscription_id,
                 expires.isoformat())
        if self.queues is not None:
            # A notification that arrived before this row was saved was dropped, and the webhook
            # remembers the id as unknown for WEBHOOK_UNKNOWN_SUBSCRIPTION_SECONDS: a delta that
            # begins after that memory has expired covers whatever those dropped.
            delay = self.settings.integer("WEBHOOK_UNKNOWN_SUBSCRIPTION_SECONDS") + 2
            self.queues.send(SYNC_QUEUE, SyncRequest(tenant_id, "new subscription").to_json(), delay_seconds=delay)
        return subscription

    async def renew(self, subscription: Subscription) -> Subscription | None:
        """Renews; None when Graph no longer has it (the caller creates it again)."""
        try:
            expires = await self.graph.renew_subscription(subscription.tenant_id, subscription.subscription_id,
                                                          self.clock() + self._lifetime())
        except GraphError as error:
            if error.status == 404:
                self.subscriptions.delete(subscription.subscription_id)
                return None
            raise
        renewed = Subscription(subscription.subscription_id, subscription.tenant_id, subscription.client_state, expires)
        self.subscriptions.save(renewed)
        return renewed

    async def reauthorize(self, subscription: Subscription) -> Subscription:
        try:
            await self.graph.reauthorize_subscription(subscription.tenant_id, subscription.subscription_id)
            return await self.renew(subscription) or await self.create(subscription.tenant_id)
        except GraphError as error:
            if error.status != 404:
                raise
            self.subscriptions.delete(subscription.subscription_id)
            return await self.create(subscription.tenant_id)

    async def renew_all(self) -> dict[str, list[str]]:
        """Renews what expires soon, recreates what is gone, creates what is missing.
        Returns tenant ids by outcome; `recreated` and `created` tenants need a delta."""
        now = self.clock()
        soon = now + timedelta(minutes=self.settings.integer("SUBSCRIPTION_RENEW_BEFORE_MINUTES"))
        outcome: dict[str, list[str]] = {"renewed": [], "recreated": [], "created": [], "kept": [], "failed": []}
        active = {t.tenant_id: t for t in self.tenants.all(active_only=True)}
        covered = set()
        for subscription in self.subscriptions.all():
            if subscription.tenant_id not in active:
                continue
            covered.add(subscription.tenant_id)
            try:
                if subscription.expires_at <= now:
                    self.subscriptions.delete(subscription.subscription_id)
                    await self.create(subscription.tenant_id)
                    outcome["recreated"].append(subscription.tenant_id)
                elif subscription.expires_at <= soon:
                    if await self.renew(subscription) is None:
                        await self.create(subscription.tenant_id)
                        outcome["recreated"].append(subscription.tenant_id)
                    else:
                        outcome["renewed"].append(subscription.tenant_id)
                else:
                    outcome["kept"].append(subscription.tenant_id)
            except GraphError as error:
                log.error("Tenant %s: could not renew subscription %s: %s", subscription.tenant_id,
                          subscription.subscription_id, error)
                outcome["failed"].append(subscription.tenant_id)
        for tenant_id in active.keys() - covered:
            try:
                await self.create(tenant_id)
                outcome["created"].append(tenant_id)
            except GraphError as error:
                log.error("Tenant %s: could not create a subscription: %s", tenant_id, error)
                outcome["failed"].append(tenant_id)
        return outcome

    async def remove_all(self, tenant_id: str) -> int:
        removed = 0
        for subscription in self.subscriptions.for_tenant(tenant_id):
            try:
                await self.graph.delete_subscription(tenant_id, subscription.subscription_id)
            except GraphError as error:
                if error.status != 404:
                    raise
            self.subscriptions.delete(subscription.subscription_id)
            removed += 1
        return removed
