"""Onboarding and offboarding a client tenant."""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable

from shared.errors import TenantNotOnboarded
from shared.messages import JsonObject
from shared.ports import Clock, LedgerPort, SubscriptionRepository, TenantRepository
from shared.services.subscriptions import SubscriptionManager
from shared.services.tenant_sync import TenantSync
from shared.tenants import ACTIVE, OFFBOARDED, Tenant

log = logging.getLogger("prorata.tenants")


class Onboarding:
    def __init__(self, *, tenants: TenantRepository, subscriptions: SubscriptionRepository, ledger: LedgerPort,
                 syncing: TenantSync, manager: Callable[[], SubscriptionManager], clock: Clock):
        self.tenants, self.subscriptions, self.ledger, self.syncing = tenants, subscriptions, ledger, syncing
        self._manager, self.now = manager, clock

    async def onboard(self, tenant: Tenant) -> JsonObject:
        """Stores the plan and contacts, runs the baseline (a full sync) and subscribes to changes.
        Onboarding again updates the plan and contacts and keeps the ledger."""
        existing = self.tenants.get(tenant.tenant_id)
        stored = replace(tenant, status=ACTIVE, offboarded_at=None,
                         onboarded_at=existing.onboarded_at if existing else self.now(),
                         delta_link=existing.delta_link if existing else None,
                         sku_names=existing.sku_names if existing else {})
        self.tenants.save(stored)
        reports = await self.syncing.sync(tenant.tenant_id)
        if not self.subscriptions.for_tenant(tenant.tenant_id):
            await self._manager().create(tenant.tenant_id)
        users = len([s for s in self.ledger.current_states(tenant.tenant_id).values() if not s.deleted])
        log.info("Onboarded %s (%s): %d user(s) in the baseline, subscribed to changes.", tenant.name,
                 tenant.tenant_id, users)
        return {**(self.tenants.get(tenant.tenant_id) or stored).summary(), "users": users,
                "sync": [r.sentence() for r in reports]}

    async def offboard(self, tenant_id: str) -> JsonObject:
        """Deletes the Graph subscription and ends the service now: the month under way is still
        invoiced at month end, up to this instant (docs/billing-rules.md); the ledger is kept.
        Raises TenantNotOnboarded."""
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise TenantNotOnboarded(tenant_id)
        removed = await self._manager().remove_all(tenant_id)
        self.tenants.update(tenant_id, status=OFFBOARDED, offboarded_at=self.now())
        log.info("Offboarded %s (%s): %d subscription(s) deleted, ledger kept.", tenant.name, tenant_id, removed)
        return {"tenant_id": tenant_id, "name": tenant.name, "status": OFFBOARDED, "subscriptions_deleted": removed}
