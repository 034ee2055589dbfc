"""Screening Graph notifications: only genuine items become sync requests, one per tenant."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import pytest

from shared.services.notifications import GroupCommit, NotAcceptable, merge_requests, parse_collection, screen
from shared.subscriptions import Subscription

SUBS = {"s-1": Subscription("s-1", "tenant-a", "secret-a", datetime(2030, 1, 1, tzinfo=timezone.utc)),
        "s-2": Subscription("s-2", "tenant-b", "secret-b", datetime(2030, 1, 1, tzinfo=timezone.utc))}


def item(sub="s-1", state="secret-a", tenant="tenant-a", user="u-1", **extra):
    return {"subscriptionId": sub, "clientState": state, "tenantId": tenant, "changeType": "updated",
            "resource": f"Users/{user}", "resourceData": {"id": user}, **extra}


def test_genuine_items_of_one_post_become_one_request_per_tenant():
    result = screen([item(), item(user="u-2"), item("s-2", "secret-b", "tenant-b")], SUBS.get, received_at=1.0)
    assert set(result.sync_requests) == {"tenant-a", "tenant-b"} and result.dropped == []
    assert result.sync_requests["tenant-a"]["received_at"] == 1.0


@pytest.mark.parametrize("forged, why", [
    (item(state="guess"), "wrong clientState"),
    (item(state=""), "wrong clientState"),
    (item(sub="s-9"), "unknown subscription s-9"),
    (item(tenant="tenant-b"), "belongs to another tenant"),
])
def test_forged_items_are_dropped_with_a_reason_and_never_requested(forged, why):
    result = screen([forged], SUBS.get, received_at=1.0)
    assert result.sync_requests == {} and why in result.dropped[0]


def test_lifecycle_events_are_carried_to_the_sync_request():
    result = screen([item(lifecycleEvent="reauthorizationRequired"), item(lifecycleEvent="missed")], SUBS.get,
                    received_at=1.0, lifecycle=True)
    assert result.sync_requests["tenant-a"]["lifecycle_events"] == ["reauthorizationRequired", "missed"]


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"value": 3}', b'{"value": [1]}', "\xff".encode("latin-1")])
def test_a_body_that_is_not_a_notification_collection_is_not_acceptable(body):
    with pytest.raises(NotAcceptable):
        parse_collection(body)


def test_a_collection_is_parsed_into_its_items():
    assert parse_collection(json.dumps({"value": [item()]}).encode()) == [item()]


def test_requests_of_one_tenant_merge_into_one_covering_the_latest_notification():
    merged = merge_requests([
        {"tenant_id": "a", "reason": "notification", "received_at": 5.0},
        {"tenant_id": "b", "reason": "notification", "received_at": 6.0},
        {"tenant_id": "a", "reason": "notification", "received_at": 9.0},
        {"tenant_id": "a", "reason": "lifecycle", "received_at": 7.0, "subscription_id": "s-1",
         "lifecycle_events": ["missed"]}])
    by_key = {(m["tenant_id"], tuple(m["lifecycle_events"])): m for m in merged}
    assert len(merged) == 3
    assert by_key[("a", ())]["received_at"] == 9.0 and by_key[("a", ("missed",))]["subscription_id"] == "s-1"


def test_concurrent_callers_share_one_message_and_each_returns_only_once_it_is_stored():
    sent: list[dict] = []
    writer = GroupCommit(lambda text: sent.append(json.loads(text)), window_seconds=0.05)
    threads = [threading.Thread(target=writer.submit, args=([{"tenant_id": f"t-{n % 3}", "received_at": n}],))
               for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    stored = [r for message in sent for r in message["requests"]]
    assert {r["tenant_id"] for r in stored} == {"t-0", "t-1", "t-2"}
    assert len(sent) < 12


def test_a_caller_is_told_when_its_requests_could_not_be_stored():
    def refuse(text):
        raise ConnectionError("queue unreachable")

    with pytest.raises(ConnectionError):
        GroupCommit(refuse, window_seconds=0.001).submit([{"tenant_id": "a", "received_at": 1.0}])
