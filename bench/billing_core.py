"""Benchmark: price 500 client tenants × 100 users (about 250,000 observations) with the core.

Prints the seconds spent computing every invoice and the process's peak memory.
Targets on a 2-core machine: at most 3 s and 300 MB.
Run: .venv/bin/python bench/billing_core.py [--tenants 500] [--users 100]
"""
from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.billing import Observation, Period, compute_invoice, parse_plan  # noqa: E402

ZONES = ["America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Sydney", "Pacific/Kiritimati"]
SKUS = ["SPB", "E3", "EMS", "VISIO", "PROJECT"]


def generate(tenants: int, users: int, seed: int = 7):
    rnd = random.Random(seed)
    month_start = datetime(2026, 10, 1, tzinfo=timezone.utc)
    work = []
    for t in range(tenants):
        plan = parse_plan({"tenant_id": f"t-{t}", "name": f"Client {t}", "currency": "USD",
                           "timezone": ZONES[t % len(ZONES)], "per_user_price": "45.00",
                           "sku_prices": {"SPB": "22.00", "E3": "36.00", "EMS": "10.60"},
                           "exclude_upn_patterns": ["svc-*"], "tax_rate": "0.0825"})
        observations = []
        for u in range(users):
            at = month_start - timedelta(days=rnd.randint(1, 90))
            skus = tuple(sorted(rnd.sample(SKUS, rnd.randint(0, 2))))
            enabled, deleted = True, False
            for _ in range(5):
                observations.append(Observation(at=at, user_id=f"u-{t}-{u}", user_principal_name=f"user{u}@client{t}.com",
                                                display_name=f"User {u}", account_enabled=enabled, skus=skus, deleted=deleted))
                at += timedelta(hours=rnd.randint(1, 24 * 12))
                change = rnd.random()
                if change < 0.5:
                    skus = tuple(sorted(rnd.sample(SKUS, rnd.randint(0, 2))))
                elif change < 0.7:
                    enabled = not enabled
                else:
                    deleted = not deleted
        work.append((plan, observations))
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()
    work = generate(args.tenants, args.users)
    count = sum(len(obs) for _, obs in work)
    period = Period(2026, 10)
    started = time.perf_counter()
    lines = 0
    for plan, observations in work:
        lines += len(compute_invoice(plan, observations, period).lines)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"tenants: {len(work)}  users: {args.tenants * args.users}  observations: {count}  invoice lines: {lines}")
    print(f"compute every invoice: {seconds:.2f} s (target <= 3 s)")
    print(f"peak memory (whole process, data included): {peak_mb:.0f} MB (target <= 300 MB)")


if __name__ == "__main__":
    main()
