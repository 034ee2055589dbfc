"""Onboarding and offboarding a client tenant.

A client whose admin has not consented yet to the MSP's app (Graph answers 401/403, or the
sign-in is refused for want of consent) is stored as awaiting_consent: nothing is synced or
billed for it, the answer carries the admin-consent URL, and the daily timer tries again
(`retry_awaiting_consent`) until consent exists and the tenant becomes active by itself.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Callable
from urllib.parse import quote

from shared.errors import TenantNotOnboarded
from shared.messages import JsonObject
from shared.ports import Clock, LedgerPort, SubscriptionRepository, TenantRepository
from shared.services.subscriptions import SubscriptionManager
from shared.services.tenant_sync import TenantSync
from shared.tenants import ACTIVE, AWAITING_CONSENT, OFFBOARDED, Tenant

log = logging.getLogger("prorata.tenants")

# Entra sign-in errors that mean the app has no consent in the client's tenant
# (https://learn.microsoft.com/entra/identity-platform/reference-error-codes): 65001 consent
# missing, 700016 application not found in the directory, 7000229 no service principal.
_NO_CONSENT_CODES = ("AADSTS65001", "AADSTS700016", "AADSTS7000229")


def consent_url(app_id: str | None, tenant_id: str) -> str:
    """The admin-consent URL a client's admin opens once to grant the MSP's app its permissions
    (https://learn.microsoft.com/entra/identity-platform/v2-admin-consent)."""
    client_id = quote(app_id, safe="") if app_id else "<GRAPH_APP_CLIENT_ID>"
    return f"https://login.microsoftonline.com/{quote(tenant_id, safe='')}/adminconsent?client_id={client_id}"


def not_consented(error: Exception) -> str | None:
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


class Onboarding:
    def __init__(self, *, tenants: TenantRepository, subscriptions: SubscriptionRepository, ledger: LedgerPort,
                 syncing: TenantSync, manager: Callable[[], SubscriptionManager], clock: Clock,
                 app_id: str | None = None):
        self.tenants, self.subscriptions, self.ledger, self.syncing = tenants, subscriptions, ledger, syncing
        self._manager, self.now, self.app_id = manager, clock, app_id

    async def onboard(self, tenant: Tenant) -> JsonObject:
        """Stores the plan and contacts, runs the baseline (a full sync) and subscribes to changes.
        Onboarding again updates the plan and contacts and keeps the ledger. A client that has
        not consented is answered with status awaiting_consent and its consent_url."""
        existing = self.tenants.get(tenant.tenant_id)
        if existing is not None and existing.plan.versions and not tenant.plan.versions:
            # Onboarding again with a plan that names no versions keeps the stored ones (the price
            # changes made through /plan/versions); a plan that names versions replaces them.
            tenant = replace(tenant, plan=replace(tenant.plan, versions=existing.plan.versions))
        stored = replace(tenant, status=ACTIVE, offboarded_at=None,
                         onboarded_at=existing.onboarded_at if existing else self.now(),
                         delta_link=existing.delta_link if existing else None,
                         sku_names=existing.sku_names if existing else {})
        self.tenants.save(stored)
        return await self.activate(stored)

    async def activate(self, tenant: Tenant) -> JsonObject:
        """The baseline and the subscription of a stored tenant; awaiting_consent if Graph refuses
        for want of consent."""
        tenant_id = tenant.tenant_id
        try:
            if tenant.status != ACTIVE:
                self.tenants.update(tenant_id, status=ACTIVE)
            reports = await self.syncing.sync(tenant_id)
            if not self.subscriptions.for_tenant(tenant_id):
                await self._manager().create(tenant_id)
        except Exception as error:
            refusal = not_consented(error)
            if refusal is None:
                raise
            self.tenants.update(tenant_id, status=AWAITING_CONSENT)
            url = consent_url(self.app_id, tenant_id)
            log.warning("%s (%s) is awaiting consent: %s. Nothing is synced or billed until the client's admin "
                        "opens %s; the daily sync tries again.", tenant.name, tenant_id, refusal, url)
            stored = self.tenants.get(tenant_id) or replace(tenant, status=AWAITING_CONSENT)
            return {**stored.summary(), "users": 0, "sync": [], "consent_url": url,
                    "message": f"{tenant.name} has not consented yet ({refusal}). "
                               f"Send the client's admin this link: {url}"}
        users = len([s for s in self.ledger.current_states(tenant_id).values() if not s.deleted])
        log.info("Onboarded %s (%s): %d user(s) in the baseline, subscribed to changes.", tenant.name,
                 tenant_id, users)
        return {**(self.tenants.get(tenant_id) or tenant).summary(), "users": users,
                "sync": [r.sentence() for r in reports]}

    async def retry_awaiting_consent(self) -> list[JsonObject]:
        """Tries the baseline of every tenant awaiting consent again (the daily timer); one that
        fails otherwise is logged and left awaiting consent, the others go on."""
        results = []
        for tenant in self.tenants.all():
            if tenant.status != AWAITING_CONSENT:
                continue
            try:
                results.append(await self.activate(tenant))
            except Exception as error:  # noqa: BLE001 - tried again tomorrow; the others go on
                self.tenants.update(tenant.tenant_id, status=AWAITING_CONSENT)
                log.warning("%s (%s) is still awaiting consent: its baseline failed (%s); tried again tomorrow.",
                            tenant.name, tenant.tenant_id, error)
        return results

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
