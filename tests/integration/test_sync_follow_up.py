"""A tenant-sync invocation runs one delta at most: a trigger that arrives during it becomes one
follow-up message, and the users it named are checked after the follow-up's delta, not by a
re-check message of their own (real sync gate on Azurite; tenants, ledger, Graph and queue in
memory)."""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timezone

from shared.billing.plan import parse_plan
from shared.graph.gateway import DeltaResult, DirectoryUser
from shared.messages import SyncRequest
from shared.services.sync import FOLLOW_UP
from shared.services.tenant_sync import TenantSync
from shared.settings import Settings
from shared.storage import Storage
from shared.storage.sync_gate import SyncGate
from shared.tenants import Tenant
from tests.unit.fakes import FakeLedger, FakeQueues, FakeTenants


class Directory:
    """A Graph whose delta shows the users created so far; `during` runs inside the first delta."""

    def __init__(self) -> None:
        self.users: list[str] = []
        self.shown = 0
        self.deltas = 0
        self.during: list = []

    async def delta(self, tenant_id: str, delta_link: str | None) -> DeltaResult:
        self.deltas += 1
        new, self.shown = self.users[self.shown:], len(self.users)
        while self.during:
            self.during.pop(0)()
        return DeltaResult([DirectoryUser(u, {"displayName": u, "userPrincipalName": f"{u}@x.example"})
                            for u in new], f"link-{self.deltas}")

    async def subscribed_skus(self, tenant_id: str) -> list:
        return []


def test_a_trigger_during_a_delta_becomes_one_follow_up_whose_delta_shows_its_user(azurite):
    storage = Storage(Settings({"AzureWebJobsStorage": azurite.connection_string}))
    tenant_id = str(uuid.uuid4())
    plan = parse_plan({"tenant_id": tenant_id, "name": "Fabrikam", "currency": "USD", "timezone": "UTC",
                       "per_user_price": "10.00"})
    tenants, ledger, queues, graph = FakeTenants([Tenant(tenant_id, plan, ("ap@fabrikam.example",))]), FakeLedger(), \
        FakeQueues(), Directory()
    clock = lambda: datetime.now(timezone.utc)  # noqa: E731 - the gate compares real instants
    syncing = TenantSync(tenants=tenants, subscriptions=None, ledger=ledger, gate=SyncGate(storage),
                         graph=lambda: graph, manager=lambda: None, clock=clock,
                         pool=lambda: None, queues=queues, recheck_delays=(30, 120, 600))

    def notify(user_id: str) -> dict:
        graph.users.append(user_id)
        return SyncRequest(tenant_id, "notification", received_at=clock().timestamp(), user_ids=(user_id,)).to_json()

    first = notify("ann")

    def second_notification_while_the_delta_runs() -> None:
        message = notify("bob")
        worker = threading.Thread(target=lambda: syncing.run_message(message))
        worker.start()
        worker.join()

    graph.during.append(second_notification_while_the_delta_runs)
    reports = syncing.run_message(first)
    assert [r.seen for r in reports] == [frozenset({"ann"})]  # one delta in this invocation
    assert [SyncRequest.from_json(m).reason for _, m in queues.sent] == [FOLLOW_UP]

    follow_up = queues.sent.pop()[1]
    assert [r.seen for r in syncing.run_message(follow_up)] == [frozenset({"bob"})]
    assert queues.sent == []  # bob showed in the follow-up's delta: no re-check, no further follow-up
    assert set(ledger.current_states(tenant_id)) == {"ann", "bob"}
