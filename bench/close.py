"""Benchmark: the month-end close of many clients, end to end, against Azurite and the Graph
simulator: compute from the ledger, number, render the PDF, archive it, draft and send the email.

The ledger is loaded with a compact history per client (one opening snapshot of the month plus
a few joiners and leavers during it), written straight into the ledger's table layout so that
loading is not what is measured. Every user holds the per-user fee and one SKU (SPB), so a client
of U users has about 2U invoice lines (100 users: about 200 lines).

Prints invoices per second for the whole close (with --concurrency clients at once) and the PDF
seconds (median) of a 20-line and a 200-line invoice from the closed data. Targets on a 2-core
machine: 200 lines at most 1 s, 20 lines at most 0.2 s.
Run: .venv/bin/python bench/close.py [--tenants 500] [--users 100] [--concurrency 4]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devtools.azurite import Azurite  # noqa: E402
from devtools.graph_sim import GraphSimulator  # noqa: E402
from shared.app import Prorata  # noqa: E402
from shared.billing import Observation, Period, parse_plan  # noqa: E402
from shared.storage import ledger_entities as E  # noqa: E402
from shared.storage.invoices import invoice_document  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.tenants import Tenant  # noqa: E402

MSP = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"
MAILBOX = "billing@northwind-msp.example"
PERIOD = Period(2026, 10)
ZONES = ["America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Sydney", "Pacific/Kiritimati"]
TARGETS = {20: 0.2, 200: 1.0}


def load_client(app: Prorata, index: int, users: int, rnd: random.Random) -> str:
    """A client with `users` users: their state at the month's start in one snapshot row, and
    about a tenth of them joining or leaving during the month as records."""
    tenant_id = f"00000000-0000-4000-8000-{index:012d}"
    name = f"Client {index:03d} Ltd"
    plan = parse_plan({"tenant_id": tenant_id, "name": name, "currency": "USD", "timezone": ZONES[index % len(ZONES)],
                       "per_user_price": "45.00", "sku_prices": {"SPB": "22.00"}, "tax_rate": "0.0825"})
    app.tenants.save(Tenant(tenant_id=tenant_id, plan=plan, billing_contacts=(f"accounts@client{index}.example",),
                            address=("1 Main Street", "Springfield"), onboarded_at=datetime(2026, 9, 1, tzinfo=timezone.utc)))
    # The ledger reads a month from the snapshot of the UTC month in which the local month starts
    # (September for clients east of UTC).
    month = E.month_key(PERIOD.start(plan.timezone))
    start = datetime(2026, 10, 1, tzinfo=timezone.utc)
    states, records = [], []
    for u in range(users):
        person = Observation(E.month_start(month) - timedelta(days=1), f"u{u}", f"user{u}@client{index}.example",
                             f"User {u:03d} of Client {index}", skus=("SPB",))
        change = rnd.random()
        if change < 0.05:  # joins during the month
            records.append(Observation(start + timedelta(days=rnd.randint(1, 27), hours=15), person.user_id,
                                       person.user_principal_name, person.display_name, skus=("SPB",)))
            continue
        states.append(person)
        if change < 0.10:  # leaves during the month
            records.append(Observation(start + timedelta(days=rnd.randint(1, 27), hours=15), person.user_id,
                                       person.user_principal_name, person.display_name, skus=("SPB",), deleted=True))
    operations = [("upsert", {"PartitionKey": tenant_id, "RowKey": f"{E.SNAPSHOT}{month}|0000",
                              "states": json.dumps([E.to_row(s) for s in states])})]
    operations += [("upsert", {"PartitionKey": tenant_id, "RowKey": E.record_key(r, 0), **E.state_fields(r),
                               "observed_at": E.stamp(r.at), "source": "bench"}) for r in records]
    app.storage.table("ledger").submit_transaction(operations)
    return tenant_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4, help="clients closed at once")
    parser.add_argument("--pdf-runs", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with Azurite() as azurite, GraphSimulator() as sim:
        sim.add_tenant(MSP, "Northwind MSP", "northwind-msp.example")
        sim.create_user(MSP, "Billing", MAILBOX)
        app = Prorata(Settings({"AzureWebJobsStorage": azurite.connection_string, "GRAPH_BASE_URL": sim.base_url,
                                "GRAPH_AUTH": "static", "GRAPH_STATIC_TOKEN": "sim-token.{tenant_id}",
                                "MSP_TENANT_ID": MSP, "INVOICE_MAILBOX": MAILBOX, "BRAND_NAME": "Northwind MSP"}),
                      clock=lambda: datetime(2026, 11, 1, 6, 0, tzinfo=timezone.utc))
        rnd = random.Random(7)
        began = time.perf_counter()
        ids = [load_client(app, n, args.users, rnd) for n in range(args.tenants)]
        small = load_client(app, args.tenants, 10, random.Random(1))  # about 20 lines
        print(f"loaded {args.tenants} clients x {args.users} users (+1 of 10 users) into Azurite in "
              f"{time.perf_counter() - began:.1f} s")

        import xhtml2pdf.pisa  # noqa: F401  (the one-off import is not the close's work)
        service = app.close_service()

        async def close_all():
            return await service.close_by_hand(PERIOD, [*ids, small], concurrency=args.concurrency)

        began, began_cpu = time.perf_counter(), time.process_time()
        run_id, outcomes, skipped = asyncio.run(close_all())
        seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
        emailed = [o for o in outcomes if o.kind == "emailed"]
        failed = [o for o in outcomes if o.kind == "failed"]
        rows = [service.invoices.get(t, PERIOD) for t in [*ids, small]]
        lines = [int(r["lines"]) for r in rows if r.get("lines")]
        renders = [float(r["render_seconds"]) for r in rows if r.get("render_seconds") is not None]
        print(f"closed {len(outcomes)} clients in {seconds:.1f} s (CPU {cpu:.1f} s), concurrency {args.concurrency}: "
              f"{len(outcomes) / seconds:.2f} invoices/s; {len(emailed)} emailed, {len(failed)} failed; "
              f"{len(sim.outbox)} messages in the simulator's outbox; lines per invoice "
              f"{min(lines)}-{max(lines)} (median {statistics.median(lines):.0f}); "
              f"PDF render inside the close: median {statistics.median(renders):.3f} s")
        for outcome in failed[:5]:
            print(f"  failed: {outcome.name}: {outcome.reason}")
        summary = service.run_report(run_id)
        print(f"run summary: {summary.get('emailed')} emailed, totals {summary.get('totals')}, {summary.get('seats')} seats")

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from pdf import time_renders  # bench/pdf.py: the same timed renders

        documents = {}
        for row in rows:
            if row.get("number"):
                documents.setdefault(int(row["lines"]), invoice_document(row))
        ok = True
        for target_lines, target in TARGETS.items():
            size = min(documents, key=lambda n: abs(n - target_lines))
            document = documents[size]
            _, times, cpu_times = time_renders(document, service.brand, args.pdf_runs)
            median = statistics.median(times)
            ok &= median <= target
            print(f"PDF of a {size}-line invoice (for the {target_lines}-line target): {median:.3f} s median of "
                  f"{args.pdf_runs} (min {min(times):.3f}; CPU {statistics.median(cpu_times):.3f} s); target {target} s: "
                  f"{'OK' if median <= target else 'MISSED'}")
        print("(wall-clock figures include whatever else runs on the machine; the CPU figures do not)")
        return 0 if ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
