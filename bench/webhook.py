"""Benchmark: Graph change notifications into ./dev host on loopback, as Flex Consumption runs it.

Makes real directory changes in the Graph simulator (one new user each; the simulator runs in
its own process, as Graph is not on our machine) and, for each, posts a genuine change
notification to the webhook of `./dev host` (worker processes as Flex scales: HTTP functions
together, each queue function alone; --single-process for the old one-process host).
Each run first sends the same load to a floor: the same host serving one HTTP function that
answers 202 at once (bench/floor_app), so the ack figures have a ratio taken under the same
machine load. The floor's users are made in tenants of their own that Prorata does not serve
(the same work for the simulator): in Prorata's tenants they would be changes nobody notified,
left for the first deltas of the next run. Prints per run and min / median over runs: ack latency p50 and p99 (and p99 over
the floor's), notification → ledger record p50 / p95, and notifications lost.
Targets at 200/s: ack p99 <= 50 ms; notification → ledger p95 <= 2 s; none lost.
With --sweep (or --find-limit), then steps the rate up (one run each) until a target breaks, and
prints for each rate its ack p99 and notification → ledger p95, then the first rate that broke
a target and which.
Run: .venv/bin/python bench/webhook.py [--rate 200] [--seconds 10] [--runs 3] [--sweep [--step 50]]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.data.tables import TableClient  # noqa: E402

from devtools.azurite import Azurite, free_ports, port_answers  # noqa: E402
from devtools.grants import consent_client  # noqa: E402

KEY = "bench-key"
ACK_P99, FRESH_P95 = 0.050, 2.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def post(connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


class Simulator:
    """The Graph simulator in its own process (./dev graph-sim), driven by its control API."""

    def __init__(self) -> None:
        self.port = free_ports(1)[0]
        self.process = subprocess.Popen([sys.executable, "-m", "devtools.cli", "graph-sim", "--port", str(self.port), "--no-msp"],
                                        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)
        self.base_url = f"http://127.0.0.1:{self.port}/v1.0"
        self._local = threading.local()

    def call(self, method: str, path: str, args: dict | None = None):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection.request(method, "/_sim" + path, body=json.dumps(args or {}).encode(),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        if response.status >= 300:
            raise RuntimeError(f"simulator {method} {path}: {response.status} {payload[:200]!r}")
        return json.loads(payload) if payload else None

    def grant(self, tenant_id: str, *roles: str) -> list[str]:
        """Admin consent in a tenant (devtools.grants calls it as on the in-process simulator)."""
        return self.call("POST", f"/tenants/{tenant_id}/grant", {"roles": list(roles)})["roles"]

    def grant_mailbox(self, tenant_id: str, mailbox: str, *roles: str) -> list[str]:
        return self.call("POST", f"/tenants/{tenant_id}/grant_mailbox", {"mailbox": mailbox, "roles": list(roles)})["roles"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class QueueSweep:
    """Azurite's queue service sweeps the bodies of deleted messages 60 s after its previous sweep
    ended, and stops the whole emulator meanwhile for a time that grows with the square of the
    messages since (measured here: 1,000 messages 0.7 s, 3,000 messages 6 s). Azure's queues
    have no such pause. Each run starts right after a sweep, so that none falls inside a measured
    phase; the bench prints each pause it waited out."""

    INTERVAL = 60.0

    def __init__(self, connection_string: str) -> None:
        from azure.storage.queue import QueueClient

        self.client = QueueClient.from_connection_string(connection_string, "bench-sweep-probe")
        self.client.create_queue()
        self.next = time.monotonic() + self.INTERVAL - 2  # the timer started as the emulator did

    def clear(self, seconds: float) -> str:
        """Waits out the next sweep if it would fall within `seconds`; says what it waited."""
        if self.next - time.monotonic() > seconds:
            return ""
        time.sleep(max(0.0, self.next - time.monotonic() - 1))
        longest, deadline = 0.0, self.next + 4
        while time.monotonic() < deadline:
            began = time.monotonic()
            self.client.get_queue_properties()
            took = time.monotonic() - began
            if took > longest:
                longest = took
            if took > 0.2 and took == longest:
                deadline = time.monotonic() + 0.5  # the sweep is over: a little more, then go
            time.sleep(0.02)
        self.next = time.monotonic() + self.INTERVAL
        return f"waited out Azurite's queue sweep (the emulator stopped {longest * 1000:.0f} ms)"


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not port_answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{process.args[3]} did not start (exit code {process.poll()})")
        time.sleep(0.1)


def start_host(folder: Path, name: str, values: dict, extra: list[str], root: Path = ROOT,
               app: str = "function_app") -> tuple[subprocess.Popen, int]:
    port = free_ports(1)[0]
    settings_file = folder / f"{name}.settings.json"
    settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": {
        **values, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}}))
    process = subprocess.Popen([sys.executable, "-m", "devtools.cli", "host", "--port", str(port), "--no-timers",
                                "--root", str(root), "--app", app, "--settings", str(settings_file), *extra],
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, process)
    return process, port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (waited for or not: the live ones
    are walked), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return own + sum(cpu_seconds(int(child)) for child in children)


def worker_pids(pid: int) -> dict[str, int]:
    """The worker processes of a ./dev host, by worker name (the host itself when single)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return {}
    named = {}
    for child in children:
        args = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"--worker" in args:
            named[args[args.index(b"--worker") + 1].decode()] = int(child)
    return named or {"host": pid}


