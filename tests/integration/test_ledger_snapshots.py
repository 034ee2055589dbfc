"""The ledger keeps each month's opening snapshot right once per append, whatever the append
spans, and a month read bills what the whole history bills in every zone."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from shared.billing import Observation, Period, compute_invoice
from shared.settings import Settings
from shared.storage import Storage
from shared.storage.ledger import TableLedger
from tests.billing_helpers import plan

NOW = datetime(2027, 1, 5, tzinfo=timezone.utc)
PERIODS = [Period(2026, month) for month in range(1, 13)]


@pytest.fixture(scope="module")
def storage(azurite):
    return Storage(Settings({"AzureWebJobsStorage": azurite.connection_string}))


def year_of(user: str, every_days: int, offset_hours: int = 0) -> list[Observation]:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(hours=offset_hours)
    return [Observation(start + timedelta(days=d), user, f"{user}@contoso.com", user.upper(),
                        skus=(("SPB",), ("E3",), ())[n % 3], deleted=n % 7 == 6)
            for n, d in enumerate(range(0, 365, every_days))]


def snapshot_months(storage, tenant: str) -> set[str]:
    rows = storage.table("ledger").query_entities("PartitionKey eq @pk and RowKey ge 'snap|' and RowKey lt 'snap}'",
                                                   parameters={"pk": tenant}, select=["RowKey"])
    return {row["RowKey"].split("|")[1] for row in rows}


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Australia/Sydney", "America/New_York"])
def test_a_year_appended_at_once_then_another_user_across_it_bills_every_month_as_the_whole_history(storage, zone):
    tenant, ledger = f"t-{uuid.uuid4()}", TableLedger(storage)
    ann, bo = year_of("ann", 9), year_of("bo", 13, offset_hours=7)
    ledger.append(tenant, ann, observed_at=NOW, source="import")
    assert snapshot_months(storage, tenant) == {f"2026-{m:02d}" for m in range(1, 13)}
    ledger.append(tenant, bo, observed_at=NOW, source="import")  # spans the months Ann's records are in
    reader, the_plan = TableLedger(storage), plan(timezone=zone)
    for period in PERIODS:
        month = reader.read_month(tenant, period, zone)
        assert compute_invoice(the_plan, month.observations, period) == compute_invoice(the_plan, ann + bo, period)


def test_a_change_back_in_the_spring_drops_the_later_snapshots_and_reads_stay_right(storage):
    tenant, ledger = f"t-{uuid.uuid4()}", TableLedger(storage)
    ann = year_of("ann", 30)
    ledger.append(tenant, ann[:8], observed_at=NOW, source="import")
    back_dated = Observation(datetime(2026, 3, 10, tzinfo=timezone.utc), "ann", "ann@contoso.com", "ANN",
                             account_enabled=False, skus=("SPB",))
    assert ledger.append(tenant, [back_dated], observed_at=NOW, source="import") == 1
    assert max(snapshot_months(storage, tenant)) <= "2026-03"
    history = sorted(ann[:8] + [back_dated], key=lambda o: o.at)
    for period in PERIODS[:9]:
        month = TableLedger(storage).read_month(tenant, period, "UTC")
        assert compute_invoice(plan(), month.observations, period) == compute_invoice(plan(), history, period)
