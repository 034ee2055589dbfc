"""The lifecycle ledger against a real Azurite: idempotent, concurrent-safe, month reads."""
from __future__ import annotations

import random
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from shared.billing import Observation, Period, compute_invoice
from shared.storage.ledger import TableLedger
from shared.settings import Settings
from shared.storage import Storage
from tests.billing_helpers import plan

T0 = datetime(2026, 7, 1, tzinfo=timezone.utc)
NOW = datetime(2026, 11, 25, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def storage(azurite):
    return Storage(Settings({"AzureWebJobsStorage": azurite.connection_string}))


@pytest.fixture
def ledger(storage):
    return TableLedger(storage)


@pytest.fixture
def tenant():
    return f"t-{uuid.uuid4()}"


def history(users=10, changes=10, seed=1, start=T0, days=120):
    """A random but reproducible lifecycle: every observation is a real change of its user."""
    rnd = random.Random(seed)
    result = []
    for u in range(users):
        at = start + timedelta(hours=rnd.randint(0, 24 * 20))
        state = Observation(at=at, user_id=f"user-{u}", user_principal_name=f"user{u}@contoso.com",
                            display_name=f"User {u}", skus=("SPB",))
        result.append(state)
        for _ in range(changes - 1):
            at += timedelta(hours=rnd.randint(1, days * 24 // changes))
            kind = rnd.choice(["skus", "enabled", "deleted"])
            if kind == "skus":
                skus = tuple(sorted(rnd.sample(["SPB", "E3", "EMS"], rnd.randint(0, 2))))
                if skus == state.skus:
                    skus = () if skus else ("E3",)
                state = Observation(at, state.user_id, state.user_principal_name, state.display_name,
                                    state.user_type, state.account_enabled, skus, state.deleted)
            elif kind == "enabled":
                state = Observation(at, state.user_id, state.user_principal_name, state.display_name,
                                    state.user_type, not state.account_enabled, state.skus, state.deleted)
            else:
                state = Observation(at, state.user_id, state.user_principal_name, state.display_name,
                                    state.user_type, state.account_enabled, state.skus, not state.deleted)
            result.append(state)
    return result


def count_records(storage, tenant):
    table = storage.table("ledger")
    return sum(1 for _ in table.query_entities("PartitionKey eq @pk and RowKey ge 'rec|' and RowKey lt 'rec}'",
                                                parameters={"pk": tenant}, select=["RowKey"]))


def test_replaying_the_same_observations_writes_nothing_the_second_time(ledger, storage, tenant):
    observations = history(users=5, changes=6)
    assert ledger.append(tenant, observations, observed_at=NOW, source="test") == len(observations)
    assert ledger.append(tenant, observations, observed_at=NOW, source="test") == 0
    assert ledger.append(tenant, list(reversed(observations[:7])), observed_at=NOW, source="replay") == 0
    assert count_records(storage, tenant) == len(observations)


def test_an_observation_that_changes_nothing_billing_relevant_is_not_recorded(ledger, storage, tenant):
    first = Observation(T0, "u-1", "ann@contoso.com", "Ann Lee", skus=("SPB",))
    same_later = Observation(T0 + timedelta(days=3), "u-1", "ann@contoso.com", "Ann Lee", skus=("SPB",))
    assert ledger.append(tenant, [first], observed_at=T0, source="test") == 1
    assert ledger.append(tenant, [same_later], observed_at=same_later.at, source="test") == 0
    assert count_records(storage, tenant) == 1


def test_each_record_keeps_its_effective_time_and_the_time_it_was_observed(ledger, storage, tenant):
    created = Observation(T0, "u-1", "ann@contoso.com", "Ann Lee")
    ledger.append(tenant, [created], observed_at=T0 + timedelta(hours=5), source="delta")
    row = next(iter(storage.table("ledger").query_entities(
        "PartitionKey eq @pk and RowKey ge 'rec|' and RowKey lt 'rec}'", parameters={"pk": tenant})))
    assert row["at"].startswith("2026-07-01T00:00:00") and row["observed_at"].startswith("2026-07-01T05:00:00")
    assert row["source"] == "delta"


def test_two_concurrent_writers_of_1000_observations_lose_and_double_nothing(storage, tenant):
    observations = history(users=50, changes=20, seed=7)
    assert len(observations) == 1000
    errors: list[BaseException] = []

    def writer(chunk_size: int, seed: int) -> None:
        try:
            mine = TableLedger(storage)
            for i in range(0, len(observations), chunk_size):
                mine.append(tenant, observations[i:i + chunk_size], observed_at=NOW, source=f"w{seed}")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(size, n)) for n, size in enumerate((100, 37))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert count_records(storage, tenant) == 1000
    reader = TableLedger(storage)
    for period in (Period(2026, 8), Period(2026, 9), Period(2026, 10)):
        month = reader.read_month(tenant, period, "UTC")
        assert compute_invoice(plan(), month.observations, period) == compute_invoice(plan(), observations, period)


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kolkata"])
def test_each_month_read_bills_exactly_what_the_whole_history_bills(ledger, tenant, zone):
    observations = history(users=12, changes=15, seed=3)
    ledger.append(tenant, observations, observed_at=NOW, source="test")
    the_plan = plan(timezone=zone)
    for period in (Period(2026, 7), Period(2026, 8), Period(2026, 9), Period(2026, 10), Period(2026, 11)):
        month = ledger.read_month(tenant, period, zone)
        assert compute_invoice(the_plan, month.observations, period) == compute_invoice(the_plan, observations, period)


def test_a_month_read_returns_only_that_months_records_plus_the_opening_states(ledger, tenant):
    observations = history(users=8, changes=12, seed=5, days=150)
    ledger.append(tenant, observations, observed_at=NOW, source="test")
    month = ledger.read_month(tenant, Period(2026, 9), "UTC")
    start, end = datetime(2026, 9, 1, tzinfo=timezone.utc), datetime(2026, 10, 1, tzinfo=timezone.utc)
    assert {o.at for o in month.records} == {o.at for o in observations if start <= o.at < end}
    assert all(o.at < start and not o.deleted for o in month.opening)
    assert len({o.user_id for o in month.opening}) == len(month.opening)


def test_a_backfilled_observation_corrects_the_later_months(ledger, tenant):
    ledger.append(tenant, [Observation(T0, "u-1", "ann@contoso.com", "Ann Lee", skus=("SPB",))],
                  observed_at=T0, source="test")
    ledger.append(tenant, [Observation(datetime(2026, 10, 10, tzinfo=timezone.utc), "u-1", "ann@contoso.com",
                                       "Ann Lee", skus=("SPB", "E3"))], observed_at=NOW, source="test")
    assert ledger.read_month(tenant, Period(2026, 10), "UTC").opening[0].skus == ("SPB",)
    # Back-dated: Ann was disabled on Aug 15, which the live sync never saw.
    disabled = Observation(datetime(2026, 8, 15, tzinfo=timezone.utc), "u-1", "ann@contoso.com", "Ann Lee",
                           account_enabled=False, skus=("SPB",))
    assert ledger.append(tenant, [disabled], observed_at=NOW, source="import") == 1
    assert ledger.append(tenant, [disabled], observed_at=NOW, source="import") == 0
    opening = ledger.read_month(tenant, Period(2026, 10), "UTC").opening
    assert opening[0].account_enabled is False
    assert ledger.current_states(tenant)["u-1"].skus == ("E3", "SPB")
