"""Benchmark: `./dev quote` on 50,000 users / 250,000 observations against the `json.loads` floor.

The floor is a process of the same interpreter that reads the same file line by line with
`json.loads` and keeps every object (what any reader of the file must at least do). Both run as
child processes, alternately, so each run's ratio compares figures taken under the same load.
Prints wall time and peak memory (max RSS) of each, and their ratios: min and median over runs.
Targets: time <= 2x the floor's, peak memory <= 1x the floor's.
Run: .venv/bin/python bench/quote.py [--users 50000] [--per-user 5] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKUS = ["SPB", "E3", "EMS", "VISIO", "PROJECT"]
PLAN = {"tenant_id": "t-bench", "name": "Bench Client", "currency": "USD", "timezone": "Europe/Berlin",
        "per_user_price": "45.00", "sku_prices": {"SPB": "22.00", "E3": "36.00", "EMS": "10.60"},
        "exclude_upn_patterns": ["svc-*"], "tax_rate": "0.0825"}
FLOOR = "import json, sys\nwith open(sys.argv[1], encoding='utf-8') as f:\n    rows = [json.loads(line) for line in f]\n"


def write_input(folder: Path, users: int, per_user: int, seed: int = 16) -> tuple[Path, Path, int]:
    """A month of history as a ledger export gives it: every field on most lines, deletions that
    name only the user, lines in time order with the users interleaved."""
    rnd = random.Random(seed)
    start = datetime(2026, 9, 1, tzinfo=timezone.utc)
    rows: list[tuple[datetime, dict]] = []
    for u in range(users):
        at = start + timedelta(minutes=rnd.randint(0, 60 * 24 * 30))
        upn = f"{'svc-' if u % 97 == 0 else ''}user{u}@client.example"
        state = {"user_id": f"00000000-0000-4000-8000-{u:012d}", "user_principal_name": upn,
                 "display_name": f"User Number {u}", "user_type": "Guest" if u % 31 == 0 else "Member",
                 "account_enabled": True, "skus": sorted(rnd.sample(SKUS, rnd.randint(0, 2))), "deleted": False}
        for _ in range(per_user):
            change = rnd.random()
            if change < 0.1:
                state["deleted"] = not state["deleted"]
                rows.append((at, {"at": "", "user_id": state["user_id"], "deleted": state["deleted"]}))
            else:
                if change < 0.6:
                    state["skus"] = sorted(rnd.sample(SKUS, rnd.randint(0, 2)))
                else:
                    state["account_enabled"] = not state["account_enabled"]
                rows.append((at, {"at": "", **state}))
            at += timedelta(seconds=rnd.randint(60, 3600 * 24 * 8))
    rows.sort(key=lambda row: row[0])
    observations = folder / "observations.jsonl"
    with observations.open("w", encoding="utf-8") as out:
        for at, row in rows:
            row["at"] = at.isoformat().replace("+00:00", "Z")
            out.write(json.dumps(row) + "\n")
    plan = folder / "plan.json"
    plan.write_text(json.dumps(PLAN), encoding="utf-8")
    return plan, observations, len(rows)


def measure(args: list[str], stdout) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    child = subprocess.Popen(args, cwd=ROOT, stdout=stdout, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{args[1:4]} failed: {child.stderr.read().decode()}")
    child.stderr.close()
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--per-user", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        plan, observations, count = write_input(Path(folder), args.users, args.per_user)
        size = observations.stat().st_size / 1e6
        print(f"users: {args.users}  observations: {count}  file: {size:.1f} MB  runs: {args.runs}", flush=True)
        output = Path(folder) / "invoice.json"
        times, memories = [], []
        for run in range(1, args.runs + 1):
            floor_s, floor_mb = measure([sys.executable, "-c", FLOOR, str(observations)], subprocess.DEVNULL)
            with output.open("wb") as out:
                ours_s, ours_mb = measure([sys.executable, "-m", "devtools.cli", "quote", "--plan", str(plan),
                                           "--observations", str(observations), "--period", "2026-10"], out)
            times.append(ours_s / floor_s)
            memories.append(ours_mb / floor_mb)
            print(f"run {run}: quote {ours_s:.2f} s {ours_mb:.0f} MB | json.loads floor {floor_s:.2f} s "
                  f"{floor_mb:.0f} MB | time {times[-1]:.2f}x  memory {memories[-1]:.2f}x", flush=True)
        lines = len(json.loads(output.read_text(encoding="utf-8"))["lines"])
        print(f"invoice lines: {lines}")
        print(f"time vs floor:   min {min(times):.2f}x  median {statistics.median(times):.2f}x  (target <= 2x)")
        print(f"memory vs floor: min {min(memories):.2f}x  median {statistics.median(memories):.2f}x  (target <= 1x)")


if __name__ == "__main__":
    main()
