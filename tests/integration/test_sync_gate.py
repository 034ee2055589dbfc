"""The per-tenant sync gate against Azurite: one delta at a time, no trigger lost."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from shared.storage.sync_gate import COVERED, QUEUED, RUN, SyncGate
from shared.settings import Settings
from shared.storage import Storage

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def storage(azurite):
    return Storage(Settings({"AzureWebJobsStorage": azurite.connection_string}))


@pytest.fixture
def tenant():
    return str(uuid.uuid4())


def test_a_trigger_during_a_delta_makes_the_holder_run_once_more(storage, tenant):
    gate = SyncGate(storage)
    assert gate.acquire(tenant, "a", T0, T0) == RUN
    assert gate.acquire(tenant, "b", T0 + timedelta(seconds=5), T0 + timedelta(seconds=5)) == QUEUED
    assert gate.release(tenant, "a", T0 + timedelta(seconds=6)) is True
    assert gate.release(tenant, "a", T0 + timedelta(seconds=9)) is False


def test_a_trigger_seen_by_another_process_reaches_the_holder_through_the_table(storage, tenant):
    here, there = SyncGate(storage), SyncGate(storage)
    assert here.acquire(tenant, "a", T0, T0) == RUN
    assert there.acquire(tenant, "b", T0 + timedelta(seconds=5), T0 + timedelta(seconds=5)) == QUEUED
    assert here.release(tenant, "a", T0 + timedelta(seconds=6)) is True
    assert here.release(tenant, "a", T0 + timedelta(seconds=9)) is False


def test_a_trigger_older_than_the_latest_delta_is_covered_here_and_elsewhere(storage, tenant):
    here, there = SyncGate(storage), SyncGate(storage)
    assert here.acquire(tenant, "a", T0, T0) == RUN
    assert here.release(tenant, "a", T0 + timedelta(seconds=1)) is False
    old = T0 - timedelta(seconds=10)
    assert here.acquire(tenant, "b", T0 + timedelta(seconds=2), old) == COVERED
    assert there.acquire(tenant, "c", T0 + timedelta(seconds=2), old) == COVERED
    assert there.acquire(tenant, "d", T0 + timedelta(seconds=2), T0 + timedelta(seconds=2)) == RUN


def test_a_failed_delta_covers_nothing_so_its_retry_runs(storage, tenant):
    gate = SyncGate(storage)
    requested = T0 - timedelta(seconds=30)
    assert gate.acquire(tenant, "a", T0, requested) == RUN
    gate.abandon(tenant, "a")
    assert gate.acquire(tenant, "a2", T0 + timedelta(minutes=1), requested) == RUN


def test_a_holder_that_died_is_taken_over_when_its_claim_lapses(storage, tenant):
    gate, other = SyncGate(storage, ttl=timedelta(minutes=10)), SyncGate(storage)
    assert gate.acquire(tenant, "dead", T0, T0) == RUN
    assert other.acquire(tenant, "b", T0 + timedelta(minutes=5), T0 + timedelta(minutes=5)) == QUEUED
    assert other.acquire(tenant, "c", T0 + timedelta(minutes=11), T0 + timedelta(minutes=11)) == RUN


def test_a_holder_hands_a_trigger_that_came_during_its_delta_to_a_follow_up_which_runs_anywhere(storage, tenant):
    here, there = SyncGate(storage), SyncGate(storage)
    assert here.acquire(tenant, "a", T0, T0) == RUN
    assert here.acquire(tenant, "b", T0 + timedelta(seconds=5), T0 + timedelta(seconds=5)) == QUEUED
    assert here.syncing_here(tenant) and not there.syncing_here(tenant)
    assert here.hand_over(tenant, "a", T0 + timedelta(seconds=6)) is True
    assert not here.syncing_here(tenant)
    # what the handed-over delta covered stays covered; the follow-up runs, here or elsewhere
    assert there.acquire(tenant, "c", T0 + timedelta(seconds=7), T0 - timedelta(seconds=10)) == COVERED
    assert there.acquire(tenant, "follow-up", T0 + timedelta(seconds=7)) == RUN
    assert there.hand_over(tenant, "follow-up", T0 + timedelta(seconds=8)) is False
    assert here.acquire(tenant, "d", T0 + timedelta(seconds=9), T0 + timedelta(seconds=9)) == RUN


def test_a_trigger_seen_by_another_process_during_a_delta_is_handed_over_through_the_table(storage, tenant):
    here, there = SyncGate(storage), SyncGate(storage)
    assert here.acquire(tenant, "a", T0, T0) == RUN
    assert there.acquire(tenant, "b", T0 + timedelta(seconds=5), T0 + timedelta(seconds=5)) == QUEUED
    assert here.hand_over(tenant, "a", T0 + timedelta(seconds=6)) is True
    # until the follow-up runs, the row says a delta is wanted: any trigger takes it
    assert there.acquire(tenant, "e", T0 + timedelta(seconds=7), T0 + timedelta(seconds=7)) == RUN
    assert there.hand_over(tenant, "e", T0 + timedelta(seconds=8)) is False
