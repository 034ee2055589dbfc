"""The local stack for integration tests: Azurite (from conftest), the Graph simulator and the
development host serving the real function_app.py, wired as in local.settings.json.example."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Any, Callable

from devtools.azurite import free_ports
from devtools.grants import consent_client, consent_msp
from devtools.graph_sim import GraphSimulator
from devtools.host import DevHost
from shared.app import CLOSE_QUEUE, SYNC_QUEUE, Prorata
from shared.settings import Settings

FUNCTION_KEY = "test-function-key"
MSP_TENANT = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"


def stack_settings(connection_string: str, sim: GraphSimulator, host_port: int, **extra: str) -> dict[str, str]:
    return {"AzureWebJobsStorage": connection_string, "FUNCTIONS_WORKER_RUNTIME": "python",
            "DEV_HOST_FUNCTION_KEYS": FUNCTION_KEY, "GRAPH_BASE_URL": sim.base_url, "GRAPH_AUTH": "static",
            "GRAPH_STATIC_TOKEN": "sim-token.{tenant_id}", "PUBLIC_BASE_URL": f"http://127.0.0.1:{host_port}",
            "MSP_TENANT_ID": MSP_TENANT, "INVOICE_MAILBOX": "billing@northwind-msp.example",
            "MONTH_END_SCHEDULE": "0 0 6 1 * *", "MONTH_END_CATCHUP_SCHEDULE": "0 0 0 1 1 *",
            "SUBSCRIPTION_RENEW_SCHEDULE": "0 0 0 1 1 *",
            "DAILY_SYNC_SCHEDULE": "0 0 0 1 1 *", "BRAND_NAME": "Northwind MSP",
            "SYNC_RECHECK_SECONDS": "1,2", **extra}


@contextmanager
def running_stack(connection_string: str, **extra: str):
    """Yields (simulator, host, app): app is a Prorata wired to the same settings, for asserting."""
    with GraphSimulator() as sim:
        port = free_ports(1)[0]
        settings = stack_settings(connection_string, sim, port, **extra)
        sim.add_tenant(MSP_TENANT, "Northwind MSP", "northwind-msp.example")
        sim.create_user(MSP_TENANT, "Billing", "billing@northwind-msp.example")
        consent_msp(sim, MSP_TENANT, "billing@northwind-msp.example")  # as docs/deploy.md grants
        host = DevHost(settings=settings, port=port).start()
        app = Prorata(Settings(settings))
        try:
            yield sim, host, app
        finally:
            host.stop()
            # Work still waiting (a delayed catch-up delta, a retry) would otherwise run in the next
            # module's host, against a simulator that knows none of these tenants.
            for queue in (SYNC_QUEUE, CLOSE_QUEUE):
                app.storage.queue(queue).clear_messages()


@contextmanager
def background_loop():
    """An event loop running in a thread of its own, for a test module's own Graph calls (a Graph
    client stays on the loop it was first used on)."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.call_soon_threadsafe(running.stop)
        thread.join(5)


def call(host: DevHost, method: str, path: str, body: Any = None, *, key: str | None = FUNCTION_KEY,
         raw: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(host.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    if key:
        request.add_header("x-functions-key", key)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def add_client_tenant(sim: GraphSimulator, tenant_id: str, name: str, domain: str) -> None:
    """A client tenant whose admin consented as docs/deploy.md asks (and nothing more)."""
    sim.add_tenant(tenant_id, name, domain)
    consent_client(sim, tenant_id)