class CpuMeter:
    """CPU seconds each process of the pipeline spent between two readings."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = processes
        self.start = self.read()

    def read(self) -> dict[str, float]:
        figures = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        times = os.times()
        figures["bench"] = times.user + times.system
        return figures

    def spent(self, seconds: float) -> str:
        end = self.read()
        return ", ".join(f"{name} {(end[name] - self.start[name]) / seconds:.0%}" for name in end)


@dataclass
class Load:
    """One phase's figures."""
    acks: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    sent: dict[str, float] = field(default_factory=dict)  # user id -> when its notification was posted
    seconds: float = 0.0


def send(sim: Simulator, port: int, tenants: list[str], subscriptions: dict, rate: int, seconds: float,
         senders: int, tag: str) -> Load:
    """`rate` notifications a second for `seconds`, each for a user created just before it."""
    load, lock = Load(), threading.Lock()
    total = int(rate * seconds)
    counter = iter(range(total))
    begin = time.monotonic() + 0.3

    def sender() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            delay = begin + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            tenant_id = tenants[i % len(tenants)]
            user_id = sim.call("POST", f"/tenants/{tenant_id}/users",
                               {"display_name": f"Joiner {tag}-{i}", "upn": f"joiner-{tag}-{i}@bench.example",
                                "skus": ["SPB"]})["id"]
            sub = subscriptions[tenant_id]
            item = {"subscriptionId": sub["id"], "clientState": sub["clientState"], "changeType": "updated",
                    "resource": f"Users/{user_id}", "tenantId": tenant_id,
                    "subscriptionExpirationDateTime": sub["expirationDateTime"],
                    "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{user_id}",
                                     "id": user_id, "organizationId": tenant_id}}
            body = json.dumps({"value": [item]}).encode()
            t0 = time.monotonic()
            status, _ = post(connection, "/api/graph/notifications", body, {"Content-Type": "application/json"})
            elapsed = time.monotonic() - t0
            with lock:
                load.acks.append(elapsed)
                load.statuses[status] = load.statuses.get(status, 0) + 1
                load.sent[user_id] = t0

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load.seconds = time.monotonic() - begin
    return load


