"""Checking Graph change notifications before anything is queued.

Rule (graph-facts): a notification is genuine only if its subscription is one Prorata holds,
its clientState equals the stored one (compared in constant time) and its tenantId is the
subscription's tenant. Genuine items become one sync request per tenant; the rest are dropped
and logged, never applied.
"""
from __future__ import annotations

import hmac
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from shared.subscriptions import Subscription


class NotAcceptable(ValueError):
    """The body is not a notification collection (answered 400)."""


@dataclass
class Screened:
    sync_requests: dict[str, dict[str, Any]] = field(default_factory=dict)  # tenant id -> message
    dropped: list[str] = field(default_factory=list)  # why each forged item was dropped
    items: int = 0


def parse_collection(body: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise NotAcceptable("body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("value"), list):
        raise NotAcceptable("body is not a notification collection ({\"value\": [...]})")
    if not all(isinstance(item, dict) for item in data["value"]):
        raise NotAcceptable("every item of value must be an object")
    return data["value"]


def screen(items: list[dict[str, Any]], lookup: Callable[[str], Subscription | None], *,
           received_at: float, lifecycle: bool = False) -> Screened:
    """received_at: when the POST arrived (epoch seconds); a sync that began later covers it."""
    result = Screened(items=len(items))
    for item in items:
        subscription_id = str(item.get("subscriptionId") or "")
        subscription = lookup(subscription_id) if subscription_id else None
        if subscription is None:
            result.dropped.append(f"unknown subscription {subscription_id or '(none)'}")
            continue
        if not hmac.compare_digest(str(item.get("clientState") or "").encode(), subscription.client_state.encode()):
            result.dropped.append(f"wrong clientState for subscription {subscription_id}")
            continue
        if str(item.get("tenantId") or "").lower() != subscription.tenant_id.lower():
            result.dropped.append(f"subscription {subscription_id} belongs to another tenant than {item.get('tenantId')}")
            continue
        event = item.get("lifecycleEvent") if lifecycle else None
        if lifecycle and event not in {"reauthorizationRequired", "subscriptionRemoved", "missed"}:
            result.dropped.append(f"unknown lifecycle event {event!r} for subscription {subscription_id}")
            continue
        request = result.sync_requests.setdefault(subscription.tenant_id, {
            "tenant_id": subscription.tenant_id, "reason": "notification", "received_at": received_at,
            "subscription_id": subscription_id, "lifecycle_events": []})
        if event:
            request["reason"] = "lifecycle"
            if event not in request["lifecycle_events"]:
                request["lifecycle_events"].append(event)
    return result


class SubscriptionCache:
    """Subscription rows by id, kept for a short while so that a burst of notifications costs one
    table read per subscription, not one per item. A known subscription older than the TTL is
    still answered from the cache while one background read refreshes it (at most twice the TTL
    old), so no acknowledgement waits for that read; an unknown one is read at once."""

    def __init__(self, load: Callable[[str], Subscription | None], ttl_seconds: float = 30.0):
        self._load, self._ttl = load, ttl_seconds
        self._cache: dict[str, tuple[float, Subscription | None]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, subscription_id: str) -> Subscription | None:
        now = time.monotonic()
        hit = self._cache.get(subscription_id)
        if hit and hit[1] is not None:
            age = now - hit[0]
            if age < self._ttl:
                return hit[1]
            if age < 2 * self._ttl:
                self._refresh_later(subscription_id)
                return hit[1]
        value = self._load(subscription_id)
        self._cache[subscription_id] = (now, value)
        return value

    def _refresh_later(self, subscription_id: str) -> None:
        with self._lock:
            if subscription_id in self._refreshing:
                return
            self._refreshing.add(subscription_id)

        def refresh() -> None:
            try:
                self._cache[subscription_id] = (time.monotonic(), self._load(subscription_id))
            except Exception:  # noqa: BLE001 - the next call past twice the TTL reads it in line
                pass
            finally:
                with self._lock:
                    self._refreshing.discard(subscription_id)

        threading.Thread(target=refresh, name="subscription-refresh", daemon=True).start()


def merge_requests(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sync requests of many notifications, one per tenant (per subscription when a lifecycle
    event names one): a delta that begins after the latest of them covers them all."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for request in requests:
        events = request.get("lifecycle_events") or []
        key = (request["tenant_id"], request.get("subscription_id", "") if events else "")
        into = merged.get(key)
        if into is None:
            merged[key] = {**request, "lifecycle_events": list(events)}
            continue
        into["received_at"] = max(into.get("received_at", 0), request.get("received_at", 0))
        into["lifecycle_events"] += [e for e in events if e not in into["lifecycle_events"]]
        if events:
            into["reason"] = "lifecycle"
    return list(merged.values())


class GroupCommit:
    """Stores the sync requests of concurrent webhook calls together: each caller waits until a
    queue message holding its requests is sent (so Graph gets 202 only for what is stored), but
    one message serves every call that arrived within the same few milliseconds. Under a burst
    this turns hundreds of queue writes a second into tens."""

    MAX_PER_MESSAGE = 50  # a queue message holds at most 64 KB
    IN_FLIGHT = 3  # messages being sent at once: calls arriving during a slow send need not wait for it

    def __init__(self, send: Callable[[str], None], window_seconds: float = 0.004):
        self._send, self._window = send, window_seconds
        self._lock = threading.Condition()
        self._pending: list[tuple[list[dict[str, Any]], "_Ticket"]] = []
        self._writer: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(self.IN_FLIGHT)
        self._senders = ThreadPoolExecutor(self.IN_FLIGHT, thread_name_prefix="notification-send")

    def submit(self, requests: list[dict[str, Any]], timeout: float = 20.0) -> None:
        """Returns once the requests are stored; raises if they could not be."""
        if not requests:
            return
        ticket = _Ticket()
        with self._lock:
            self._pending.append((requests, ticket))
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_forever, name="notification-writer", daemon=True)
                self._writer.start()
            self._lock.notify()
        if not ticket.done.wait(timeout):
            raise TimeoutError("the notification queue did not accept the message in time")
        if ticket.error is not None:
            raise ticket.error

    def _write_forever(self) -> None:
        while True:
            with self._lock:
                while not self._pending:
                    self._lock.wait()
            time.sleep(self._window)  # let the calls arriving together join this message
            self._slots.acquire()  # at most IN_FLIGHT sends at once; the batch grows meanwhile
            with self._lock:
                batch, self._pending = self._pending, []
            self._senders.submit(self._write, batch)

    def _write(self, batch: list[tuple[list[dict[str, Any]], "_Ticket"]]) -> None:
        try:
            requests = merge_requests([r for items, _ in batch for r in items])
            error: BaseException | None = None
            try:
                for start in range(0, len(requests), self.MAX_PER_MESSAGE):
                    self._send(json.dumps({"requests": requests[start:start + self.MAX_PER_MESSAGE]}))
            except BaseException as failure:  # every waiting caller answers 5xx, so Graph retries
                error = failure
            for _, ticket in batch:
                ticket.error = error
                ticket.done.set()
        finally:
            self._slots.release()


class _Ticket:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
