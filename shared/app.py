"""The composition root: the one place that builds the adapters (Table/Queue/Blob storage,
Graph, mail) and wires them into the services, once per process and lazily, from the app
settings. Functions and the ./dev commands get their services here; tests build one with their
own settings and clock. No service imports this module."""
from __future__ import annotations

import asyncio
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Callable

from shared.aio import run_async
from shared.messages import CLOSE_QUEUE, SYNC_QUEUE, JsonObject
from shared.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from azure.core.credentials import TokenCredential

    from shared.graph.gateway import GraphGateway
    from shared.invoicing.document import Brand
    from shared.ports import GraphPort, InvoiceCounter, InvoiceRepository, Mailer
    from shared.services.close import CloseService
    from shared.services.corrections import CorrectionService
    from shared.services.documents import Documents
    from shared.services.einvoicing import EInvoicing
    from shared.services.notifications import GroupCommit, SubscriptionCache
    from shared.services.onboarding import Onboarding
    from shared.services.reconcile import Reconciler
    from shared.services.subscriptions import SubscriptionManager
    from shared.services.tenant_sync import TenantSync
    from shared.storage import Storage
    from shared.storage.archive import InvoiceArchive
    from shared.storage.charges import ChargeStore
    from shared.storage.documents import DocumentStore, NumberedRows
    from shared.storage.invoices import InvoiceStore, RunStore
    from shared.storage.ledger import TableLedger
    from shared.storage.numbering import InvoiceNumbering
    from shared.storage.queues import StorageQueues
    from shared.storage.subscriptions import SubscriptionStore
    from shared.storage.sync_gate import SyncGate
    from shared.storage.tenants import TenantStore

__all__ = ["CLOSE_QUEUE", "SYNC_QUEUE", "Prorata", "get_app", "run_async", "utc_now"]

