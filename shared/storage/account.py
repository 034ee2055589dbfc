"""Table, queue and blob clients, from the settings exactly as Azure Functions reads them.

Locally `AzureWebJobsStorage` is a connection string (`UseDevelopmentStorage=true` or Azurite's
explicit one). In Azure the identity-based settings replace it:
`AzureWebJobsStorage__tableServiceUri` / `__queueServiceUri` / `__blobServiceUri` (or
`__accountName`), `__credential` = `managedidentity` and `__clientId`.
Clients are built on first use, never at import time, and tables/queues/containers are created
on first use (in Azure the Bicep template has created them already).
"""
from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Mapping

from shared.settings import MissingSetting, Settings

if TYPE_CHECKING:  # pragma: no cover
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient
    from azure.storage.queue import QueueClient

PREFIX = "AzureWebJobsStorage"
DEV_STORAGE = "UseDevelopmentStorage=true"
_AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + _AZURITE_KEY + ";"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;")


class Storage:
    """The one place that knows how to reach Table, Queue and Blob storage."""

    def __init__(self, settings: Settings):
        self._values: Mapping[str, str] = settings.values
        self._lock = threading.Lock()
        self._services: dict[str, Any] = {}
        self._tables: dict[str, "TableClient"] = {}
        self._queues: dict[str, "QueueClient"] = {}
        self._containers: dict[str, "ContainerClient"] = {}

    # --- connection --------------------------------------------------------------------------
    def _connection_string(self) -> str | None:
        value = (self._values.get(PREFIX) or "").strip()
        if value == DEV_STORAGE:
            return DEV_CONNECTION_STRING
        return value or None

    def _identity(self) -> Any:
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

        if (self._values.get(f"{PREFIX}__credential") or "").lower() == "managedidentity":
            client_id = self._values.get(f"{PREFIX}__clientId")
            return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
        return DefaultAzureCredential()

    def _endpoint(self, kind: str) -> str:
        explicit = self._values.get(f"{PREFIX}__{kind}ServiceUri")
        if explicit:
            return explicit
        account = self._values.get(f"{PREFIX}__accountName")
        if account:
            return f"https://{account}.{kind}.core.windows.net"
        raise MissingSetting(PREFIX)

    def _service(self, kind: str) -> Any:
        with self._lock:
            if kind in self._services:
                return self._services[kind]
        connection = self._connection_string()
        Client: Any  # imported only for the kind asked for (each SDK costs import time)
        if kind == "table":
            from azure.data.tables import TableServiceClient as Client
        elif kind == "queue":
            from azure.storage.queue import QueueServiceClient as Client
        else:
            from azure.storage.blob import BlobServiceClient as Client
        if connection:
            service = Client.from_connection_string(connection, **_transport_options())
        else:
            service = Client(self._endpoint(kind), credential=self._identity(), **_transport_options())
        with self._lock:
            return self._services.setdefault(kind, service)

    # --- resources ---------------------------------------------------------------------------
    def table(self, name: str) -> "TableClient":
        client = self._tables.get(name)
        if client is None:
            service = self._service("table")
            service.create_table_if_not_exists(name)
            client = self._tables.setdefault(name, service.get_table_client(name))
        return client

    def queue(self, name: str) -> "QueueClient":
        """A queue client that sends base64 text, as the Functions host expects by default."""
        client = self._queues.get(name)
        if client is None:
            from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy

            service = self._service("queue")
            client = service.get_queue_client(name, message_encode_policy=TextBase64EncodePolicy(),
                                              message_decode_policy=TextBase64DecodePolicy())
            _create_if_missing(client.create_queue)
            client = self._queues.setdefault(name, client)
        return client

    def container(self, name: str) -> "ContainerClient":
        client = self._containers.get(name)
        if client is None:
            client = self._service("blob").get_container_client(name)
            _create_if_missing(client.create_container)
            client = self._containers.setdefault(name, client)
        return client


def _transport_options() -> dict[str, Any]:
    """The clients' HTTP transport. `requests` reads the environment at every request (proxies,
    with a scan of every variable, a CA bundle, a .netrc file): about 0.4 ms of CPU each. With no
    proxy in the environment, it is told not to, and is given the CA bundle `requests` would
    have read (REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE) once; storage's own authentication never
    uses .netrc. With a proxy set, it reads the environment as usual."""
    if any(name.lower().endswith("_proxy") for name in os.environ):
        return {}
    from azure.core.pipeline.transport import RequestsTransport

    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return {"transport": RequestsTransport(use_env_settings=False, **({"connection_verify": bundle} if bundle else {}))}


def _create_if_missing(create: Any) -> None:
    from azure.core.exceptions import ResourceExistsError

    try:
        create()
    except ResourceExistsError:
        pass
