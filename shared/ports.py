"""The ports: what the services need of the world, as small typed Protocols.

Services take these; the adapters in shared/storage/ (Table, Queue and Blob Storage),
shared/graph/ (msgraph-sdk) and shared/services/mailing.py implement them, and shared/app.py
(the one composition root) wires one to the other. Unit tests pass in-memory fakes
(tests/unit/fakes.py), with the same ETag semantics as the tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol

from shared.billing import Observation, Period

if TYPE_CHECKING:  # pragma: no cover
    from shared.graph.gateway import Attachment, DeltaResult, SkuInfo
    from shared.messages import JsonObject
    from shared.storage.records import InvoiceRecord, Record, RunMember, RunProgress, StoredBlob, TableValue
    from shared.subscriptions import Subscription
    from shared.tenants import Tenant

Clock = Callable[[], datetime]
"""The current time (tz-aware). Services hold one; the core never reads a clock."""

RunSummary = dict[str, Any]
"""A run's summary as stored and printed (JSON: counts, totals, invoices, failures)."""


@dataclass(frozen=True)
class MonthSlice:
    """What one tenant's month is billed from: the state of every user at the start of the
    slice, then every record up to the month's end, each at its effective time."""
    opening: tuple[Observation, ...]
    records: tuple[Observation, ...]

    @property
    def observations(self) -> list[Observation]:
        return [*self.opening, *self.records]


class LedgerPort(Protocol):
    def append(self, tenant_id: str, observations: Iterable[Observation], *, observed_at: datetime,
               source: str) -> int:
        """Appends the observations that really change a user; returns how many records it wrote.
        Replays and duplicates write nothing."""

    def read_month(self, tenant_id: str, period: Period, zone: str) -> MonthSlice: ...

    def learned_since(self, tenant_id: str, start: datetime, end: datetime,
                      since: datetime) -> list[tuple[Observation, datetime]]:
        """The records effective in [start, end) learned after `since`, with when each was learned."""

    def current_states(self, tenant_id: str) -> dict[str, Observation]: ...

    def states_of(self, tenant_id: str, user_ids: set[str]) -> dict[str, Observation]: ...


class TenantRepository(Protocol):
    """Client tenants (shared/tenants.py), one record per tenant id."""

    def get(self, tenant_id: str) -> Tenant | None: ...

    def all(self, *, active_only: bool = False) -> list[Tenant]: ...

    def get_many(self, tenant_ids: Iterable[str]) -> dict[str, Tenant]:
        """The onboarded ones of these tenants, by id (few queries, whatever their number)."""

    def save(self, tenant: Tenant) -> None: ...

    def update(self, tenant_id: str, **changes: object) -> None:
        """Changes some fields of a stored tenant in one merge (KeyError if there is none)."""


class SubscriptionRepository(Protocol):
    """The Graph subscriptions Prorata holds, by subscription id."""

    def get(self, subscription_id: str) -> Subscription | None: ...

    def for_tenant(self, tenant_id: str) -> list[Subscription]: ...

    def all(self) -> list[Subscription]: ...

    def save(self, subscription: Subscription) -> None: ...

    def delete(self, subscription_id: str) -> None: ...


class InvoiceRepository(Protocol):
    """One invoice record per (tenant, month): the close's state machine. Every change is
    guarded by the record's ETag: `Conflict` (shared/storage/records.py) if it changed."""

    def get(self, tenant_id: str, period: Period | str) -> InvoiceRecord | None: ...

    def create(self, tenant_id: str, period: Period | str, values: Mapping[str, TableValue]) -> InvoiceRecord:
        """Creates the record; Conflict if it exists already."""

    def update(self, record: InvoiceRecord, changes: Mapping[str, TableValue]) -> InvoiceRecord:
        """Merges the changes if nobody changed the record since it was read; Conflict if somebody did."""

    def of_tenant(self, tenant_id: str) -> list[InvoiceRecord]:
        """Every month's record of one client, oldest first."""

    def summaries(self, tenant_id: str, last: Period | str) -> list[InvoiceRecord]:
        """One client's records up to `last`, oldest first, each with only where it stands."""

    def by_number(self, number: str) -> InvoiceRecord | None: ...


