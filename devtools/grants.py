"""Consent in the Graph simulator exactly as docs/deploy.md tells an MSP to grant it: the client
tenants' permissions (shared.graph.permissions.CLIENT_TENANT_PERMISSIONS) on each tenant, and the
mail permissions only on the invoicing mailbox (Exchange RBAC for Applications)."""
from __future__ import annotations

from typing import Any

from shared.graph.permissions import CLIENT_TENANT_PERMISSIONS, MAILBOX_PERMISSIONS


def consent_client(sim: Any, tenant_id: str) -> None:
    """A client tenant's admin consent to the multi-tenant app (docs/deploy.md step 4)."""
    sim.grant(tenant_id, *CLIENT_TENANT_PERMISSIONS)


def consent_msp(sim: Any, msp_tenant_id: str, mailbox: str) -> None:
    """The MSP tenant: admin consent to the app (step 1), and the mail roles scoped to the
    invoicing mailbox (New-ManagementRoleAssignment ... -CustomResourceScope)."""
    sim.grant(msp_tenant_id, *CLIENT_TENANT_PERMISSIONS)
    sim.grant_mailbox(msp_tenant_id, mailbox, *MAILBOX_PERMISSIONS)
