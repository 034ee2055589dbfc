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
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from shared.subscriptions import Subscription

MAX_TRACKED_USERS = 200  # notified user ids kept per sync request (shared/services/sync.py re-checks them)


class NotAcceptable(ValueError):
    """The body is not a notification collection (answered 400)."""


class TooManyItems(NotAcceptable):
    """More items than Graph ever sends in one body (answered 413)."""


LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
# The item fields Prorata reads; each must be a string where present (Graph sends strings:
# https://learn.microsoft.com/graph/api/resources/changenotification).
STRING_FIELDS = ("subscriptionId", "clientState", "tenantId", "lifecycleEvent", "changeType", "resource")


@dataclass
class Screened:
    sync_requests: dict[str, dict[str, Any]] = field(default_factory=dict)  # tenant id -> message
    dropped: list[str] = field(default_factory=list)  # why each forged item was dropped
    items: int = 0
    dropped_kinds: Counter[str] = field(default_factory=Counter)

    def drop(self, kind: str, why: str) -> None:
        self.dropped.append(why)
        self.dropped_kinds[kind] += 1

    def dropped_summary(self) -> str:
        """One line for all the dropped items of a request: counts by reason, a few examples."""
        counts = ", ".join(f"{count} {kind}" for kind, count in self.dropped_kinds.most_common())
        return f"{len(self.dropped)} of {self.items} item(s): {counts} (e.g. {'; '.join(self.dropped[:3])})"


