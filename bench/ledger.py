"""Benchmark: the lifecycle ledger on Azurite, each figure against a raw SDK floor timed in the same run.

Each run appends a year of history (Jan-Dec 2026) for fresh tenants, one append per tenant, and
alternates tenant by tenant with the floor: the same records inserted raw, 100 per batch
transaction, into another table. Then it reads every month of 2026 in several zones, again
alternating with the floor (quickest of 3 each): the bare SDK queries of what the month needs (the snapshot of the
period's UTC month and the records from its first instant to the local month's end, a RowKey range each). The
ledger reads both ranges in one query; the same query, bare, is printed as a stricter floor beside it.
Prints per run and then min / median over runs: appends / floor, and the worst month read / floor
over every month and zone. Targets: appends <= 2x; every month read <= 1.1x.
Run: .venv/bin/python bench/ledger.py [--runs 3] [--tenants 30] [--users 50] [--changes 10] [--read-tenants 15]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.azurite import Azurite  # noqa: E402
from shared.billing import Observation, Period  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.storage import Storage  # noqa: E402
from shared.storage import ledger_entities as E  # noqa: E402
from shared.storage.ledger import TableLedger  # noqa: E402

SKUS = ["SPB", "E3", "EMS", "VISIO"]
YEAR = datetime(2026, 1, 1, tzinfo=timezone.utc)
ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Sydney", "Pacific/Kiritimati"]
NOW = datetime(2027, 1, 5, tzinfo=timezone.utc)


def tenant_history(seed: int, users: int, changes: int) -> list[Observation]:
    rnd = random.Random(seed)
    result = []
    year_minutes = 365 * 24 * 60
    for u in range(users):
        skus, enabled = tuple(rnd.sample(SKUS, 1)), True
        # changes spread evenly over the year, so that every month holds a similar share
        for minute in sorted(rnd.sample(range(year_minutes), changes)):
            at = YEAR + timedelta(minutes=minute)
            result.append(Observation(at, f"u{u:04d}", f"user{u}@client{seed}.com", f"User {u}", "Member", enabled, skus))
            if rnd.random() < 0.7:
                new = tuple(rnd.sample(SKUS, rnd.randint(0, 2)))
                skus = new if tuple(sorted(new)) != tuple(sorted(skus)) else ()
            else:
                enabled = not enabled
    return sorted(result, key=lambda o: o.at)


def raw_insert(table, tenant: str, history: list[Observation]) -> None:
    """The append floor: each record as the ledger stores it, 100 per batch transaction."""
    entities = [{"PartitionKey": tenant, "RowKey": E.record_key(o, 0), **E.state_fields(o),
                 "observed_at": E.stamp(NOW), "source": "bench"} for o in history]
    for start in range(0, len(entities), 100):
        table.submit_transaction([("create", entity) for entity in entities[start:start + 100]])


def raw_read(table, tenant: str, period: Period, zone: str) -> int:
    """The read floor (the goal's): the bare SDK queries of what the month needs, the snapshot of
    the period's UTC month and its records, each a range of RowKeys; entities only counted."""
    month = f"{period.year:04d}-{period.month:02d}"
    count = 0
    for low, high in ((f"snap|{month}|", f"snap|{month}}}"),
                      ("rec|" + E.stamp(E.month_start(month)), "rec|" + E.stamp(period.end(zone)))):
        for _ in table.query_entities("PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                                      parameters={"pk": tenant, "low": low, "high": high}):
            count += 1
    return count


def raw_read_once(table, tenant: str, period: Period, zone: str) -> int:
    """The same two ranges in one query, as the ledger now reads them: a stricter floor, printed
    beside the goal's (what is left over it is the read's own decoding)."""
    month = f"{period.year:04d}-{period.month:02d}"
    count = 0
    for _ in table.query_entities(
            "PartitionKey eq @pk and ( ( RowKey ge @low and RowKey lt @high ) or ( RowKey ge @low2 and RowKey lt @high2 ) )",
            parameters={"pk": tenant, "low": "rec|" + E.stamp(E.month_start(month)), "high": "rec|" + E.stamp(period.end(zone)),
                        "low2": f"snap|{month}|", "high2": f"snap|{month}}}"}):
        count += 1
    return count


def run_once(storage: Storage, args: argparse.Namespace, run: int) -> tuple[float, float, str]:
    floor_table = storage.table("ledgerfloor")
    table = storage.table("ledger")
    tag = uuid.uuid4().hex[:6]
    tenants = [f"bench-{tag}-{t:03d}" for t in range(args.tenants)]
    histories = {name: tenant_history(run * 1000 + t, args.users, args.changes) for t, name in enumerate(tenants)}
    ours = floor = 0.0
    for name in tenants:  # alternately, so that load from elsewhere hits both alike
        t0 = time.perf_counter()
        raw_insert(floor_table, name, histories[name])
        t1 = time.perf_counter()
        TableLedger(storage).append(name, histories[name], observed_at=NOW, source="bench")
        t2 = time.perf_counter()
        floor, ours = floor + (t1 - t0), ours + (t2 - t1)
    count = sum(len(h) for h in histories.values())
    append_ratio = ours / floor
    print(f"run {run}: appended {count} observations for {len(tenants)} tenants in {ours:.1f} s "
          f"({count / ours:.0f}/s); raw batch floor {floor:.1f} s; appends / floor = {append_ratio:.2f}", flush=True)
    readers = tenants[:args.read_tenants]
    reader = TableLedger(storage)
    ratios: dict[tuple[str, int], float] = {}
    strict: dict[tuple[str, int], float] = {}
    for zone in ZONES:
        for month in range(1, 13):
            period = Period(2026, month)
            ours = floor = once = 0.0
            for name in readers:  # the quickest of 3 alternate reads each: load from elsewhere filtered out
                floors, reads, onces = [], [], []
                for _ in range(3):
                    t0 = time.perf_counter()
                    raw_read(table, name, period, zone)
                    t1 = time.perf_counter()
                    reader.read_month(name, period, zone)
                    t2 = time.perf_counter()
                    raw_read_once(table, name, period, zone)
                    t3 = time.perf_counter()
                    floors.append(t1 - t0)
                    reads.append(t2 - t1)
                    onces.append(t3 - t2)
                floor, ours, once = floor + min(floors), ours + min(reads), once + min(onces)
            ratios[(zone, month)] = ours / floor
            strict[(zone, month)] = ours / once
    worst = max(ratios, key=ratios.get)
    by_zone = ", ".join(f"{zone} {max(ratios[(zone, m)] for m in range(1, 13)):.2f}" for zone in ZONES)
    print(f"run {run}: month read / floor, worst month per zone: {by_zone}; worst {worst[0]} "
          f"2026-{worst[1]:02d} {ratios[worst]:.2f}; median over the {len(ratios)} months x zones "
          f"{statistics.median(ratios.values()):.2f}; over the one-query floor: worst {max(strict.values()):.2f}, "
          f"median {statistics.median(strict.values()):.2f}", flush=True)
    return append_ratio, ratios[worst], f"{worst[0]} 2026-{worst[1]:02d}", max(strict.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=30)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--read-tenants", type=int, default=15, help="tenants read per month and zone")
    args = parser.parse_args()
    with Azurite() as azurite:
        storage = Storage(Settings({"AzureWebJobsStorage": azurite.connection_string}))
        for name in ("ledger", "ledgerfloor"):
            try:
                storage.table(name).create_table()
            except Exception:  # noqa: BLE001 - it exists
                pass
        # warm both paths (connections, imports) before anything is timed
        warm = f"warm-{uuid.uuid4().hex[:6]}"
        history = tenant_history(0, 5, 3)
        raw_insert(storage.table("ledgerfloor"), warm, history)
        TableLedger(storage).append(warm, history, observed_at=NOW, source="bench")
        raw_read(storage.table("ledger"), warm, Period(2026, 6), "UTC")
        TableLedger(storage).read_month(warm, Period(2026, 6), "UTC")
        results = [run_once(storage, args, run) for run in range(1, args.runs + 1)]
        appends = [r[0] for r in results]
        reads = [r[1] for r in results]
        print(f"appends / raw batch floor: min {min(appends):.2f}x median {statistics.median(appends):.2f}x (target <= 2x)")
        print(f"worst month read / floor over {len(ZONES)} zones x 12 months: min {min(reads):.2f}x "
              f"median {statistics.median(reads):.2f}x (target <= 1.1x; worst cells: {', '.join(r[2] for r in results)})")
        stricter = [r[3] for r in results]
        print(f"  the same over the one-query floor (the read's own query, so only its decoding counts): worst cell "
              f"min {min(stricter):.2f}x median {statistics.median(stricter):.2f}x")


if __name__ == "__main__":
    main()