class RunRepository(Protocol):
    """The close's runs: a header per run and a member per tenant, each finished once."""

    def create(self, run_id: str, period: Period | str, trigger: str, started: datetime,
               members: Iterable[RunMember]) -> Record: ...

    def header(self, run_id: str) -> Record | None: ...

    def members(self, run_id: str) -> list[Record]: ...

    def unfinished(self, run_id: str) -> frozenset[str]:
        """The tenants of the run whose outcome is not recorded yet."""

    def runs_of_period(self, period: Period | str) -> list[Record]: ...

    def member_etag(self, run_id: str, tenant_id: str) -> str | None:
        """The ETag of the tenant's member row, when this process created the run and has not
        finished the tenant yet (else None)."""

    def finish_member(self, run_id: str, tenant_id: str, outcome: Mapping[str, TableValue], *,
                      etag: str | None = None) -> RunProgress | None:
        """Records a tenant's outcome once (`etag`: the member row's, as the run was created);
        None when the run has no record."""

    def summary(self, header: Record) -> RunSummary | None: ...

    def record_summary(self, header: Record, summary: RunSummary, finished_at: datetime) -> bool: ...


class InvoiceCounter(Protocol):
    """The MSP's gap-free invoice numbers."""

    def assign(self, tenant_id: str, period: str, now: datetime, row: InvoiceRecord | None = None) -> InvoiceRecord:
        """Gives the computed invoice of (tenant, period) its number (or finds the one it has);
        `row`: the invoice row as the caller last read or wrote it (saves reading it again)."""

    def reserve(self, tenant_id: str, period: str, now: datetime, issued_on: date,
                write: Callable[[int, str], InvoiceRecord]) -> InvoiceRecord:
        """Reserves a number for an invoice its close has just computed; `write(sequence number,
        number)` writes it with the computed invoice in one write guarded by its record's ETag
        (storage/numbering.py). Returns what `write` returns."""

    def last_number(self) -> int: ...


class Archive(Protocol):
    """Blob storage of invoice PDFs and reports (container INVOICE_CONTAINER)."""

    container_name: str

    def put_once(self, name: str, data: bytes, content_type: str = "application/pdf") -> StoredBlob: ...

    def put(self, name: str, data: bytes, content_type: str) -> None: ...

    def get(self, name: str) -> bytes: ...


class SyncGatePort(Protocol):
    """At most one delta at a time per tenant, and no trigger lost (shared/storage/sync_gate.py)."""

    def acquire(self, tenant_id: str, owner: str, now: datetime, requested_at: datetime | None = None) -> str: ...

    def release(self, tenant_id: str, owner: str, now: datetime) -> bool: ...

    def hand_over(self, tenant_id: str, owner: str, now: datetime) -> bool: ...

    def syncing_here(self, tenant_id: str) -> bool: ...

    def abandon(self, tenant_id: str, owner: str) -> None: ...


class GraphPort(Protocol):
    """Everything Prorata asks of Microsoft Graph; the tenant id is explicit on every call."""

    async def delta(self, tenant_id: str, delta_link: str | None) -> DeltaResult: ...

    async def subscribed_skus(self, tenant_id: str) -> list[SkuInfo]: ...

    async def create_subscription(self, tenant_id: str, *, notification_url: str, lifecycle_url: str,
                                  expires_at: datetime, client_state: str) -> tuple[str, datetime]: ...

    async def renew_subscription(self, tenant_id: str, subscription_id: str, expires_at: datetime) -> datetime: ...

    async def reauthorize_subscription(self, tenant_id: str, subscription_id: str) -> None: ...

    async def delete_subscription(self, tenant_id: str, subscription_id: str) -> None: ...

    async def create_draft(self, tenant_id: str, mailbox: str, *, subject: str, html: str, to: list[str],
                           cc: list[str], bcc: list[str], attachments: list[Attachment]) -> str: ...

    async def send_draft(self, tenant_id: str, mailbox: str, message_id: str) -> None: ...


class Mailer(Protocol):
    """Invoice emails through Graph drafts, each sent at most once (shared/services/mailing.py)."""

    @property
    def mailbox(self) -> str: ...

    async def create_draft(self, *, subject: str, html: str, to: list[str], pdf_name: str, pdf: bytes,
                           attachments: list[Attachment] | None = None) -> str: ...

    async def send_once(self, draft_id: str) -> str: ...


class MessageQueue(Protocol):
    """Sends a message (a dataclass of shared/messages.py, as JSON) to a queue."""

    def send(self, queue: str, message: JsonObject, *, delay_seconds: int = 0) -> None:
        """Sends the message, visible to readers only after `delay_seconds` (at most 7 days)."""
