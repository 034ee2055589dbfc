"""Benchmark: Graph change notifications into ./dev host on loopback.

Makes real directory changes in the Graph simulator (one new user each) and, for each, posts a
genuine change notification to the webhook of `./dev host` (a separate process, as in use), at
500 per second for 20 seconds. Prints the acknowledgement latency (p50, p99), the time from
notification to ledger record (p95), and checks that no notification is lost.
Targets: ack p99 at most 50 ms; freshness p95 at most 2 s.
With --ack-only, the host runs no queue function (the syncs wait in the queue), which shows
the webhook's own acknowledgement figures apart from the load of the syncs on the same 2 cores.
Run: .venv/bin/python bench/webhook.py [--rate 500] [--seconds 20] [--tenants 20] [--ack-only]
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
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.azurite import Azurite, free_ports, port_answers  # noqa: E402
from devtools.grants import consent_client  # noqa: E402
from devtools.graph_sim import GraphSimulator  # noqa: E402
from shared.app import Prorata  # noqa: E402
from shared.settings import Settings  # noqa: E402

KEY = "bench-key"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def post(connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict) -> int:
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    return response.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=500, help="notifications per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--senders", type=int, default=16, help="sending threads (keep-alive connections)")
    parser.add_argument("--ack-only", action="store_true", help="no queue functions: acknowledgement figures only")
    args = parser.parse_args()

    with Azurite() as azurite, GraphSimulator() as sim, tempfile.TemporaryDirectory() as folder:
        port = free_ports(1)[0]
        values = {"FUNCTIONS_WORKER_RUNTIME": "python", "AzureWebJobsStorage": azurite.connection_string,
                  "DEV_HOST_FUNCTION_KEYS": KEY, "GRAPH_BASE_URL": sim.base_url, "GRAPH_AUTH": "static",
                  "GRAPH_STATIC_TOKEN": "sim-token.{tenant_id}", "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                  "SUBSCRIPTION_RENEW_SCHEDULE": "0 0 0 1 1 *", "DAILY_SYNC_SCHEDULE": "0 0 0 1 1 *",
                  "MONTH_END_SCHEDULE": "0 0 0 1 1 *",
                  "MONTH_END_CATCHUP_SCHEDULE": "0 0 0 1 1 *"}
        settings_file = Path(folder) / "local.settings.json"
        settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        host = subprocess.Popen([sys.executable, "-m", "devtools.cli", "host", "--port", str(port), "--no-timers",
                                 "--settings", str(settings_file), *(["--no-queues"] if args.ack_only else [])], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not port_answers(port) and time.monotonic() < deadline:
                time.sleep(0.1)
            app = Prorata(Settings(values))
            tenants = [str(uuid.uuid4()) for _ in range(args.tenants)]
            setup = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for n, tenant_id in enumerate(tenants):
                sim.add_tenant(tenant_id, f"Client {n}", f"client{n}.example")
                consent_client(sim, tenant_id)
                sim.add_sku(tenant_id, "SPB", prepaid=100_000)
                sim.create_user(tenant_id, "First User", f"first@client{n}.example", skus=["SPB"])
                body = json.dumps({"plan": {"tenant_id": tenant_id, "name": f"Client {n}", "currency": "USD",
                                            "timezone": "UTC", "per_user_price": "10"},
                                   "billing_contacts": [f"ap@client{n}.example"]}).encode()
                status = post(setup, "/api/tenants", body, {"x-functions-key": KEY, "Content-Type": "application/json"})
                assert status == 201, f"onboarding answered {status}"
                sim.drop_next_notifications(tenant_id, 10**9)  # this benchmark posts the notifications itself
            subscriptions = {t: sim.subscriptions(t)[0] for t in tenants}

            total = int(args.rate * args.seconds)
            sent: dict[str, tuple[str, float]] = {}
            acks: list[float] = []
            statuses: dict[int, int] = {}
            lock = threading.Lock()
            begin = time.monotonic() + 0.5
            counter = iter(range(total))

            def sender() -> None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                while True:
                    with lock:
                        i = next(counter, None)
                    if i is None:
                        return
                    due = begin + i / args.rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    tenant_id = tenants[i % len(tenants)]
                    user_id = sim.create_user(tenant_id, f"Joiner {i}", f"joiner{i}@bench.example", skus=["SPB"])
                    sub = subscriptions[tenant_id]
                    item = {"subscriptionId": sub["id"], "clientState": sub["clientState"], "changeType": "updated",
                            "resource": f"Users/{user_id}", "tenantId": tenant_id,
                            "subscriptionExpirationDateTime": sub["expirationDateTime"],
                            "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{user_id}",
                                             "id": user_id, "organizationId": tenant_id}}
                    body = json.dumps({"value": [item]}).encode()
                    t0 = time.monotonic()
                    status = post(connection, "/api/graph/notifications", body, {"Content-Type": "application/json"})
                    elapsed = time.monotonic() - t0
                    with lock:
                        acks.append(elapsed)
                        statuses[status] = statuses.get(status, 0) + 1
                        sent[user_id] = (tenant_id, t0)

            threads = [threading.Thread(target=sender) for _ in range(args.senders)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            sending = time.monotonic() - begin
            # Freshness from the ledger itself: each record keeps when the delta observed the change,
            # so nothing polls Azurite while the load runs. (Wall clock and monotonic clock are tied
            # here by one offset taken now.)
            offset = time.time() - time.monotonic()
            seen: dict[str, float] = {}
            deadline = time.monotonic() + (0 if args.ack_only else 120)
            while True:
                for tenant_id in tenants:
                    for row in app.storage.table("ledger").query_entities(
                            "PartitionKey eq @pk and RowKey ge 'rec|' and RowKey lt 'rec}'",
                            parameters={"pk": tenant_id}, select=["user_id", "observed_at"]):
                        observed = datetime.strptime(row["observed_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
                        seen.setdefault(row["user_id"], observed.replace(tzinfo=timezone.utc).timestamp() - offset)
                if all(u in seen for u in sent) or time.monotonic() > deadline:
                    break
                time.sleep(1)
            lost = [u for u in sent if u not in seen]
            fresh = [seen[u] - sent[u][1] for u in sent if u in seen]
            print(f"sent {len(sent)} notifications in {sending:.1f} s ({len(sent) / sending:.0f}/s), answers {statuses}")
            print(f"ack latency: p50 {percentile(acks, 0.5) * 1000:.1f} ms, p99 {percentile(acks, 0.99) * 1000:.1f} ms "
                  f"(target p99 <= 50 ms)")
            if fresh:
                print(f"notification to ledger: p50 {statistics.median(fresh):.2f} s, p95 {percentile(fresh, 0.95):.2f} s "
                      f"(target p95 <= 2 s); from each record's observed time")
            if args.ack_only:
                stored = app.storage.queue("tenant-sync").get_queue_properties().approximate_message_count
                print(f"queue messages stored for the syncs: {stored} (group commit: one per few ms)")
            else:
                print(f"lost: {len(lost)} of {len(sent)}" + (" (none)" if not lost else ""))
        finally:
            host.terminate()
            host.wait(10)


if __name__ == "__main__":
    main()
