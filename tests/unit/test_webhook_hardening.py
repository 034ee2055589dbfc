"""The webhook does little work for a forged body: item cap, every malformed field a 400, unknown
subscription ids remembered for a while, dropped items logged once per request."""
from __future__ import annotations

import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import azure.functions as func
import pytest

import functions.graph_webhook as webhook
from shared.services.notifications import (GroupCommit, NotAcceptable, SubscriptionCache, TooManyItems,
                                          parse_collection, screen)
from shared.settings import Settings
from shared.subscriptions import Subscription

GENUINE = Subscription("s-1", "tenant-a", "secret-a", datetime(2030, 1, 1, tzinfo=timezone.utc))


def body(items) -> bytes:
    return json.dumps({"value": items}).encode()


@pytest.mark.parametrize("raw, problem", [
    (body([{"subscriptionId": "s-1", "lifecycleEvent": ["missed"]}]), "value[0].lifecycleEvent must be a string"),
    (body([{"subscriptionId": {"id": 1}}]), "value[0].subscriptionId must be a string"),
    (body([{}, {"tenantId": 7}]), "value[1].tenantId must be a string"),
    (b"[" * 100_000 + b"]" * 100_000, "body"),
    (b'{"value": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}", "body"),
    (b"\xff\xfe{}", "body is not JSON"),
])
def test_every_malformed_body_is_not_acceptable_and_says_what_is_wrong(raw, problem):
    with pytest.raises(NotAcceptable) as refused:
        parse_collection(raw, max_items=1000)
    assert problem in str(refused.value)


def test_a_body_with_more_items_than_graph_ever_sends_is_refused_as_too_large():
    with pytest.raises(TooManyItems, match="1001 items; at most 1000"):
        parse_collection(body([{}] * 1001), max_items=1000)
    assert len(parse_collection(body([{}] * 1000), max_items=1000)) == 1000


class CountingStore:
    def __init__(self, *subscriptions: Subscription):
        self.rows = {s.subscription_id: s for s in subscriptions}
        self.point_reads = self.listings = 0

    def get(self, subscription_id):
        self.point_reads += 1
        return self.rows.get(subscription_id)

    def all(self):
        self.listings += 1
        return list(self.rows.values())


def test_an_unknown_subscription_id_is_read_once_and_then_remembered_for_a_short_while():
    store, now = CountingStore(GENUINE), [100.0]
    cache = SubscriptionCache(store.get, store.all, negative_ttl_seconds=5, clock=lambda: now[0])
    assert cache("forged") is None and cache("forged") is None
    assert store.point_reads == 1
    now[0] += 6
    assert cache("forged") is None and store.point_reads == 2


def test_a_subscription_saved_after_its_id_was_unknown_is_found_once_the_short_memory_expires():
    store, now = CountingStore(), [0.0]
    cache = SubscriptionCache(store.get, store.all, negative_ttl_seconds=5, clock=lambda: now[0])
    assert cache("s-1") is None
    store.rows["s-1"] = GENUINE
    now[0] += 5.5
    assert cache("s-1") == GENUINE


def test_a_thousand_invented_ids_in_one_body_cost_a_few_reads_and_genuine_items_still_pass():
    store = CountingStore(GENUINE)
    cache = SubscriptionCache(store.get, store.all, reads_per_request=8)
    items = [{"subscriptionId": str(uuid.uuid4()), "clientState": "x", "tenantId": "t"} for _ in range(1000)]
    items.append({"subscriptionId": "s-1", "clientState": "secret-a", "tenantId": "tenant-a"})
    result = screen(items, cache.for_request(), received_at=1.0)
    assert store.point_reads <= 8 and store.listings == 1
    assert list(result.sync_requests) == ["tenant-a"] and len(result.dropped) == 1000


class FakeApp:
    """What the webhook reaches of the app: settings, clock, the subscription cache over a
    counting store, a queue writer that keeps what it sends, lookup threads."""

    def __init__(self, *subscriptions: Subscription):
        self.settings = Settings({})
        self.store = CountingStore(*subscriptions)
        self.subscription_cache = SubscriptionCache(self.store.get, self.store.all)
        self.sent: list[str] = []
        self.notification_writer = GroupCommit(self.sent.append, window_seconds=0.001)
        self.webhook_lookups = ThreadPoolExecutor(max_workers=2)

    def now(self):
        return datetime(2026, 10, 5, tzinfo=timezone.utc)


@pytest.fixture
def app(monkeypatch):
    fake = FakeApp(GENUINE)
    monkeypatch.setattr(webhook, "get_app", lambda: fake)
    yield fake
    fake.webhook_lookups.shutdown(wait=False, cancel_futures=True)


def post(raw: bytes, route: str = "notifications") -> func.HttpResponse:
    request = func.HttpRequest("POST", f"http://x/api/graph/{route}", body=raw)
    return (webhook.graph_lifecycle if route == "lifecycle" else webhook.graph_notifications)(request)


def test_dropped_items_are_counted_in_one_warning_per_request(app, caplog):
    items = [{"subscriptionId": f"forged-{n}", "clientState": "x", "tenantId": "t"} for n in range(500)]
    with caplog.at_level(logging.WARNING, logger="prorata.webhook"):
        assert post(body(items)).status_code == 202
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "500 of 500 item(s): 500 unknown subscription" in warnings[0]


@pytest.mark.parametrize("raw", [
    body([{"subscriptionId": "s-1", "clientState": "secret-a", "tenantId": "tenant-a", "lifecycleEvent": ["x"]}]),
    body([{"subscriptionId": "s-1", "clientState": "secret-a", "tenantId": "tenant-a", "lifecycleEvent": {"a": 1}}]),
    b'{"value": [' + b"{\"a\":" * 5000 + b"1" + b"}" * 5000 + b"]}",
    "{\"value\": []}".encode("utf-16"),
])
def test_a_lifecycle_body_that_cannot_be_read_is_answered_400(app, raw):
    answer = post(raw, "lifecycle")
    assert answer.status_code == 400, answer.get_body()


def test_a_body_over_the_item_limit_is_answered_413_and_nothing_is_queued(app):
    answer = post(body([{"subscriptionId": "s-1", "clientState": "secret-a", "tenantId": "tenant-a"}] * 1001))
    assert answer.status_code == 413 and b"at most 1000" in answer.get_body()
    assert app.sent == [] and app.store.point_reads == 0


def test_storage_that_does_not_answer_gives_503_within_the_deadline(app):
    import threading
    import time

    stuck = threading.Event()
    app.store.get = lambda sid: stuck.wait(30)
    app.subscription_cache = SubscriptionCache(app.store.get, app.store.all)
    started = time.monotonic()
    answer = post(body([{"subscriptionId": "s-2", "clientState": "x", "tenantId": "t"}]))
    stuck.set()
    assert answer.status_code == 503 and time.monotonic() - started < 2.5


class OneSubscriptionGraph:
    async def create_subscription(self, tenant_id, *, notification_url, lifecycle_url, expires_at, client_state):
        return "s-new", expires_at


class SavedSubscriptions:
    def __init__(self):
        self.saved = []

    def save(self, subscription):
        self.saved.append(subscription)


def test_a_new_subscription_asks_for_a_delta_once_the_webhook_has_forgotten_its_id_was_unknown():
    import asyncio

    from shared.services.subscriptions import SubscriptionManager
    from tests.unit.fakes import FakeQueues

    queues = FakeQueues()
    settings = Settings({"PUBLIC_BASE_URL": "https://prorata.example", "WEBHOOK_UNKNOWN_SUBSCRIPTION_SECONDS": "5"})
    manager = SubscriptionManager(settings, SavedSubscriptions(), None, OneSubscriptionGraph(),
                                  lambda: datetime(2026, 10, 5, tzinfo=timezone.utc), queues)
    asyncio.run(manager.create("tenant-a"))
    assert queues.sent == [("tenant-sync", {"tenant_id": "tenant-a", "reason": "new subscription"})]
    assert queues.delays == [7]


class NoThreads:
    def submit(self, *args, **kwargs):
        raise AssertionError("a lookup thread was used")


def test_once_its_subscription_is_in_memory_a_notification_is_checked_without_a_lookup_thread(app):
    item = {"subscriptionId": "s-1", "clientState": "secret-a", "tenantId": "tenant-a"}
    assert post(body([item])).status_code == 202  # the first reads the subscription on a lookup thread
    reads, pool, app.webhook_lookups = app.store.point_reads, app.webhook_lookups, NoThreads()
    try:
        assert post(body([item, {**item, "clientState": "forged"}])).status_code == 202
    finally:
        app.webhook_lookups = pool
    assert app.store.point_reads == reads and len(app.sent) == 2
    assert app.subscription_cache.answered({"s-1", "s-unknown"}) is None  # an id never read needs storage
