"""Real-time seat sync through real HTTP: the Graph simulator notifies ./dev host's webhook, the
queue function runs msgraph-sdk's delta against the simulator, and the ledger in Azurite records."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from shared.app import get_app
from tests.integration.stack import add_client_tenant, call, running_stack, wait_for

CONTOSO = "8f2c6a1e-4b7d-4c1a-9e55-2d0f3b7a9c10"
FABRIKAM = "3a9d1b44-7c2e-4f1d-b6a8-5e0c9f2d7b31"


def onboarding(tenant_id, name, **plan):
    return {"plan": {"tenant_id": tenant_id, "name": name, "currency": "USD", "timezone": "America/New_York",
                     "per_user_price": "45.00", "sku_prices": {"SPB": "22.00"}, **plan},
            "billing_contacts": [f"accounts@{name.split()[0].lower()}.example"],
            "address": ["1 Main Street", "Springfield"]}


@pytest.fixture(scope="module")
def stack(azurite):
    with running_stack(azurite.connection_string) as (sim, host, app):
        for tenant_id, name in ((CONTOSO, "Contoso Ltd"), (FABRIKAM, "Fabrikam Inc")):
            add_client_tenant(sim, tenant_id, name, f"{name.split()[0].lower()}.example")
            sim.add_sku(tenant_id, "SPB", prepaid=25)
            sim.add_sku(tenant_id, "E3", prepaid=5)
        sim.create_user(CONTOSO, "Ann Lee", "ann@contoso.example", skus=["SPB"])
        sim.create_user(CONTOSO, "Svc Backup", "svc-backup@contoso.example")
        sim.create_user(FABRIKAM, "Femi Ade", "femi@fabrikam.example", skus=["E3"])
        for tenant_id, name in ((CONTOSO, "Contoso Ltd"), (FABRIKAM, "Fabrikam Inc")):
            status, _, body = call(host, "POST", "/api/tenants", onboarding(tenant_id, name))
            assert status == 201, body
        yield sim, host, app


def state(app, tenant_id, user_id):
    return app.ledger.current_states(tenant_id).get(user_id)


def records(app, tenant_id):
    table = app.storage.table("ledger")
    return list(table.query_entities("PartitionKey eq @pk and RowKey ge 'rec|' and RowKey lt 'rec}'",
                                     parameters={"pk": tenant_id}))


def test_onboarding_records_the_baseline_and_subscribes(stack):
    sim, host, app = stack
    users = {s.display_name: s for s in app.ledger.current_states(CONTOSO).values()}
    assert set(users) == {"Ann Lee", "Svc Backup"} and users["Ann Lee"].skus == ("SPB",)
    assert [s["resource"] for s in sim.subscriptions(CONTOSO)] == ["/users"]
    status, _, body = call(host, "GET", "/api/tenants")
    assert status == 200 and {t["name"] for t in json.loads(body)} >= {"Contoso Ltd", "Fabrikam Inc"}


def test_a_new_joiner_is_notified_and_recorded_from_their_creation_time(stack):
    sim, host, app = stack
    user_id = sim.create_user(CONTOSO, "Bo Chen", "bo@contoso.example", skus=["SPB"])
    joined = wait_for(lambda: state(app, CONTOSO, user_id), what="Bo Chen in the ledger")
    assert joined.display_name == "Bo Chen" and joined.skus == ("SPB",)
    created = next(u for u in sim.users(CONTOSO) if u["id"] == user_id)["createdDateTime"]
    assert joined.at.isoformat().startswith(created[:19])


LIFECYCLE = [
    ("assign", lambda sim, u: sim.assign_license(CONTOSO, u, "E3"), lambda s: s.skus == ("E3", "SPB")),
    ("remove", lambda sim, u: sim.remove_license(CONTOSO, u, "SPB"), lambda s: s.skus == ("E3",)),
    ("disable", lambda sim, u: sim.disable_user(CONTOSO, u), lambda s: not s.account_enabled),
    ("enable", lambda sim, u: sim.enable_user(CONTOSO, u), lambda s: s.account_enabled),
    ("soft delete", lambda sim, u: sim.soft_delete_user(CONTOSO, u), lambda s: s.deleted),
    ("restore", lambda sim, u: sim.restore_user(CONTOSO, u), lambda s: not s.deleted and s.skus == ("E3",)),
    ("hard delete", lambda sim, u: sim.hard_delete_user(CONTOSO, u), lambda s: s.deleted),
]


def test_each_directory_change_reaches_the_ledger_in_turn(stack):
    sim, host, app = stack
    user_id = sim.create_user(CONTOSO, "Cy Lifecycle", "cy@contoso.example", skus=["SPB"])
    wait_for(lambda: state(app, CONTOSO, user_id), what="Cy in the ledger")
    for name, change, expect in LIFECYCLE:
        change(sim, user_id)
        wait_for(lambda: expect(state(app, CONTOSO, user_id)), what=f"the {name} in the ledger")
    kinds = [(r["enabled"], r["deleted"], r["skus"]) for r in records(app, CONTOSO) if r["user_id"] == user_id]
    assert len(kinds) == len(LIFECYCLE) + 1  # one record per real change, none doubled


def test_duplicate_replayed_and_out_of_order_notifications_record_each_change_once(stack):
    sim, host, app = stack
    user_id = sim.create_user(CONTOSO, "Di Dupe", "di@contoso.example")
    wait_for(lambda: state(app, CONTOSO, user_id), what="Di in the ledger")
    sim.wait_deliveries()
    before = len(records(app, CONTOSO))
    subscription = sim.subscriptions(CONTOSO)[0]
    item = {"subscriptionId": subscription["id"], "clientState": subscription["clientState"], "changeType": "updated",
            "resource": f"Users/{user_id}", "tenantId": CONTOSO,
            "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{user_id}", "id": user_id,
                             "organizationId": CONTOSO}}
    for _ in range(3):  # replays, and an old one arriving after the newer ones
        status, _, _ = call(host, "POST", "/api/graph/notifications", {"value": [item, item]}, key=None)
        assert status == 202
    assert host.wait_idle(15)
    assert len(records(app, CONTOSO)) == before


def test_a_forged_client_state_is_dropped_and_never_applied(stack, caplog):
    sim, host, app = stack
    subscription = sim.subscriptions(CONTOSO)[0]
    deltas_before = sum(1 for r in sim.requests if "delta" in r["path"])
    forged = {"subscriptionId": subscription["id"], "clientState": "guess", "changeType": "updated",
              "resource": "Users/x", "tenantId": CONTOSO, "resourceData": {"id": "x"}}
    status, _, body = call(host, "POST", "/api/graph/notifications", {"value": [forged]}, key=None)
    assert status == 202 and body == b""
    assert host.wait_idle(10)
    assert sum(1 for r in sim.requests if "delta" in r["path"]) == deltas_before
    assert any("wrong clientState" in r.getMessage() for r in caplog.records)


def test_a_notification_naming_another_tenants_subscription_is_dropped(stack, caplog):
    sim, host, app = stack
    contoso_sub = sim.subscriptions(CONTOSO)[0]
    crossed = {"subscriptionId": contoso_sub["id"], "clientState": contoso_sub["clientState"],
               "changeType": "updated", "resource": "Users/x", "tenantId": FABRIKAM, "resourceData": {"id": "x"}}
    status, _, _ = call(host, "POST", "/api/graph/notifications", {"value": [crossed]}, key=None)
    assert status == 202
    assert any("belongs to another tenant" in r.getMessage() for r in caplog.records)


def test_the_validation_handshake_echoes_the_decoded_token_as_plain_text(stack):
    sim, host, app = stack
    status, headers, body = call(host, "POST", "/api/graph/notifications?validationToken=Validation%3A%20%3Cb%3Ehi%3C%2Fb%3E",
                                 raw=b"", key=None)
    assert status == 200 and body == b"Validation: <b>hi</b>"
    assert headers["Content-Type"].startswith("text/plain")


def test_a_body_that_is_not_a_notification_collection_is_refused_with_400_and_a_huge_one_with_413(stack):
    sim, host, app = stack
    assert call(host, "POST", "/api/graph/notifications", raw=b"hello", key=None)[0] == 400
    assert call(host, "POST", "/api/graph/notifications", {"items": []}, key=None)[0] == 400
    huge = json.dumps({"value": [{"pad": "x" * 2_000_000}]}).encode()
    assert call(host, "POST", "/api/graph/notifications", raw=huge, key=None)[0] == 413


def test_a_429_storm_delays_the_sync_but_loses_nothing(stack):
    sim, host, app = stack
    sim.throttle(6, status=429, retry_after=1, path_prefix="/users/delta")
    user_id = sim.create_user(FABRIKAM, "Ge Storm", "ge@fabrikam.example", skus=["SPB"])
    wait_for(lambda: state(app, FABRIKAM, user_id), timeout=60, what="Ge in the ledger after the storm")


def test_a_stale_delta_link_falls_back_to_a_full_sync(stack):
    sim, host, app = stack
    sim.invalidate_delta_tokens(FABRIKAM)
    gone = next(u["id"] for u in sim.users(FABRIKAM) if u["displayName"] == "Femi Ade")
    sim.drop_next_notifications(FABRIKAM, 1)
    sim.soft_delete_user(FABRIKAM, gone)   # missed: its notification is dropped
    user_id = sim.create_user(FABRIKAM, "Ha Fresh", "ha@fabrikam.example")
    wait_for(lambda: state(app, FABRIKAM, user_id), timeout=30, what="Ha in the ledger")
    wait_for(lambda: state(app, FABRIKAM, gone).deleted, what="Femi deleted by the full sync")


def test_an_expired_subscription_is_created_again_by_the_renewal_timer(stack):
    sim, host, app = stack
    old = sim.subscriptions(FABRIKAM)[0]["id"]
    sim.advance(timedelta(days=5))  # past the 3-day lifetime: Graph forgets it
    get_app().clock = sim.now  # the host runs in this process: its clock moves with the simulator's
    invocation = host.trigger_timer("renew_subscriptions")
    assert invocation.error is None
    fresh = [s["id"] for s in sim.subscriptions(FABRIKAM)]
    assert fresh and old not in fresh
    assert app.subscriptions.for_tenant(FABRIKAM)[0].subscription_id in fresh


def test_offboarding_deletes_the_subscription_and_keeps_the_ledger(stack):
    sim, host, app = stack
    tenant_id = str(uuid.uuid4())
    add_client_tenant(sim, tenant_id, "Litware", "litware.example")
    sim.create_user(tenant_id, "Io Leaving", "io@litware.example")
    assert call(host, "POST", "/api/tenants", onboarding(tenant_id, "Litware Co"))[0] == 201
    assert call(host, "DELETE", f"/api/tenants/{tenant_id}")[0] == 200
    assert sim.subscriptions(tenant_id) == []
    assert len(app.ledger.current_states(tenant_id)) == 1
    assert app.tenants.get(tenant_id).status == "offboarded"
    assert call(host, "DELETE", f"/api/tenants/{tenant_id}", key=None)[0] == 401


def test_reauthorization_required_is_answered_by_reauthorizing_then_a_delta(stack):
    sim, host, app = stack
    subscription = sim.subscriptions(CONTOSO)[0]
    sim.drop_next_notifications(CONTOSO, 1)
    user_id = sim.create_user(CONTOSO, "Jo Paused", "jo@contoso.example")  # changed while paused
    sim.send_lifecycle(subscription["id"], "reauthorizationRequired")
    wait_for(lambda: state(app, CONTOSO, user_id), what="the delta after reauthorizing")
    assert any(r["method"] == "POST" and r["path"].endswith(f"/subscriptions/{subscription['id']}/reauthorize")
               for r in sim.requests)


def test_a_removed_subscription_is_created_again_then_a_delta_runs(stack):
    sim, host, app = stack
    old = sim.subscriptions(CONTOSO)[0]["id"]
    sim.send_lifecycle(old, "subscriptionRemoved", unusual=True)  # not sent for users today: handled anyway
    wait_for(lambda: [s for s in sim.subscriptions(CONTOSO) if s["id"] != old], what="a new subscription")
    fresh = sim.subscriptions(CONTOSO)[0]["id"]
    wait_for(lambda: [s.subscription_id for s in app.subscriptions.for_tenant(CONTOSO)] == [fresh],
             what="the new subscription stored, the old one forgotten")


def test_missed_notifications_are_caught_up_by_a_delta(stack):
    sim, host, app = stack
    sim.drop_next_notifications(CONTOSO, 1)
    user_id = sim.create_user(CONTOSO, "Ka Missed", "ka@contoso.example")
    sim.send_lifecycle(sim.subscriptions(CONTOSO)[0]["id"], "missed", unusual=True)
    wait_for(lambda: state(app, CONTOSO, user_id), what="the missed user after the delta")
