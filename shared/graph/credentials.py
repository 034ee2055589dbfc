"""How Prorata signs in to each client tenant (GRAPH_AUTH).

- federated (default): the Function App's user-assigned managed identity is a federated
  credential of the MSP's multi-tenant app; a ClientAssertionCredential for the client tenant
  exchanges a managed-identity token (audience api://AzureADTokenExchange) for a Graph token.
- secret / certificate: the multi-tenant app's own secret or certificate (MSPs outside Azure).
- static: a pre-issued bearer token (GRAPH_STATIC_TOKEN, `{tenant_id}` replaced), for local work
  against the Graph simulator or a token captured by an admin.
"""
from __future__ import annotations

import time
from typing import Any

from shared.settings import Settings

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


class StaticTokenCredential:
    """A TokenCredential that returns one bearer token."""

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)


def credential_for(settings: Settings, tenant_id: str) -> Any:
    mode = (settings.get("GRAPH_AUTH") or "federated").lower()
    if mode == "static":
        return StaticTokenCredential(settings.require("GRAPH_STATIC_TOKEN").replace("{tenant_id}", tenant_id))
    client_id = settings.require("GRAPH_APP_CLIENT_ID")
    if mode == "secret":
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(tenant_id, client_id, settings.require("GRAPH_CLIENT_SECRET"))
    if mode == "certificate":
        from azure.identity import CertificateCredential

        return CertificateCredential(tenant_id, client_id, certificate_path=settings.require("GRAPH_CERTIFICATE_PATH"))
    if mode == "federated":
        from azure.identity import ClientAssertionCredential, ManagedIdentityCredential

        identity_id = settings.get("MANAGED_IDENTITY_CLIENT_ID")
        identity = ManagedIdentityCredential(client_id=identity_id) if identity_id else ManagedIdentityCredential()

        def assertion() -> str:
            return identity.get_token("api://AzureADTokenExchange/.default").token

        return ClientAssertionCredential(tenant_id=tenant_id, client_id=client_id, func=assertion)
    raise ValueError(f"setting GRAPH_AUTH must be federated, secret, certificate or static, got {mode!r}")
