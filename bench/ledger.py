"""Benchmark: the lifecycle ledger on Azurite.

Appends about 250,000 observations across 500 tenants (a year of history, Jan-Dec 2026), then
reads one month for every tenant. Prints appends per second, entities read per second, the month
read against the raw SDK read of the same entities (the floor), and month 12 against month 1.
Targets: the read path at most 1.3x the floor; month 12 at most 1.2x month 1.
Run: .venv/bin/python bench/ledger.py [--tenants 500] [--users 50] [--changes 10] [--writers 4]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.azurite import Azurite  # noqa: E402
from shared.billing import Observation, Period  # noqa: E402
from shared.storage.ledger import TableLedger  # noqa: E402
from shared.storage import ledger_entities as E  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.storage import Storage  # noqa: E402

SKUS = ["SPB", "E3", "EMS", "VISIO"]
YEAR = datetime(2026, 1, 1, tzinfo=timezone.utc)


def tenant_history(t: int, users: int, changes: int) -> list[Observation]:
    rnd = random.Random(t)
    result = []
    year_minutes = 365 * 24 * 60
    for u in range(users):
        skus, enabled = tuple(rnd.sample(SKUS, 1)), True
        # changes spread evenly over the year, so that every month holds a similar share
        for minute in sorted(rnd.sample(range(year_minutes), changes)):
            at = YEAR + timedelta(minutes=minute)
            result.append(Observation(at, f"u{u:04d}", f"user{u}@client{t}.com", f"User {u}", "Member", enabled, skus))
            if rnd.random() < 0.7:
                new = tuple(rnd.sample(SKUS, rnd.randint(0, 2)))
                skus = new if tuple(sorted(new)) != tuple(sorted(skus)) else ()
            else:
                enabled = not enabled
    return sorted(result, key=lambda o: o.at)


def raw_read(table, tenant: str, period: Period, zone: str) -> int:
    """The floor: the same queries with the bare SDK, entities only counted."""
    start, end = period.start(zone), period.end(zone)
    month = E.month_key(start)
    count = 0
    for low, high in ((f"snap|{month}|", f"snap|{month}}}"), ("rec|" + E.stamp(E.month_start(month)), "rec|" + E.stamp(end))):
        for _ in table.query_entities("PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                                      parameters={"pk": tenant, "low": low, "high": high}):
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args()
    with Azurite() as azurite:
        storage = Storage(Settings({"AzureWebJobsStorage": azurite.connection_string}))
        ledger = TableLedger(storage)
        tenants = [f"bench-{t:04d}" for t in range(args.tenants)]
        histories = {name: tenant_history(t, args.users, args.changes) for t, name in enumerate(tenants)}
        total = sum(len(h) for h in histories.values())
        now = datetime(2027, 1, 5, tzinfo=timezone.utc)
        started = time.perf_counter()
        done = []

        def append(name: str) -> int:
            count = TableLedger(storage).append(name, histories[name], observed_at=now, source="bench")
            done.append(name)
            if len(done) % 50 == 0:
                elapsed = time.perf_counter() - started
                print(f"  {len(done)} tenants appended, {elapsed:.0f} s, "
                      f"{len(done) * total / len(tenants) / elapsed:.0f} appends/s so far", flush=True)
            return count

        with ThreadPoolExecutor(args.writers) as pool:
            written = sum(pool.map(append, tenants))
        append_seconds = time.perf_counter() - started
        print(f"appended {total} observations ({written} records) for {len(tenants)} tenants in "
              f"{append_seconds:.1f} s: {total / append_seconds:.0f} appends/s")

        table = storage.table("ledger")
        zone = "Europe/London"
        for period in (Period(2026, 1), Period(2026, 12)):  # warm: snapshots exist, caches are hot
            ledger.read_month(tenants[0], period, zone)
            raw_read(table, tenants[0], period, zone)
        results = {}
        for period in (Period(2026, 1), Period(2026, 12)):
            # Ours and the floor alternate tenant by tenant, so that load from elsewhere hits both alike.
            entities, ours, floor = 0, 0.0, 0.0
            for name in tenants:
                t0 = time.perf_counter()
                entities += raw_read(table, name, period, zone)
                t1 = time.perf_counter()
                ledger.read_month(name, period, zone)
                t2 = time.perf_counter()
                floor, ours = floor + (t1 - t0), ours + (t2 - t1)
            results[period] = (ours, floor, entities)
            print(f"read {period} for every tenant: {ours:.2f} s ({entities / ours:.0f} entities/s); raw SDK floor "
                  f"{floor:.2f} s; read path / floor = {ours / floor:.2f} (target <= 1.3)")
        m1, m12 = results[Period(2026, 1)][0], results[Period(2026, 12)][0]
        print(f"month 12 read / month 1 read = {m12 / m1:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