def freshness(ledger: TableClient, tenants: list[str], load: Load, wait: float) -> dict[str, float]:
    """Seconds from each notification to its ledger record (each record keeps when the delta
    observed the change, so nothing polls Azurite while the load runs)."""
    offset = time.time() - time.monotonic()  # wall and monotonic clocks tied by one offset
    seen: dict[str, float] = {}
    deadline = time.monotonic() + wait
    while True:
        for tenant_id in tenants:
            for row in ledger.query_entities("PartitionKey eq @pk and RowKey ge 'rec|' and RowKey lt 'rec}'",
                                             parameters={"pk": tenant_id}, select=["user_id", "observed_at"]):
                if row["user_id"] in load.sent and row["user_id"] not in seen:
                    observed = datetime.strptime(row["observed_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
                    seen[row["user_id"]] = observed.replace(tzinfo=timezone.utc).timestamp() - offset - load.sent[row["user_id"]]
        if len(seen) == len(load.sent) or time.monotonic() > deadline:
            return seen
        time.sleep(1)


def broken(figures: dict) -> list[str]:
    """The targets a run missed, in words."""
    missed = []
    if figures["p99"] > ACK_P99:
        missed.append(f"ack p99 {figures['p99'] * 1000:.1f} ms > {ACK_P99 * 1000:.0f} ms")
    if not figures["fresh_p95"] <= FRESH_P95:
        missed.append(f"notification to ledger p95 {figures['fresh_p95']:.2f} s > {FRESH_P95:.0f} s")
    if figures["lost"]:
        missed.append(f"{figures['lost']} lost")
    if set(figures["statuses"]) != {202}:
        missed.append(f"answers {figures['statuses']}")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200, help="notifications per second")
    parser.add_argument("--seconds", type=float, default=10, help="length of each run's load")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--senders", type=int, default=16, help="sending threads (keep-alive connections)")
    parser.add_argument("--single-process", action="store_true", help="./dev host --single-process (no workers)")
    parser.add_argument("--ack-only", action="store_true",
                        help="run no queue function (the syncs wait in their queue): the webhook's own figures")
    parser.add_argument("--sweep", "--find-limit", dest="find_limit", action="store_true",
                        help="then raise the rate by --step until a target breaks")
    parser.add_argument("--step", type=int, default=50, help="rate step of --sweep")
    parser.add_argument("--max-rate", type=int, default=2000, help="highest rate --sweep tries")
    args = parser.parse_args()
    mode = ["--single-process"] if args.single_process else []
    queues = ["--no-queues"] if args.ack_only else []

    # Azure's queue and table services are separate services: so are the emulator's here
    with Azurite(split=True) as azurite, tempfile.TemporaryDirectory() as folder:
        sweep = QueueSweep(azurite.connection_string)
        sim = Simulator()
        values = {"FUNCTIONS_WORKER_RUNTIME": "python", "AzureWebJobsStorage": azurite.connection_string,
                  "DEV_HOST_FUNCTION_KEYS": KEY, "GRAPH_BASE_URL": sim.base_url, "GRAPH_AUTH": "static",
                  "GRAPH_STATIC_TOKEN": "sim-token.{tenant_id}",
                  "SUBSCRIPTION_RENEW_SCHEDULE": "0 0 0 1 1 *", "DAILY_SYNC_SCHEDULE": "0 0 0 1 1 *",
                  "MONTH_END_SCHEDULE": "0 0 0 1 1 *", "MONTH_END_CATCHUP_SCHEDULE": "0 0 0 1 1 *"}
        hosts = []
        try:
            host, port = start_host(Path(folder), "prorata", values, mode + queues)
            hosts.append(host)
            floor, floor_port = start_host(Path(folder), "floor", values, mode, ROOT / "bench" / "floor_app")
            hosts.append(floor)
            tenants = [str(uuid.uuid4()) for _ in range(args.tenants)]
            setup = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for n, tenant_id in enumerate(tenants):
                sim.call("POST", "/tenants", {"tenant_id": tenant_id, "name": f"Client {n}", "domain": f"client{n}.example"})
                consent_client(sim, tenant_id)
                sim.call("POST", f"/tenants/{tenant_id}/skus", {"sku_part_number": "SPB", "prepaid": 100_000})
                sim.call("POST", f"/tenants/{tenant_id}/users", {"display_name": "First User",
                                                                 "upn": f"first@client{n}.example", "skus": ["SPB"]})
                body = json.dumps({"plan": {"tenant_id": tenant_id, "name": f"Client {n}", "currency": "USD",
                                            "timezone": "UTC", "per_user_price": "10"},
                                   "billing_contacts": [f"ap@client{n}.example"]}).encode()
                status, answer = post(setup, "/api/tenants", body, {"x-functions-key": KEY, "Content-Type": "application/json"})
                assert status == 201, f"onboarding answered {status}: {answer[:300]!r}"
                sim.call("POST", f"/tenants/{tenant_id}/drop_notifications", {"count": 10**9})  # we post them
            subscriptions = {t: sim.call("GET", f"/subscriptions?tenant_id={t}")[0] for t in tenants}
            floor_tenants = [str(uuid.uuid4()) for _ in range(args.tenants)]
            for n, tenant_id in enumerate(floor_tenants):
                sim.call("POST", "/tenants", {"tenant_id": tenant_id, "name": f"Floor {n}", "domain": f"floor{n}.example"})
                sim.call("POST", f"/tenants/{tenant_id}/skus", {"sku_part_number": "SPB", "prepaid": 100_000})
            floor_subscriptions = {t: {**subscriptions[tenants[0]], "id": str(uuid.uuid4())} for t in floor_tenants}
            ledger = TableClient.from_connection_string(azurite.connection_string, "ledger")
            print(f"host: {'single process' if mode else 'worker processes (HTTP; each queue function)'}; "
                  f"{args.tenants} tenants, {args.senders} senders, {args.seconds:.0f} s per run", flush=True)

            storage = {f"azurite {name}": process.pid for name, process in zip(("blob", "queue", "table"), azurite.processes)}
            processes = {**worker_pids(host.pid), "azurite queue": storage["azurite queue"],
                         "azurite table": storage["azurite table"], "graph-sim": sim.process.pid}

            floor_processes = {f"floor {name}": pid for name, pid in worker_pids(floor.pid).items()}

            def run(rate: int, tag: str) -> dict:
                waited = sweep.clear(2 * args.seconds + 10)
                if waited:
                    print(f"  ({waited})", flush=True)
                floor_meter = CpuMeter(floor_processes)
                floor_load = send(sim, floor_port, floor_tenants, floor_subscriptions, rate, args.seconds, args.senders,
                                  f"f{tag}")
                floor_cpu = floor_meter.spent(floor_load.seconds)
                meter = CpuMeter(processes)
                load = send(sim, port, tenants, subscriptions, rate, args.seconds, args.senders, tag)
                cpu = meter.spent(load.seconds)
                fresh = freshness(ledger, tenants, load, wait=0 if args.ack_only else 120)
                figures = {"rate": len(load.sent) / load.seconds, "p50": percentile(load.acks, 0.5),
                           "p99": percentile(load.acks, 0.99), "floor_p99": percentile(floor_load.acks, 0.99),
                           "fresh_p50": statistics.median(fresh.values()) if fresh else float("nan"),
                           "fresh_p95": percentile(list(fresh.values()), 0.95),
                           "lost": len(load.sent) - len(fresh), "sent": len(load.sent), "statuses": load.statuses}
                figures["ratio"] = figures["p99"] / figures["floor_p99"]
                figures["ok"] = (figures["p99"] <= ACK_P99 and figures["fresh_p95"] <= FRESH_P95
                                 and figures["lost"] == 0 and set(load.statuses) == {202})
                print(f"  {rate}/s run {tag}: held {figures['rate']:.0f}/s, answers {load.statuses}; ack p50 "
                      f"{figures['p50'] * 1000:.1f} ms p99 {figures['p99'] * 1000:.1f} ms (floor p99 "
                      f"{figures['floor_p99'] * 1000:.1f} ms, {figures['ratio']:.2f}x); notification to ledger p50 "
                      f"{figures['fresh_p50']:.2f} s p95 {figures['fresh_p95']:.2f} s; lost {figures['lost']} of "
                      f"{figures['sent']}", flush=True)
                print(f"    CPU while sending (share of one core): {cpu}; floor: {floor_cpu}", flush=True)
                return figures

            results = [run(args.rate, str(n)) for n in range(1, args.runs + 1)]

            def spread(key: str, scale: float = 1.0, unit: str = "") -> str:
                values = [r[key] * scale for r in results]
                return f"min {min(values):.2f}{unit} median {statistics.median(values):.2f}{unit}"

            print(f"at {args.rate}/s over {len(results)} runs:")
            print(f"  ack p99: {spread('p99', 1000, ' ms')} (target <= 50 ms); over the floor's p99: {spread('ratio', 1, 'x')}")
            print(f"  notification to ledger p95: {spread('fresh_p95', 1, ' s')} (target <= 2 s)")
            print(f"  lost: {sum(r['lost'] for r in results)} of {sum(r['sent'] for r in results)} (target 0)")
            if args.find_limit:
                # the base rate holds if its median run does (as the summary above); each step is one run
                swept = [(args.rate, r) for r in results]
                base = sorted(results, key=lambda r: (r["ok"], -r["p99"], -r["fresh_p95"]))[len(results) // 2]
                rate = args.rate
                while (base["ok"] if rate == args.rate else swept[-1][1]["ok"]) and rate + args.step <= args.max_rate:
                    rate += args.step
                    swept.append((rate, run(rate, f"{rate}")))
                print("sweep (rate: ack p99, notification to ledger p95, lost, answers):")
                for at, r in swept:
                    print(f"  {at}/s: {r['p99'] * 1000:.1f} ms, {r['fresh_p95']:.2f} s, lost {r['lost']}, "
                          f"{r['statuses']}{'' if r['ok'] else '  <- breaks ' + ', '.join(broken(r))}")
                held = [at for at, r in swept if r["ok"] and at < rate]
                bad = base if rate == args.rate and not base["ok"] else \
                    next((r for at, r in swept if at == rate and not r["ok"]), None)
                breaking = f"{rate}/s ({'; '.join(broken(bad))})" if bad else f"none up to {rate}/s"
                print(f"first rate breaking a target: {breaking}; highest rate holding every target: "
                      + (f"{max(held)}/s" if held else "none"))
        finally:
            for process in hosts:
                process.terminate()
                process.wait(20)
            sim.stop()


if __name__ == "__main__":
    main()
