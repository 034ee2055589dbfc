"""Queue messages as the triggers read them: what the webhook and the timers write comes back
as the same request, and a message that is not one is refused with what is wrong."""
from __future__ import annotations

import pytest

from shared.messages import BadMessage, CloseRequest, SyncRequest, sync_requests


def test_a_group_commit_message_gives_each_of_its_sync_requests_with_their_lifecycle_events():
    message = {"requests": [
        {"tenant_id": "t-1", "reason": "notification", "received_at": 1764.5, "subscription_id": "s-1",
         "lifecycle_events": []},
        {"tenant_id": "t-2", "reason": "lifecycle", "received_at": 1765, "subscription_id": "s-2",
         "lifecycle_events": ["reauthorizationRequired", "missed"]}]}
    first, second = sync_requests(message)
    assert first == SyncRequest("t-1", "notification", 1764.5, "s-1")
    assert second.lifecycle_events == ("reauthorizationRequired", "missed") and second.received_at == 1765.0


def test_a_timer_sync_request_reads_back_as_written():
    request = SyncRequest("t-1", "daily")
    assert request.to_json() == {"tenant_id": "t-1", "reason": "daily"}
    assert sync_requests(request.to_json()) == [request]


def test_a_close_request_reads_back_as_written_and_one_without_a_period_is_refused():
    request = CloseRequest("t-1", "2026-10", "20261101T060000Z-abc123")
    assert CloseRequest.from_json(request.to_json()) == request
    with pytest.raises(BadMessage, match="close message without tenant_id and period"):
        CloseRequest.from_json({"tenant_id": "t-1"})


def test_a_sync_message_without_a_tenant_is_refused():
    with pytest.raises(BadMessage, match="sync message without tenant_id"):
        sync_requests({"requests": [{"reason": "notification"}]})