def parse_collection(body: bytes, max_items: int | None = None) -> list[dict[str, Any]]:
    """The items of a notification body; NotAcceptable names what is wrong with any other body."""
    try:
        data = json.loads(body.decode("utf-8"))  # JSON over HTTP is UTF-8 (RFC 8259 section 8.1)
    except (ValueError, UnicodeDecodeError):
        raise NotAcceptable("body is not JSON") from None
    except RecursionError:
        raise NotAcceptable("body is nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("value"), list):
        raise NotAcceptable("body is not a notification collection ({\"value\": [...]})")
    items = data["value"]
    if max_items is not None and len(items) > max_items:
        raise TooManyItems(f"value holds {len(items)} items; at most {max_items} are accepted in one body")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise NotAcceptable(f"value[{index}] must be an object")
        for name in STRING_FIELDS:
            if item.get(name) is not None and not isinstance(item[name], str):
                raise NotAcceptable(f"value[{index}].{name} must be a string")
    return items


def screen(items: list[dict[str, Any]], lookup: Callable[[str], Subscription | None], *,
           received_at: float, lifecycle: bool = False) -> Screened:
    """received_at: when the POST arrived (epoch seconds); a sync that began later covers it."""
    result = Screened(items=len(items))
    for item in items:
        subscription_id = str(item.get("subscriptionId") or "")
        subscription = lookup(subscription_id) if subscription_id else None
        if subscription is None:
            result.drop("unknown subscription", f"unknown subscription {subscription_id[:80] or '(none)'}")
            continue
        if not hmac.compare_digest(str(item.get("clientState") or "").encode(), subscription.client_state.encode()):
            result.drop("wrong clientState", f"wrong clientState for subscription {subscription_id}")
            continue
        if str(item.get("tenantId") or "").lower() != subscription.tenant_id.lower():
            result.drop("other tenant", f"subscription {subscription_id} belongs to another tenant than "
                                        f"{str(item.get('tenantId'))[:80]}")
            continue
        event = item.get("lifecycleEvent") if lifecycle else None
        if lifecycle and event not in LIFECYCLE_EVENTS:
            result.drop("unknown lifecycleEvent",
                        f"unknown lifecycleEvent {str(event)[:80]!r} for subscription {subscription_id}")
            continue
        request = result.sync_requests.setdefault(subscription.tenant_id, {
            "tenant_id": subscription.tenant_id, "reason": "notification", "received_at": received_at,
            "subscription_id": subscription_id, "lifecycle_events": []})
        user_id = (item.get("resourceData") or {}).get("id") if isinstance(item.get("resourceData"), dict) else None
        if not lifecycle and isinstance(user_id, str) and user_id:  # checked again if a delta misses it
            users = request.setdefault("user_ids", [])
            if user_id not in users and len(users) < MAX_TRACKED_USERS:
                users.append(user_id)
        if event:
            request["reason"] = "lifecycle"
            if event not in request["lifecycle_events"]:
                request["lifecycle_events"].append(event)
    return result


class SubscriptionCache:
    """Subscription rows by id, kept for a short while so that a burst of notifications costs one
    table read per subscription, not one per item. A known subscription older than the TTL (up
    to twice it) is still answered from the cache while one background read renews it, so no
    acknowledgement waits for that read.

    Unknown ids are remembered too, for `negative_ttl_seconds` only (a forged flood repeats its
    ids). A genuine id is unknown only before its row is saved (Graph creates the subscription
    before Prorata can save it); the subscription manager then queues a delta that begins once
    this memory has expired, so whatever was dropped meanwhile is covered. Within one request at most `reads_per_request` ids are read one by one; past that
    the whole (small) subscription table is read once and answers for every other id, so a
    body of a thousand invented ids costs a few reads, not a thousand.
    """

    def __init__(self, load: Callable[[str], Subscription | None],
                 load_all: Callable[[], list[Subscription]] | None = None, *, ttl_seconds: float = 30.0,
                 negative_ttl_seconds: float = 2.0, reads_per_request: int = 8, max_entries: int = 20_000,
                 clock: Callable[[], float] = time.monotonic):
        self._load, self._load_all = load, load_all
        self._ttl, self._negative_ttl = ttl_seconds, negative_ttl_seconds
        self._reads_per_request, self._max_entries, self._clock = reads_per_request, max_entries, clock
        self._cache: OrderedDict[str, tuple[float, Subscription | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()
        self.reads = 0  # table reads made (point reads and listings), for tests and logs

    def __call__(self, subscription_id: str) -> Subscription | None:
        return self.for_request()(subscription_id)

    def _cached(self, subscription_id: str, now: float) -> tuple[bool, Subscription | None]:
        with self._lock:
            hit = self._cache.get(subscription_id)
        if hit is None:
            return False, None
        at, value = hit
        if value is not None and self._ttl <= now - at < 2 * self._ttl:
            self._refresh_later(subscription_id)  # answered now; one read in the background renews it
            return True, value
        fresh = now - at < (self._ttl if value is not None else self._negative_ttl)
        return fresh, value if fresh else None

    def _remember(self, subscription_id: str, value: Subscription | None, now: float) -> None:
        with self._lock:
            self._cache[subscription_id] = (now, value)
            self._cache.move_to_end(subscription_id)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)

    def answered(self, subscription_ids: set[str]) -> Callable[[str], Subscription | None] | None:
        """A lookup for these ids from memory alone, or None when one of them needs a table read
        (the webhook then checks the items on a thread of its own, so as to answer 503 at its
        deadline if storage hangs; from memory it checks them in the request's own thread)."""
        now, known = self._clock(), {}
        for subscription_id in subscription_ids:
            if subscription_id:
                found, value = self._cached(subscription_id, now)
                if not found:
                    return None
                known[subscription_id] = value
        return known.get

    def for_request(self) -> Callable[[str], Subscription | None]:
        """A lookup for the items of one request (its read budget is its own)."""
        budget = self._reads_per_request
        listing: dict[str, Subscription] | None = None

        def lookup(subscription_id: str) -> Subscription | None:
            nonlocal budget, listing
            now = self._clock()
            known, value = self._cached(subscription_id, now)
            if known:
                return value
            if listing is not None:
                value = listing.get(subscription_id)
            elif budget > 0 or self._load_all is None:
                budget -= 1
                self.reads += 1
                value = self._load(subscription_id)
            else:
                self.reads += 1
                listing = {s.subscription_id: s for s in self._load_all()}
                for found in listing.values():
                    self._remember(found.subscription_id, found, now)
                value = listing.get(subscription_id)
            self._remember(subscription_id, value, now)
            return value

        return lookup

    def _refresh_later(self, subscription_id: str) -> None:
        with self._lock:
            if subscription_id in self._refreshing:
                return
            self._refreshing.add(subscription_id)

        def refresh() -> None:
            try:
                self.reads += 1
                self._remember(subscription_id, self._load(subscription_id), self._clock())
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
        users = into.setdefault("user_ids", [])
        users += [u for u in request.get("user_ids") or [] if u not in users][:max(0, MAX_TRACKED_USERS - len(users))]
        if not users:
            del into["user_ids"]
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