SYNC_WORKERS = 16  # the requests of tenant-sync messages run side by side on this many threads (they wait on I/O)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Prorata:
    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = utc_now):
        self.settings = settings
        self.clock = clock
        self._graph_lock = threading.Lock()
        self._gateways: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GraphGateway]" = \
            weakref.WeakKeyDictionary()
        self._credentials: dict[str, TokenCredential] = {}

    def now(self) -> datetime:
        """The current time from this app's clock (services hold this method, not the clock)."""
        return self.clock()

    # --- adapters: storage ---------------------------------------------------------------------
    @cached_property
    def storage(self) -> Storage:
        from shared.storage import Storage
        return Storage(self.settings)

    @cached_property
    def tenants(self) -> TenantStore:
        from shared.storage.tenants import TenantStore
        return TenantStore(self.storage)

    @cached_property
    def subscriptions(self) -> SubscriptionStore:
        from shared.storage.subscriptions import SubscriptionStore
        return SubscriptionStore(self.storage)

    @cached_property
    def ledger(self) -> TableLedger:
        from shared.storage.ledger import TableLedger
        return TableLedger(self.storage)

    @cached_property
    def sync_gate(self) -> SyncGate:
        from shared.storage.sync_gate import SyncGate
        return SyncGate(self.storage)

    @cached_property
    def invoices(self) -> InvoiceStore:
        from shared.storage.invoices import InvoiceStore
        return InvoiceStore(self.storage)

    @cached_property
    def einvoicing(self) -> EInvoicing:
        """E-invoices and accounting files: one per process, so that the import files' lines an
        invoice's close wrote are there for the close that finishes its run."""
        from shared.services.einvoicing import EInvoicing
        return EInvoicing(self.settings)

    @cached_property
    def runs(self) -> RunStore:
        from shared.storage.invoices import RunStore
        return RunStore(self.storage)

    @cached_property
    def archive(self) -> InvoiceArchive:
        from shared.storage.archive import InvoiceArchive
        return InvoiceArchive(self.storage, self.settings.require("INVOICE_CONTAINER"))

    @cached_property
    def queues(self) -> StorageQueues:
        from shared.storage.queues import StorageQueues
        return StorageQueues(self.storage)

    def numbering(self) -> InvoiceNumbering:
        """The invoice counter (built when a close first numbers: a bad number format fails then).
        It numbers invoices and supplementary invoices (table `documents`) in one sequence."""
        from shared.storage.numbering import InvoiceNumbering
        return InvoiceNumbering(self.storage, self.numbered_rows, template=self.settings.require("INVOICE_NUMBER_FORMAT"),
                                prefix=self.settings.get("INVOICE_NUMBER_PREFIX") or "")

    def credit_note_numbering(self) -> InvoiceNumbering:
        """Credit notes' own gap-free counter (CREDIT_NOTE_NUMBER_FORMAT)."""
        from shared.storage.numbering import CreditNoteNumbering
        return CreditNoteNumbering(self.storage, self.numbered_rows,
                                   template=self.settings.require("CREDIT_NOTE_NUMBER_FORMAT"),
                                   prefix=self.settings.get("INVOICE_NUMBER_PREFIX") or "")

    @cached_property
    def documents(self) -> DocumentStore:
        from shared.storage.documents import DocumentStore
        return DocumentStore(self.storage)

    @cached_property
    def numbered_rows(self) -> NumberedRows:
        from shared.storage.documents import NumberedRows
        return NumberedRows(self.invoices, self.documents)

    @cached_property
    def charges(self) -> ChargeStore:
        from shared.storage.charges import ChargeStore
        return ChargeStore(self.storage)

    def enqueue(self, queue: str, message: JsonObject) -> None:
        self.queues.send(queue, message)

    # --- adapters: Graph -----------------------------------------------------------------------
    @property
    def graph(self) -> GraphGateway:
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

    def _graph(self) -> GraphPort:
        return self.graph

    def _credential(self, tenant_id: str) -> TokenCredential:
        """One credential per client tenant for the process: it caches its tokens."""
        with self._graph_lock:
            if tenant_id not in self._credentials:
                from shared.graph.credentials import credential_for
                self._credentials[tenant_id] = credential_for(self.settings, tenant_id)
            return self._credentials[tenant_id]

    # --- services ------------------------------------------------------------------------------
    @property
    def subscription_manager(self) -> SubscriptionManager:
        from shared.services.subscriptions import SubscriptionManager
        return SubscriptionManager(self.settings, self.subscriptions, self.tenants, self.graph, self.now, self.queues)

    @cached_property
    def syncing(self) -> TenantSync:
        """Deltas under the sync gate, and the tenant-sync queue's messages."""
        from shared.services.tenant_sync import TenantSync
        return TenantSync(tenants=self.tenants, subscriptions=self.subscriptions, ledger=self.ledger,
                          gate=self.sync_gate, graph=self._graph, manager=lambda: self.subscription_manager,
                          clock=self.now, pool=lambda: self.sync_pool, queues=self.queues,
                          recheck_delays=tuple(int(s) for s in self.settings.csv("SYNC_RECHECK_SECONDS")))

    @cached_property
    def sync_pool(self) -> ThreadPoolExecutor:
        """Threads kept for the process, so their event loops (and Graph clients) are reused."""
        return ThreadPoolExecutor(SYNC_WORKERS, thread_name_prefix="sync")

    @cached_property
    def onboarding(self) -> Onboarding:
        from shared.services.onboarding import Onboarding
        return Onboarding(tenants=self.tenants, subscriptions=self.subscriptions, ledger=self.ledger,
                          syncing=self.syncing, manager=lambda: self.subscription_manager, clock=self.now,
                          app_id=self.settings.get("GRAPH_APP_CLIENT_ID"))

    @cached_property
    def reconciler(self) -> Reconciler:
        from shared.services.reconcile import Reconciler
        return Reconciler(tenants=self.tenants, ledger=self.ledger, graph=self._graph, archive=lambda: self.archive,
                          clock=self.now)

    def close_service(self, *, graph: GraphPort | None = None, after_step: Callable[[str], None] | None = None,
                      lease_ttl: timedelta | None = None, busy_wait: float | None = None,
                      documents: bool = False) -> CloseService:
        """The month-end close, its mail through `graph` (default: the running loop's gateway).
        With `documents`, the same steps working on correcting documents (table `documents`)."""
        from shared.services.close import CloseService
        from shared.services.close.runner import BUSY_WAIT_SECONDS, LEASE_TTL

        def mailer() -> Mailer:
            from shared.services.mailing import InvoiceMailer, MailSettings
            return InvoiceMailer(graph if graph is not None else self.graph, MailSettings.from_settings(self.settings))

        def brand() -> Brand:
            from shared.invoicing import Brand
            return Brand.from_settings(self.settings)

        def document_numbers() -> InvoiceCounter:
            from shared.services.corrections import DocumentNumbers
            return DocumentNumbers(self.numbering(), self.credit_note_numbering())

        def corrections() -> CorrectionService:
            return self.corrections(graph=graph, lease_ttl=lease_ttl, busy_wait=busy_wait)

        rows: InvoiceRepository = self.documents if documents else self.invoices
        return CloseService(settings=self.settings, tenants=self.tenants, ledger=self.ledger, invoices=rows,
                            runs=self.runs, archive=self.archive, queues=self.queues,
                            counter=document_numbers if documents else self.numbering,
                            mailer=mailer, brand=brand, reconciler=self.reconciler, clock=self.now,
                            after_step=after_step, lease_ttl=LEASE_TTL if lease_ttl is None else lease_ttl,
                            busy_wait=BUSY_WAIT_SECONDS if busy_wait is None else busy_wait,
                            corrections=None if documents else corrections, charges=self.charges,
                            einvoicing=lambda: self.einvoicing)

    def document_service(self, *, graph: GraphPort | None = None) -> Documents:
        """Every document of a client: list, void, re-issue, re-send (shared/services/documents.py)."""
        from shared.services.documents import Documents
        return Documents(tenants=self.tenants, numbered=self.numbered_rows, documents=self.documents,
                         corrections=lambda: self.corrections(graph=graph), clock=self.now)

    def corrections(self, *, graph: GraphPort | None = None, after_step: Callable[[str], None] | None = None,
                    lease_ttl: timedelta | None = None, busy_wait: float | None = None) -> CorrectionService:
        """Supplementary invoices and credit notes of invoiced months, through the close's steps."""
        from shared.services.corrections import CorrectionService
        steps = self.close_service(graph=graph, after_step=after_step, lease_ttl=lease_ttl, busy_wait=busy_wait,
                                   documents=True)
        return CorrectionService(tenants=self.tenants, ledger=self.ledger, invoices=self.invoices,
                                 documents=self.documents, steps=steps, settings=self.settings, clock=self.now)

    # --- the webhook's collaborators (kept for the process) ------------------------------------
    @cached_property
    def subscription_cache(self) -> SubscriptionCache:
        """Subscriptions by id for the webhook, kept a short while (a burst costs one read each)."""
        from shared.services.notifications import SubscriptionCache
        return SubscriptionCache(self.subscriptions.get, self.subscriptions.all,
                                 negative_ttl_seconds=self.settings.integer("WEBHOOK_UNKNOWN_SUBSCRIPTION_SECONDS"))

    @cached_property
    def notification_writer(self) -> GroupCommit:
        """Stores the webhook's sync requests on the tenant-sync queue by group commit."""
        from shared.services.notifications import GroupCommit
        return GroupCommit(self.queues.sender(SYNC_QUEUE))

    @cached_property
    def webhook_lookups(self) -> ThreadPoolExecutor:
        """Threads that check the webhook's items against storage, so that the webhook can answer
        503 at its deadline while a storage call still hangs."""
        return ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook-lookup")


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
