"""The composition root: wires the real adapters (Table/Queue/Blob storage, Graph) to the
services, once per process and lazily, from the app settings. Functions and the ./dev commands
both get their collaborators here; tests build one with their own settings and clock."""
from __future__ import annotations

import asyncio
import json
import threading
import weakref
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, Callable

from shared.settings import Settings

SYNC_QUEUE = "tenant-sync"
CLOSE_QUEUE = "tenant-close"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Prorata:
    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = utc_now,
                 credential_factory: Callable[[str], Any] | None = None):
        self.settings = settings
        self.clock = clock
        self._credential_factory = credential_factory
        self._graph_lock = threading.Lock()
        self._gateways: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
        self._credentials: dict[str, Any] = {}

    @cached_property
    def storage(self):
        from shared.storage import Storage
        return Storage(self.settings)

    @cached_property
    def tenants(self):
        from shared.tenants import TenantStore
        return TenantStore(self.storage)

    @cached_property
    def subscriptions(self):
        from shared.subscriptions import SubscriptionStore
        return SubscriptionStore(self.storage)

    @cached_property
    def ledger(self):
        from shared.storage.ledger import TableLedger
        return TableLedger(self.storage)

    @cached_property
    def sync_gate(self):
        from shared.storage.sync_gate import SyncGate
        return SyncGate(self.storage)

    @property
    def graph(self):
        """The Graph gateway of the running event loop. msgraph-sdk's clients stay on the loop they
        first ran on, and each function invocation runs its own loop (so that blocking storage
        calls never hold up other invocations): one gateway per loop, credentials shared."""
        from shared.graph.gateway import GraphGateway

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return GraphGateway(self.settings, self._credential)
        with self._graph_lock:
            gateway = self._gateways.get(loop)
            if gateway is None:
                gateway = self._gateways[loop] = GraphGateway(self.settings, self._credential)
            return gateway

    def _credential(self, tenant_id: str) -> Any:
        """One credential per client tenant for the process: it caches its tokens."""
        with self._graph_lock:
            if tenant_id not in self._credentials:
                if self._credential_factory is not None:
                    self._credentials[tenant_id] = self._credential_factory(tenant_id)
                else:
                    from shared.graph.credentials import credential_for
                    self._credentials[tenant_id] = credential_for(self.settings, tenant_id)
            return self._credentials[tenant_id]

    @property
    def subscription_manager(self):
        from shared.services.subscriptions import SubscriptionManager
        return SubscriptionManager(self.settings, self.subscriptions, self.tenants, self.graph, self.now)

    def now(self) -> datetime:
        """The current time from this app's clock (services hold this method, not the clock)."""
        return self.clock()

    def enqueue(self, queue: str, message: dict[str, Any]) -> None:
        self.storage.queue(queue).send_message(json.dumps(message))


_lock = threading.Lock()
_default: Prorata | None = None
_thread = threading.local()


def run_async(coroutine: Any) -> Any:
    """Runs a coroutine to its end on this thread's own event loop, kept for the thread's next
    invocations (so the Graph clients made on it are reused, not rebuilt every time)."""
    loop = getattr(_thread, "loop", None)
    if loop is None or loop.is_closed():
        loop = _thread.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coroutine)


def get_app() -> Prorata:
    """The process's Prorata, from the environment (app settings), built on first use and
    built again only if the app settings change (as when a host reloads them)."""
    global _default
    settings = Settings.from_env()
    with _lock:
        if _default is None or _default.settings.fingerprint() != settings.fingerprint():
            _default = Prorata(settings)
        return _default
