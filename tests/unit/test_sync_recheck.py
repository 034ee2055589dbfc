"""Re-checks of notified users a delta did not show yet (Graph's replication delay), pure."""
from __future__ import annotations

from datetime import datetime, timezone

from shared.messages import SyncRequest
from shared.services.sync import RECHECK, SyncReport, recheck_of, unseen_users

NOTIFIED = SyncRequest("t-1", "notification", received_at=1.0, user_ids=("u-1", "u-2"))


def report(*seen: str, skipped: str | None = None) -> SyncReport:
    return SyncReport("t-1", "Contoso", len(seen), 0, False, skipped=skipped, seen=frozenset(seen))


def test_a_user_the_delta_returned_is_covered_and_one_it_did_not_is_checked_again_later():
    missing = unseen_users(NOTIFIED, [report("u-1")])
    assert missing == ["u-2"]
    again, delay = recheck_of(NOTIFIED, missing, [30, 120, 600])
    assert (again.reason, again.user_ids, again.recheck, again.received_at, delay) == (RECHECK, ("u-2",), 1, None, 30)
    assert SyncRequest.from_json(again.to_json()) == again  # survives the queue


def test_the_re_checks_stop_after_the_last_step_and_when_the_tenant_was_skipped():
    last = SyncRequest("t-1", RECHECK, user_ids=("u-2",), recheck=3)
    assert recheck_of(last, ["u-2"], [30, 120, 600]) is None
    assert unseen_users(NOTIFIED, [report(skipped="tenant is offboarded")]) == []
    assert recheck_of(NOTIFIED, [], [30]) is None


def test_a_request_covered_by_another_delta_of_this_process_counts_what_that_delta_returned():
    from shared.services import sync

    sync._remember("t-cover", datetime(2026, 11, 3, 9, 0, 5, tzinfo=timezone.utc), frozenset({"u-9"}))
    covered = SyncRequest("t-cover", "notification", user_ids=("u-9", "u-8"))
    assert unseen_users(covered, [], datetime(2026, 11, 3, 9, 0, 0, tzinfo=timezone.utc)) == ["u-8"]
    assert unseen_users(covered, [], datetime(2026, 11, 3, 9, 0, 9, tzinfo=timezone.utc)) == ["u-9", "u-8"]
