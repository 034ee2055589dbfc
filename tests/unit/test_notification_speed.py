"""The webhook's acknowledgement never waits for a refresh it can do later, nor for a slow send
of other calls' notifications."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from shared.services.notifications import GroupCommit, SubscriptionCache
from shared.subscriptions import Subscription

SUB = Subscription("s-1", "t-1", "secret", datetime(2027, 1, 1, tzinfo=timezone.utc))


def test_a_known_subscription_past_its_ttl_is_answered_at_once_and_read_again_in_the_background():
    reads, release = [], threading.Event()

    def load(subscription_id):
        reads.append(subscription_id)
        if len(reads) > 1:
            release.wait(5)  # the second read is slow
        return SUB

    cache = SubscriptionCache(load, ttl_seconds=0.05)
    assert cache("s-1") is SUB
    time.sleep(0.06)
    began = time.monotonic()
    assert cache("s-1") is SUB and cache("s-1") is SUB
    assert time.monotonic() - began < 0.5  # not held up by the slow read
    release.set()
    deadline = time.monotonic() + 5
    while len(reads) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reads == ["s-1", "s-1"]  # one background read, however many calls came meanwhile


def test_a_slow_queue_write_does_not_hold_up_the_next_calls_notifications():
    first_started, release, sent = threading.Event(), threading.Event(), []

    def send(text):
        if not sent:
            sent.append(text)
            first_started.set()
            release.wait(5)
            return
        sent.append(text)

    writer = GroupCommit(send, window_seconds=0.001)
    slow = threading.Thread(target=writer.submit, args=([{"tenant_id": "t-1", "received_at": 1}],))
    slow.start()
    assert first_started.wait(5)
    began = time.monotonic()
    writer.submit([{"tenant_id": "t-2", "received_at": 2}])  # returns once its own message is stored
    assert time.monotonic() - began < 2
    assert len(sent) == 2 and '"t-2"' in sent[1]
    release.set()
    slow.join(5)
