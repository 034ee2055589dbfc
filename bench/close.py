"""Benchmark: the month-end close of many clients, end to end, against Azurite and the Graph
simulator (in its own process): compute from the ledger, number, render the PDF, archive it,
draft and send the email.

The ledger is loaded with a compact history per client (one opening snapshot of the month plus
a few joiners and leavers during it), written straight into the ledger's table layout so that
loading is not what is measured. Every user holds the per-user fee and one SKU (SPB), so a client
of U users has about 2U invoice lines (50 users: about 100 lines).

Each run closes fresh clients and then, as its floor, renders the same invoices' PDFs alone in
the same PDF worker pool at the same concurrency. Prints per run and min / median over runs:
invoices/s of the close and close / floor (goal >= 0.8), and the CPU per invoice of the close's
process, the PDF workers, Azurite and the Graph simulator (all on the same cores). First, one
client at a time: the milliseconds per invoice spent outside the PDF (goal <= 100) and storage
requests per invoice (goal <= 12, the run's own requests included: its record, summary and
accounting files).
Run: .venv/bin/python bench/close.py [--runs 3] [--tenants 24] [--users 50] [--concurrency 4]
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from azure.core.pipeline.transport import RequestsTransport  # noqa: E402

from devtools.azurite import Azurite  # noqa: E402
from devtools.grants import consent_msp  # noqa: E402
from shared.app import Prorata  # noqa: E402
from shared.billing import Observation, Period, parse_plan  # noqa: E402
from shared.invoicing.pdf_pool import cores, render_pdf_in_pool  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.storage import ledger_entities as E  # noqa: E402
from shared.storage.invoices import invoice_document  # noqa: E402
from shared.tenants import Tenant  # noqa: E402
from webhook import Simulator, cpu_seconds  # noqa: E402  (bench/webhook.py: the simulator in its own process)

MSP = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"
MAILBOX = "billing@northwind-msp.example"
PERIOD = Period(2026, 10)
ZONES = ["America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Sydney", "Pacific/Kiritimati"]


def load_client(app: Prorata, index: int, users: int, rnd: random.Random) -> str:
    """A client with `users` users: their state at the month's start in one snapshot row, and
    about a tenth of them joining or leaving during the month as records."""
    tenant_id = f"00000000-0000-4000-8000-{index:012d}"
    name = f"Client {index:03d} Ltd"
    plan = parse_plan({"tenant_id": tenant_id, "name": name, "currency": "USD", "timezone": ZONES[index % len(ZONES)],
                       "per_user_price": "45.00", "sku_prices": {"SPB": "22.00"}, "tax_rate": "0.0825"})
    app.tenants.save(Tenant(tenant_id=tenant_id, plan=plan, billing_contacts=(f"accounts@client{index}.example",),
                            address=("1 Main Street", "Springfield"), onboarded_at=datetime(2026, 9, 1, tzinfo=timezone.utc)))
    # The ledger reads a month from the snapshot of the UTC month in which its first local day ends.
    month = E.month_key(PERIOD.day_ends(plan.timezone)[0])
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


def pool_cpu() -> float:
    """CPU seconds of the PDF workers (this process's multiprocessing children) so far."""
    import os
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    workers = [int(c) for c in children if b"multiprocessing" in Path(f"/proc/{c}/cmdline").read_bytes()]
    return sum(cpu_seconds(worker) for worker in workers)


class NoReconciliation:
    """Stands in for the license reconciliation that follows each run (its own benchmark's work)."""

    async def reconcile_all(self) -> list:
        return []

    def store_findings_csv(self, period: str, run_id: str, results: list) -> str:
        return f"{period}/{run_id}/licenses.csv (not written by this benchmark)"


class RequestCounter:
    """Storage requests made by this process (every SDK call goes through RequestsTransport.send)."""

    def __init__(self) -> None:
        self.count = 0
        original = RequestsTransport.send
        counter = self

        def send(transport, request, **kwargs):
            counter.count += 1
            return original(transport, request, **kwargs)

        RequestsTransport.send = send


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=24, help="clients closed per run")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4, help="clients closed at once")
    parser.add_argument("--single", type=int, default=6, help="clients closed one at a time first (per-invoice figures)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    requests = RequestCounter()

    with Azurite() as azurite:
        sim = Simulator()
        try:
            sim.call("POST", "/tenants", {"tenant_id": MSP, "name": "Northwind MSP", "domain": "northwind-msp.example"})
            sim.call("POST", f"/tenants/{MSP}/users", {"display_name": "Billing", "upn": MAILBOX})
            consent_msp(sim, MSP, MAILBOX)
            app = Prorata(Settings({"AzureWebJobsStorage": azurite.connection_string, "GRAPH_BASE_URL": sim.base_url,
                                    "GRAPH_AUTH": "static", "GRAPH_STATIC_TOKEN": "sim-token.{tenant_id}",
                                    "MSP_TENANT_ID": MSP, "INVOICE_MAILBOX": MAILBOX, "BRAND_NAME": "Northwind MSP"}),
                          clock=lambda: datetime(2026, 11, 1, 6, 0, tzinfo=timezone.utc))
            service = app.close_service()
            service.reconciler = NoReconciliation()  # each run's license check is the MSP's report: not timed here
            storage_pid = azurite.process.pid if azurite.process is not None else 0
            rnd = random.Random(7)
            next_index = iter(range(10**6))

            def load(count: int) -> list[str]:
                return [load_client(app, next(next_index), args.users, rnd) for _ in range(count)]

            async def close(ids: list[str], concurrency: int):
                began = time.perf_counter()
                _, outcomes, _ = await service.close_by_hand(PERIOD, ids, concurrency=concurrency)
                return outcomes, time.perf_counter() - began

            async def floor(ids: list[str], concurrency: int) -> float:
                documents = [invoice_document(service.invoices.get(t, PERIOD)) for t in ids]
                gate = asyncio.Semaphore(concurrency)

                async def one(document):
                    async with gate:
                        await render_pdf_in_pool(document, service.brand)

                began = time.perf_counter()
                await asyncio.gather(*(one(d) for d in documents))
                return time.perf_counter() - began

            async def bench() -> bool:
                warm = load(2)  # the pool's workers, the Graph clients, the tables: started before timing
                await close(warm, 2)
                await floor(warm, 2)
                ids = load(args.single)
                before = requests.count
                outcomes, seconds = await close(ids, 1)
                count = requests.count - before
                renders = [float(service.invoices.get(t, PERIOD)["render_seconds"]) for t in ids]
                outside = (seconds - sum(renders)) / len(ids)
                lines = [o.lines for o in outcomes]
                print(f"one client at a time ({len(ids)} clients, {statistics.median(lines):.0f} lines each): "
                      f"{outside * 1000:.0f} ms per invoice outside the PDF (goal <= 100), {count / len(ids):.1f} "
                      f"storage requests per invoice (goal <= 12); PDF {statistics.median(renders):.3f} s", flush=True)
                ratios, rates, ok = [], [], outside <= 0.1 and count / len(ids) <= 12
                for run in range(1, args.runs + 1):
                    ids = load(args.tenants)
                    began_cpu, began_pool = time.process_time(), pool_cpu()
                    began_storage, began_graph = cpu_seconds(storage_pid), cpu_seconds(sim.process.pid)
                    outcomes, seconds = await close(ids, args.concurrency)
                    cpu = time.process_time() - began_cpu
                    pdf_cpu = pool_cpu() - began_pool
                    storage_cpu = cpu_seconds(storage_pid) - began_storage
                    graph_cpu = cpu_seconds(sim.process.pid) - began_graph
                    failed = [o for o in outcomes if o.kind == "failed"]
                    began_floor = pool_cpu()
                    floor_seconds = await floor(ids, args.concurrency)
                    floor_pdf_cpu = pool_cpu() - began_floor
                    rate, floor_rate = len(ids) / seconds, len(ids) / floor_seconds
                    rates.append(rate)
                    ratios.append(rate / floor_rate)
                    print(f"run {run}: closed {len(ids)} clients in {seconds:.1f} s: {rate:.2f} invoices/s "
                          f"(CPU per invoice: {cpu / len(ids):.3f} s here, {pdf_cpu / len(ids):.3f} s in the PDF workers, "
                          f"{storage_cpu / len(ids):.3f} s in Azurite, {graph_cpu / len(ids):.3f} s in the Graph simulator); "
                          f"{len(failed)} failed; the same PDFs alone in the pool: "
                          f"{floor_rate:.2f}/s ({floor_pdf_cpu / len(ids):.3f} s CPU per PDF); "
                          f"close / floor = {ratios[-1]:.2f}", flush=True)
                    for outcome in failed[:3]:
                        print(f"  failed: {outcome.name}: {outcome.reason}")
                    ok &= not failed
                print(f"close, {args.concurrency} clients at once, PDF pool of {cores()} workers: invoices/s min "
                      f"{min(rates):.2f} median {statistics.median(rates):.2f}; close / pool floor min {min(ratios):.2f} "
                      f"median {statistics.median(ratios):.2f} (goal >= 0.8)")
                return ok and statistics.median(ratios) >= 0.8

            ok = asyncio.run(bench())
        finally:
            sim.stop()
    print("(wall-clock figures include whatever else runs on the machine)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
