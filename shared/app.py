"""The composition root: wires the real adapters (Table/Queue/Blob storage, Graph) to the
services, once per process and lazily, from the app settings. Functions and the ./dev commands
both get their collaborators here; tests build one with their own settings and clock."""
from __future__ import annotations

import json
import threading
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
        from shared.ledger import TableLedger
        return TableLedger(self.storage)

    @cached_property
    def sync_gate(self):
        from shared.services.sync_gate import SyncGate
        return SyncGate(self.storage)

    @cached_property
    def graph(self):
        from shared.graph.gateway import GraphGateway
        return GraphGateway(self.settings, self._credential_factory)

    @cached_property
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


def get_app() -> Prorata:
    """The process's Prorata, from the environment (app settings), built on first use and
    built again only if the app settings change (as when a host reloads them)."""
    global _default
    settings = Settings.from_env()
    with _lock:
        if _default is None or _default.settings.fingerprint() != settings.fingerprint():
            _default = Prorata(settings)
        return _default
