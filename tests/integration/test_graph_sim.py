"""The Graph simulator behaves as graph-facts.md says, seen through the real msgraph-sdk."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from devtools.graph_sim import GraphSimulator
from tests.integration.graph_sim_helpers import WebhookReceiver, graph_client

UTC = timezone.utc
DIRECTORY_ROLES = ("User.Read.All", "LicenseAssignment.Read.All")
ROOT = Path(__file__).resolve().parents[2]


_LOOP = asyncio.new_event_loop()  # one loop for the module: SDK clients keep their httpx pool on it


def run(coro):
    return _LOOP.run_until_complete(coro)


@pytest.fixture(scope="module", autouse=True)
def _event_loop():
    yield
    _LOOP.run_until_complete(_LOOP.shutdown_asyncgens())


@pytest.fixture(scope="module")
def running_sim():
    sim = GraphSimulator(retry_delays=(0.05, 0.1, 0.2)).start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(running_sim):
    running_sim.reset()
    running_sim.set_delta_page_size(100)
    running_sim.set_notification_batching(1)
    yield running_sim
    running_sim.wait_deliveries(5)


@pytest.fixture
def tenant(sim):
    tid = str(uuid.uuid4())
    sim.add_tenant(tid, "Contoso", "contoso.example", roles=DIRECTORY_ROLES)
    sim.add_sku(tid, "SPE_E3", prepaid=10)
    sim.add_sku(tid, "EXCHANGESTANDARD", prepaid=5)
    return tid


@pytest.fixture
def receiver():
    hook = WebhookReceiver()
    yield hook
    hook.close()


def odata_error(excinfo):
    err = excinfo.value
    return err.response_status_code, err.error.code, err.error.message


def expiry(minutes: float, sim: GraphSimulator) -> datetime:
    return sim.now() + timedelta(minutes=minutes)


async def full_delta(client, select=("displayName", "accountEnabled", "assignedLicenses", "userType"), page_size=None):
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder

    config = RequestConfiguration(
        query_parameters=DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=list(select)))
    if page_size:
        config.headers.add("Prefer", f"odata.maxpagesize={page_size}")
    pages = [await client.users.delta.get(request_configuration=config)]
    while pages[-1].odata_next_link:
        pages.append(await client.users.delta.with_url(pages[-1].odata_next_link).get())
    return pages


async def follow(client, link):
    pages = [await client.users.delta.with_url(link).get()]
    while pages[-1].odata_next_link:
        pages.append(await client.users.delta.with_url(pages[-1].odata_next_link).get())
    return pages


def users_of(pages):
    return [u for p in pages for u in p.value]


# ---------------------------------------------------------------------- delta
def test_a_full_delta_sync_pages_with_next_links_until_a_delta_link_with_only_selected_properties(sim, tenant):
    ids = [sim.create_user(tenant, f"User {i}", skus=["SPE_E3"]) for i in range(5)]
    client = graph_client(sim.base_url, tenant)

    pages = run(full_delta(client, select=("displayName", "assignedLicenses"), page_size=2))

    assert [len(p.value) for p in pages] == [2, 2, 1]
    assert all(p.odata_delta_link is None for p in pages[:-1]) and pages[-1].odata_delta_link
    assert pages[-1].odata_delta_link.startswith(sim.base_url + "/users/delta")
    assert "$deltatoken=" in pages[-1].odata_delta_link
    users = users_of(pages)
    assert [u.id for u in users] == ids
    assert users[0].display_name == "User 0"
    assert str(users[0].assigned_licenses[0].sku_id) == sim.sku_id(tenant, "SPE_E3")
    assert users[0].account_enabled is None and users[0].user_principal_name is None  # not selected
    raw = httpx.get(f"{sim.base_url}/users/delta", params={"$select": "displayName"},
                    headers={"Authorization": f"Bearer sim-token.{tenant}"}).json()
    assert all(set(u) == {"id", "displayName"} for u in raw["value"]) and "@odata.deltaLink" in raw


def test_an_incremental_delta_returns_each_change_in_order_with_only_the_changed_properties_removed_markers_and_restores(sim, tenant):
    keep, soft, hard, licensed, quiet = (sim.create_user(tenant, name) for name in ("Keep", "Soft", "Hard", "Licensed", "Quiet"))
    client = graph_client(sim.base_url, tenant)
    delta_link = run(full_delta(client))[-1].odata_delta_link

    sim.soft_delete_user(tenant, soft)
    sim.hard_delete_user(tenant, hard)
    sim.assign_license(tenant, licensed, "SPE_E3")
    sim.disable_user(tenant, licensed)
    sim.update_user(tenant, quiet, mail="elsewhere@contoso.example")  # mail is not selected: not tracked
    added = sim.create_user(tenant, "Newcomer")
    pages = run(follow(client, delta_link))
    entries = users_of(pages)
    changes = {u.id: u for u in entries}

    # delta-query-overview: one entity may come several times, each entry with the changed
    # properties (and id) only
    assert [u.id for u in entries] == [soft, hard, licensed, licensed, added]
    assert changes[soft].additional_data["@removed"] == {"reason": "changed"}
    assert changes[hard].additional_data["@removed"] == {"reason": "deleted"}
    licence_entry, disable_entry = [u for u in entries if u.id == licensed]
    assert [str(a.sku_id) for a in licence_entry.assigned_licenses] == [sim.sku_id(tenant, "SPE_E3")]
    assert licence_entry.account_enabled is None and licence_entry.display_name is None
    assert disable_entry.account_enabled is False and disable_entry.assigned_licenses is None
    assert "@removed" not in changes[added].additional_data and changes[added].display_name == "Newcomer"

    sim.restore_user(tenant, soft)
    again = users_of(run(follow(client, pages[-1].odata_delta_link)))
    assert [u.id for u in again] == [soft]
    assert "@removed" not in again[0].additional_data and again[0].display_name == "Soft"
    assert keep not in {u.id for u in users_of(pages)}


def test_delta_token_latest_gives_no_users_and_a_fresh_delta_link(sim, tenant):
    sim.create_user(tenant, "Existing")
    client = graph_client(sim.base_url, tenant)

    latest = run(client.users.delta.with_url(f"{sim.base_url}/users/delta?$deltaToken=latest&$select=displayName").get())

    assert latest.value == [] and latest.odata_delta_link
    added = sim.create_user(tenant, "Later")
    assert [u.id for u in users_of(run(follow(client, latest.odata_delta_link)))] == [added]


def test_an_unknown_expired_or_invalidated_delta_token_is_400_sync_state_not_found_or_another_expiry_form(sim, tenant):
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    sim.create_user(tenant, "Someone")
    client = graph_client(sim.base_url, tenant)
    link = run(full_delta(client))[-1].odata_delta_link

    with pytest.raises(ODataError) as unknown:
        run(client.users.delta.with_url(f"{sim.base_url}/users/delta()?$deltatoken=made-up").get())
    status, code, message = odata_error(unknown)
    assert (status, code) == (400, "syncStateNotFound") and "unknown" in message

    sim.advance(timedelta(days=7, minutes=1))
    with pytest.raises(ODataError) as stale:
        run(client.users.delta.with_url(link).get())
    assert odata_error(stale)[:2] == (400, "syncStateNotFound") and "7 days" in odata_error(stale)[2]

    fresh = run(full_delta(client))[-1].odata_delta_link
    sim.invalidate_delta_tokens(tenant)
    with pytest.raises(ODataError) as invalidated:
        run(client.users.delta.with_url(fresh).get())
    assert odata_error(invalidated)[:2] == (400, "syncStateNotFound") and "reset" in odata_error(invalidated)[2]

    for form, status, code in (("gone", 410, "syncStateNotFound"), ("resyncRequired", 410, "resyncRequired"),
                               ("Directory_ExpiredPageToken", 400, "Directory_ExpiredPageToken")):
        fresh = run(full_delta(client))[-1].odata_delta_link
        sim.invalidate_delta_tokens(tenant, form)
        answer = httpx.get(fresh, headers={"Authorization": f"Bearer sim-token.{tenant}"})
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
        if form == "resyncRequired":  # where to start over: a round without a token
            assert "deltatoken" not in answer.headers["Location"] and "$select=" in answer.headers["Location"]


def test_a_replayed_delta_returns_every_live_user_again(sim, tenant):
    ids = [sim.create_user(tenant, f"U{i}") for i in range(3)]
    client = graph_client(sim.base_url, tenant)
    link = run(full_delta(client))[-1].odata_delta_link

    sim.replay_next_delta(tenant)
    replayed = users_of(run(follow(client, link)))

    assert sorted(u.id for u in replayed) == sorted(ids)
    assert users_of(run(follow(client, link))) == []  # only the next round replays


def test_delta_tokens_of_one_tenant_are_unknown_to_another(sim, tenant):
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    other = str(uuid.uuid4())
    sim.add_tenant(other, "Fabrikam", roles=DIRECTORY_ROLES)
    link = run(full_delta(graph_client(sim.base_url, tenant)))[-1].odata_delta_link
    with pytest.raises(ODataError) as err:
        run(graph_client(sim.base_url, other).users.delta.with_url(link).get())
    assert odata_error(err)[:2] == (400, "syncStateNotFound")


# ---------------------------------------------------------------------- users and SKUs
def test_users_are_read_with_select_and_by_upn_and_isolated_per_tenant(sim, tenant):
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder

    uid = sim.create_user(tenant, "Ada Lovelace", "ada@contoso.example", skus=["SPE_E3"])
    guest = sim.create_user(tenant, "Guest Person", user_type="Guest")
    other = str(uuid.uuid4())
    sim.add_tenant(other, "Fabrikam", roles=DIRECTORY_ROLES)
    client = graph_client(sim.base_url, tenant)

    default = run(client.users.by_user_id(uid).get())
    assert default.display_name == "Ada Lovelace" and default.account_enabled is None  # not a default property
    config = RequestConfiguration(query_parameters=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(
        select=["id", "userType", "accountEnabled", "createdDateTime"]))
    selected = run(client.users.by_user_id("ada@contoso.example").get(request_configuration=config))
    assert (selected.id, selected.user_type, selected.account_enabled) == (uid, "Member", True)
    assert selected.created_date_time.tzinfo is not None
    listed = run(client.users.get())
    assert {u.id for u in listed.value} == {uid, guest}
    with pytest.raises(ODataError) as elsewhere:
        run(graph_client(sim.base_url, other).users.by_user_id(uid).get())
    assert odata_error(elsewhere)[:2] == (404, "Request_ResourceNotFound")


def test_subscribed_skus_count_consumed_units_of_live_users_and_show_prepaid_units(sim, tenant):
    client = graph_client(sim.base_url, tenant)
    a = sim.create_user(tenant, "A", skus=["SPE_E3"])
    b = sim.create_user(tenant, "B", skus=["SPE_E3", "EXCHANGESTANDARD"])
    sim.create_user(tenant, "C")

    def consumed():
        skus = run(client.subscribed_skus.get()).value
        return {s.sku_part_number: (s.consumed_units, s.prepaid_units.enabled, s.capability_status, s.applies_to) for s in skus}

    assert consumed() == {"SPE_E3": (2, 10, "Enabled", "User"), "EXCHANGESTANDARD": (1, 5, "Enabled", "User")}
    sim.soft_delete_user(tenant, a)
    sim.remove_license(tenant, b, "EXCHANGESTANDARD")
    sim.set_prepaid_units(tenant, "SPE_E3", 25, warning=3)
    assert consumed() == {"SPE_E3": (1, 25, "Enabled", "User"), "EXCHANGESTANDARD": (0, 5, "Enabled", "User")}
    sim.restore_user(tenant, a)
    assert consumed()["SPE_E3"][0] == 2
    assert run(client.subscribed_skus.get()).value[0].prepaid_units.warning == 3


def test_requests_without_a_known_token_are_401_and_unknown_paths_are_404_graph_errors(sim, tenant):
    no_token = httpx.get(f"{sim.base_url}/users")
    wrong = httpx.get(f"{sim.base_url}/users", headers={"Authorization": "Bearer sim-token.nobody"})
    unknown = httpx.get(f"{sim.base_url}/groups", headers={"Authorization": f"Bearer sim-token.{tenant}"})
    outside = httpx.get(f"{sim.root_url}/beta/users", headers={"Authorization": f"Bearer sim-token.{tenant}"})
    bad_select = httpx.get(f"{sim.base_url}/users?$select=nonsense", headers={"Authorization": f"Bearer sim-token.{tenant}"})

    assert (no_token.status_code, no_token.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "InvalidAuthenticationToken")
    assert unknown.status_code == 404 and set(unknown.json()["error"]) >= {"code", "message"}
    assert outside.status_code == 404 and "error" in outside.json()
    assert bad_select.status_code == 400 and "nonsense" in bad_select.json()["error"]["message"]


# ---------------------------------------------------------------------- throttling
def test_a_429_with_retry_after_is_retried_by_the_sdk_retry_middleware(sim, tenant):
    sim.create_user(tenant, "Patient")
    client = graph_client(sim.base_url, tenant)
    sim.throttle(1, status=429, retry_after=1, path_prefix="/users")

    started = time.monotonic()
    users = run(client.users.get()).value

    assert [u.display_name for u in users] == ["Patient"]
    assert time.monotonic() - started >= 0.9
    statuses = [r["status"] for r in sim.requests if r["path"].startswith("/v1.0/users")]
    assert statuses[-2:] == [429, 200]


def test_throttling_answers_a_graph_error_with_retry_after_and_can_be_a_503(sim, tenant):
    sim.throttle(1, status=503, retry_after=7)
    answer = httpx.get(f"{sim.base_url}/subscribedSkus", headers={"Authorization": f"Bearer sim-token.{tenant}"})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "7"
    sim.throttle(1, retry_after=3, path_prefix="/subscriptions")
    skus = httpx.get(f"{sim.base_url}/subscribedSkus", headers={"Authorization": f"Bearer sim-token.{tenant}"})
    subs = httpx.get(f"{sim.base_url}/subscriptions", headers={"Authorization": f"Bearer sim-token.{tenant}"})
    assert skus.status_code == 200
    assert (subs.status_code, subs.json()["error"]["code"], subs.headers["Retry-After"]) == (429, "TooManyRequests", "3")


def test_a_batch_answers_each_request_inside_a_200_envelope_including_a_429(sim, tenant):
    uid = sim.create_user(tenant, "Batched", skus=["SPE_E3"])
    sim.throttle(1, retry_after=2, path_prefix="/subscribedSkus")
    batch = {"requests": [
        {"id": "1", "method": "GET", "url": f"/users/{uid}?$select=displayName,accountEnabled"},
        {"id": "2", "method": "GET", "url": "/subscribedSkus"},
        {"id": "3", "method": "GET", "url": "/users/delta?$select=displayName", "headers": {"Prefer": "odata.maxpagesize=1"}},
    ]}

    answer = httpx.post(f"{sim.base_url}/$batch", json=batch, headers={"Authorization": f"Bearer sim-token.{tenant}"})

    assert answer.status_code == 200
    by_id = {r["id"]: r for r in answer.json()["responses"]}
    assert by_id["1"]["status"] == 200 and by_id["1"]["body"]["accountEnabled"] is True
    assert (by_id["2"]["status"], by_id["2"]["headers"]["Retry-After"], by_id["2"]["body"]["error"]["code"]) == (429, "2", "TooManyRequests")
    assert by_id["3"]["status"] == 200 and "@odata.deltaLink" in by_id["3"]["body"]
    too_many = {"requests": [{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)]}
    assert httpx.post(f"{sim.base_url}/$batch", json=too_many, headers={"Authorization": f"Bearer sim-token.{tenant}"}).status_code == 400


# ---------------------------------------------------------------------- subscriptions
def new_subscription(sim, receiver, **overrides):
    """A /users subscription for the receiver's URLs (receiver None: give notification_url)."""
    from msgraph.generated.models.subscription import Subscription

    values = dict(change_type="updated,deleted", resource="/users", notification_url=getattr(receiver, "url", None),
                  lifecycle_notification_url=getattr(receiver, "lifecycle_url", None),
                  expiration_date_time=expiry(60 * 24, sim), client_state="s3cret-state")
    values.update(overrides)
    return Subscription(**values)


def test_creating_a_subscription_validates_both_urls_and_answers_the_subscription(sim, tenant, receiver):
    client = graph_client(sim.base_url, tenant)

    created = run(client.subscriptions.post(new_subscription(sim, receiver)))

    assert created.id and created.resource == "/users" and created.change_type == "updated,deleted"
    assert created.client_state == "s3cret-state" and created.include_resource_data is False
    assert created.notification_url == receiver.url and created.lifecycle_notification_url == receiver.lifecycle_url
    assert created.application_id and created.creator_id and created.latest_supported_tls_version == "v1_2"
    assert len(receiver.validations) == 2 and all(" " in t and ":" in t for t in receiver.validations)  # decoded text
    listed = run(client.subscriptions.get()).value
    assert [s.id for s in listed] == [created.id]
    assert run(client.subscriptions.by_subscription_id(created.id).get()).expiration_date_time == created.expiration_date_time


def test_a_subscription_is_refused_when_the_endpoint_fails_the_handshake(sim, tenant):
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    client = graph_client(sim.base_url, tenant)
    for mode in ("fail", "json"):
        bad = WebhookReceiver(mode)
        try:
            with pytest.raises(ODataError) as err:
                run(client.subscriptions.post(new_subscription(sim, bad)))
            status, code, message = odata_error(err)
            assert (status, code) == (400, "ValidationError")
            assert message.startswith("Subscription validation request failed")
        finally:
            bad.close()
    with pytest.raises(ODataError) as unreachable:
        run(client.subscriptions.post(new_subscription(sim, receiver=None, notification_url="http://127.0.0.1:9/x")))
    assert odata_error(unreachable)[:2] == (400, "ValidationError")
    assert sim.subscriptions(tenant) == []


def test_subscription_expirations_beyond_41760_minutes_or_in_the_past_and_bad_fields_are_refused(sim, tenant, receiver):
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    client = graph_client(sim.base_url, tenant)
    cases = [dict(expiration_date_time=expiry(41_760 + 5, sim)), dict(expiration_date_time=expiry(-1, sim)),
             dict(client_state="x" * 129), dict(resource="/groups"), dict(change_type="created"),
             dict(notification_url="http://prorata.example/api/notify")]
    messages = []
    for overrides in cases:
        with pytest.raises(ODataError) as err:
            run(client.subscriptions.post(new_subscription(sim, receiver, **overrides)))
        assert err.value.response_status_code == 400, overrides
        messages.append(err.value.error.message)
    assert "41760 minutes" in messages[0] and "128" in messages[2]
    assert receiver.validations == []  # refused before any handshake
    ok = run(client.subscriptions.post(new_subscription(sim, receiver, resource="users",
                                                        expiration_date_time=expiry(41_760 - 1, sim))))
    assert ok.resource == "users"


def test_a_tenant_holds_at_most_100_user_subscriptions(sim, tenant, receiver):
    graph = httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer sim-token.{tenant}"})
    body = {"changeType": "updated,deleted", "resource": "/users", "notificationUrl": receiver.url,
            "expirationDateTime": (sim.now() + timedelta(hours=1)).isoformat(), "clientState": "x"}

    statuses = [graph.post("/subscriptions", json=body).status_code for _ in range(101)]

    assert statuses == [201] * 100 + [403]
    assert len(graph.get("/subscriptions").json()["value"]) == 100


def test_subscriptions_are_renewed_reauthorized_deleted_and_gone_once_expired(sim, tenant, receiver):
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.subscription import Subscription

    client = graph_client(sim.base_url, tenant)
    first = run(client.subscriptions.post(new_subscription(sim, receiver, expiration_date_time=expiry(60, sim))))
    second = run(client.subscriptions.post(new_subscription(sim, receiver, expiration_date_time=expiry(60, sim))))

    later = expiry(60 * 24 * 20, sim)
    renewed = run(client.subscriptions.by_subscription_id(first.id).patch(Subscription(expiration_date_time=later)))
    assert abs(renewed.expiration_date_time - later) < timedelta(seconds=1)
    with pytest.raises(ODataError) as too_far:
        run(client.subscriptions.by_subscription_id(first.id).patch(Subscription(expiration_date_time=expiry(41_761, sim))))
    assert too_far.value.response_status_code == 400
    run(client.subscriptions.by_subscription_id(first.id).reauthorize.post())

    run(client.subscriptions.by_subscription_id(second.id).delete())
    with pytest.raises(ODataError) as deleted:
        run(client.subscriptions.by_subscription_id(second.id).get())
    assert odata_error(deleted)[:2] == (404, "ResourceNotFound")

    sim.advance(timedelta(days=21))
    with pytest.raises(ODataError) as expired:
        run(client.subscriptions.by_subscription_id(first.id).patch(Subscription(expiration_date_time=expiry(60, sim))))
    assert odata_error(expired)[:2] == (404, "ResourceNotFound")
    assert run(client.subscriptions.get()).value == []


# ---------------------------------------------------------------------- notifications
def test_directory_changes_are_notified_in_order_with_client_state_tenant_and_resource_data(sim, tenant, receiver):
    client = graph_client(sim.base_url, tenant)
    sub = run(client.subscriptions.post(new_subscription(sim, receiver)))

    uid = sim.create_user(tenant, "Notified")
    sim.assign_license(tenant, uid, "SPE_E3")
    sim.disable_user(tenant, uid)
    sim.soft_delete_user(tenant, uid)
    sim.restore_user(tenant, uid)
    sim.hard_delete_user(tenant, uid)
    assert sim.wait_deliveries(5)

    items = receiver.accepted_items()
    assert [i["changeType"] for i in items] == ["updated"] * 5 + ["deleted"]
    first = items[0]
    assert first["subscriptionId"] == sub.id and first["clientState"] == "s3cret-state"
    assert first["tenantId"] == tenant and first["resource"] == f"Users/{uid}"
    assert first["resourceData"] == {"@odata.type": "#Microsoft.Graph.User", "@odata.id": f"Users/{uid}",
                                     "id": uid, "organizationId": tenant}
    assert first["subscriptionExpirationDateTime"].endswith("Z")
    assert all(e["status"] == 202 for e in sim.delivery_log if e["kind"] == "change")


def test_failed_deliveries_are_retried_and_dropped_notifications_never_arrive(sim, tenant, receiver):
    run(graph_client(sim.base_url, tenant).subscriptions.post(new_subscription(sim, receiver)))
    receiver.status_script = [503, 400]  # any non-2xx is retried

    kept = sim.create_user(tenant, "Retried")
    sim.drop_next_notifications(tenant, 1)
    lost = sim.create_user(tenant, "Dropped")
    assert sim.wait_deliveries(5)

    assert [i["resourceData"]["id"] for i in receiver.accepted_items()] == [kept]
    log = [e for e in sim.delivery_log if e["kind"] == "change"]
    assert [(e["outcome"], e["status"]) for e in log if e["outcome"] != "dropped"] == [
        ("retrying", 503), ("retrying", 400), ("ok", 202)]
    assert [e["resources"] for e in log if e["outcome"] == "dropped"] == [[f"Users/{lost}"]]
    assert lost not in json.dumps(receiver.posts)


def test_notifications_can_be_batched_into_one_post(sim, tenant, receiver):
    run(graph_client(sim.base_url, tenant).subscriptions.post(new_subscription(sim, receiver)))
    sim.set_notification_batching(max_items=3, linger_seconds=0.5)

    ids = [sim.create_user(tenant, f"Batch {i}") for i in range(3)]
    assert sim.wait_deliveries(5)

    posts = [p for p in receiver.posts if p["path"] == "/notify"]
    assert len(posts) == 1 and [i["resourceData"]["id"] for i in posts[0]["body"]["value"]] == ids


def test_lifecycle_notifications_go_to_the_lifecycle_url_and_subscription_removed_ends_the_subscription(sim, tenant, receiver):
    client = graph_client(sim.base_url, tenant)
    sub = run(client.subscriptions.post(new_subscription(sim, receiver)))

    sim.send_lifecycle(sub.id, "reauthorizationRequired")
    with pytest.raises(ValueError, match="only reauthorizationRequired"):
        sim.send_lifecycle(sub.id, "missed")  # Graph sends users no other lifecycle event
    sim.send_lifecycle(sub.id, "missed", unusual=True)
    sim.send_lifecycle(sub.id, "subscriptionRemoved", unusual=True)
    assert sim.wait_deliveries(5)

    items = receiver.accepted_items("/lifecycle")
    assert [i["lifecycleEvent"] for i in items] == ["reauthorizationRequired", "missed", "subscriptionRemoved"]
    assert all(i["subscriptionId"] == sub.id and i["clientState"] == "s3cret-state" and i["tenantId"] == tenant for i in items)
    assert sim.subscriptions(tenant) == [] and run(client.subscriptions.get()).value == []


def test_expired_subscriptions_receive_nothing(sim, tenant, receiver):
    run(graph_client(sim.base_url, tenant).subscriptions.post(new_subscription(sim, receiver, expiration_date_time=expiry(30, sim))))
    sim.advance(timedelta(minutes=31))
    sim.create_user(tenant, "Unheard")
    assert sim.wait_deliveries(5)
    assert receiver.accepted_items() == []


# ---------------------------------------------------------------------- mail
def mail_message(subject, attachments=()):
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.recipient import Recipient

    return Message(
        subject=subject, body=ItemBody(content_type=BodyType.Html, content="<p>Your invoice</p>"),
        to_recipients=[Recipient(email_address=EmailAddress(address="ap@client.example", name="AP"))],
        cc_recipients=[Recipient(email_address=EmailAddress(address="boss@client.example"))],
        attachments=list(attachments),
    )


def file_attachment(name, data, content_type="application/pdf"):
    from msgraph.generated.models.file_attachment import FileAttachment
    return FileAttachment(odata_type="#microsoft.graph.fileAttachment", name=name, content_type=content_type, content_bytes=data)


@pytest.fixture
def msp(sim):
    tid = str(uuid.uuid4())
    sim.add_tenant(tid, "MSP", "msp.example")
    sim.create_user(tid, "Billing", "billing@msp.example")
    sim.grant_mailbox(tid, "billing@msp.example", "Mail.Send", "Mail.ReadWrite", "Mail.Read")
    return tid


def test_send_mail_with_a_small_attachment_lands_in_the_outbox(sim, msp):
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

    client = graph_client(sim.base_url, msp)
    pdf = b"%PDF-1.4 tiny invoice" * 100

    run(client.users.by_user_id("billing@msp.example").send_mail.post(SendMailPostRequestBody(
        message=mail_message("Invoice 2026-11", [file_attachment("invoice.pdf", pdf)]), save_to_sent_items=True)))

    [sent] = sim.outbox
    assert (sent.tenant_id, sent.mailbox, sent.subject) == (msp, "billing@msp.example", "Invoice 2026-11")
    assert (sent.body_content_type, sent.body) == ("html", "<p>Your invoice</p>")
    assert (sent.to, sent.cc, sent.bcc) == (["ap@client.example"], ["boss@client.example"], [])
    assert [(a.name, a.content_type, a.data) for a in sent.attachments] == [("invoice.pdf", "application/pdf", pdf)]
    assert any(r["path"] == "/v1.0/users/billing%40msp.example/sendMail" and r["status"] == 202 for r in sim.requests)


def test_send_mail_refuses_a_mailbox_of_another_tenant_and_an_inline_attachment_over_3_mb(sim, msp, tenant):
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

    sim.grant(tenant, "Mail.Send")  # even with Mail.Send in its own tenant
    with pytest.raises(ODataError) as foreign:
        run(graph_client(sim.base_url, tenant).users.by_user_id("billing@msp.example").send_mail.post(
            SendMailPostRequestBody(message=mail_message("Hi"))))
    assert foreign.value.response_status_code == 404

    big = os.urandom(3 * 1024 * 1024 + 10)
    body = {"message": {"subject": "Too big", "toRecipients": [{"emailAddress": {"address": "a@b.example"}}],
                        "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "big.bin",
                                         "contentBytes": base64.b64encode(big).decode()}]}}
    answer = httpx.post(f"{sim.base_url}/users/billing%40msp.example/sendMail", json=body,
                        headers={"Authorization": f"Bearer sim-token.{msp}"}, timeout=30)
    assert answer.status_code == 413 and answer.json()["error"]["code"]
    assert sim.outbox == []


def test_an_attachment_over_3_mb_goes_through_an_upload_session_and_the_draft_is_sent(sim, msp):
    from msgraph.generated.models.attachment_item import AttachmentItem
    from msgraph.generated.models.attachment_type import AttachmentType
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.users.item.messages.item.attachments.create_upload_session.create_upload_session_post_request_body import (
        CreateUploadSessionPostRequestBody,
    )

    client = graph_client(sim.base_url, msp)
    mailbox = client.users.by_user_id("billing@msp.example")
    data = os.urandom(5 * 1024 * 1024 + 123)

    async def scenario():
        draft = await mailbox.messages.post(mail_message("Big invoice", [file_attachment("summary.txt", b"hello", "text/plain")]))
        with pytest.raises(ODataError) as small:
            await mailbox.messages.by_message_id(draft.id).attachments.create_upload_session.post(
                CreateUploadSessionPostRequestBody(attachment_item=AttachmentItem(
                    attachment_type=AttachmentType.File, name="small.pdf", size=1000)))
        assert small.value.error.code == "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize"
        session = await mailbox.messages.by_message_id(draft.id).attachments.create_upload_session.post(
            CreateUploadSessionPostRequestBody(attachment_item=AttachmentItem(
                attachment_type=AttachmentType.File, name="detail.pdf", size=len(data), content_type="application/pdf")))
        assert session.next_expected_ranges == ["0-"] and session.upload_url.startswith(sim.root_url)
        async with httpx.AsyncClient(timeout=30) as raw:  # the upload URL is pre-authenticated: no token
            chunk = 2 * 1024 * 1024
            answers = []
            for start in range(0, len(data), chunk):
                piece = data[start:start + chunk]
                answers.append(await raw.put(session.upload_url, content=piece, headers={
                    "Content-Range": f"bytes {start}-{start + len(piece) - 1}/{len(data)}",
                    "Content-Type": "application/octet-stream"}))
            out_of_order = await raw.put(session.upload_url, content=b"x", headers={
                "Content-Range": f"bytes 5-5/{len(data)}", "Content-Type": "application/octet-stream"})
        await mailbox.messages.by_message_id(draft.id).send.post()
        return answers, out_of_order

    answers, out_of_order = run(scenario())

    assert [a.status_code for a in answers] == [200, 200, 201]
    assert answers[0].json()["nextExpectedRanges"] == [str(2 * 1024 * 1024)]
    assert "Attachments(" in answers[-1].headers["Location"]
    assert out_of_order.status_code == 404  # the session ended with the last byte
    [sent] = sim.outbox
    assert sent.subject == "Big invoice" and sent.via == "draft"
    assert [(a.name, a.data) for a in sent.attachments] == [("summary.txt", b"hello"), ("detail.pdf", data)]


def test_the_outbox_is_exported_as_message_json_body_and_attachment_files(sim, msp, tmp_path):
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

    client = graph_client(sim.base_url, msp)
    run(client.users.by_user_id("billing@msp.example").send_mail.post(SendMailPostRequestBody(
        message=mail_message("Invoice 7", [file_attachment("inv 7.pdf", b"%PDF-1.4 x")]))))

    [folder] = [Path(p) for p in sim.export_outbox(tmp_path)]

    record = json.loads((folder / "message.json").read_text())
    assert record["subject"] == "Invoice 7" and record["to"] == ["ap@client.example"]
    assert (folder / record["attachments"][0]["file"]).read_bytes() == b"%PDF-1.4 x"
    assert (folder / "body.html").read_text() == "<p>Your invoice</p>"


# ---------------------------------------------------------------------- control API over HTTP
def test_the_control_api_over_http_drives_the_directory_clock_and_outbox(sim):
    control = httpx.Client(base_url=sim.control_url)
    tid = "tenant-over-http"

    assert control.post("/tenants", json={"tenant_id": tid, "name": "Northwind", "domain": "northwind.example",
                                          "roles": ["User.Read.All"]}).status_code == 200
    sku = control.post(f"/tenants/{tid}/skus", json={"sku_part_number": "SPE_E5", "prepaid": 3}).json()["skuId"]
    uid = control.post(f"/tenants/{tid}/users", json={"display_name": "Remote", "skus": ["SPE_E5"],
                                                     "created": "2026-01-02T03:04:05Z"}).json()["id"]
    assert control.post(f"/tenants/{tid}/users/{uid}/disable").json() == {"changed": True}
    assert control.post(f"/tenants/{tid}/users/{uid}/assign_license", json={"sku": "NOPE"}).status_code == 400
    assert control.post("/tenants/missing/users", json={"display_name": "x"}).status_code == 404
    assert control.post("/clock", json={"now": "2026-12-01T00:00:00Z"}).json()["now"].startswith("2026-12-01T00:00:00")
    assert control.post("/throttle", json={"count": 1, "retry_after": 2}).status_code == 200

    graph = httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer sim-token.{tid}"})
    assert graph.get("/subscribedSkus").status_code == 429
    assert graph.get("/subscribedSkus").json()["error"]["code"] == "Authorization_RequestDenied"
    assert control.post(f"/tenants/{tid}/grant", json={"roles": ["LicenseAssignment.Read.All"]}).status_code == 200
    assert graph.get("/subscribedSkus").status_code == 200
    user = graph.get(f"/users/{uid}", params={"$select": "accountEnabled,assignedLicenses,createdDateTime"}).json()
    assert user["accountEnabled"] is False and user["assignedLicenses"][0]["skuId"] == sku
    assert user["createdDateTime"] == "2026-01-02T03:04:05Z"
    assert [u["status"] for u in control.get(f"/tenants/{tid}/users").json()] == ["active"]
    assert control.get("/outbox").json() == []
    assert control.get("/nothing-here").status_code == 404
    assert graph.get(f"{sim.root_url}/_sim/health").json()["ok"] is True


def test_the_graph_sim_command_serves_until_stopped(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "devtools.cli", "graph-sim", "--port", "0", "--tenant", "t-cmd,Cmd"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = process.stdout.readline()
        base = line.split()[2]
        assert base.startswith("http://127.0.0.1:") and base.endswith("/v1.0")
        answer = httpx.get(f"{base}/users", headers={"Authorization": "Bearer sim-token.t-cmd"})
        assert answer.status_code == 200 and answer.json()["value"] == []
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_a_change_shows_in_delta_only_after_the_replication_delay_though_its_notification_leaves_at_once(
        sim, tenant, receiver):
    client = graph_client(sim.base_url, tenant)
    run(client.subscriptions.post(new_subscription(sim, receiver)))
    uid = sim.create_user(tenant, "Early")
    link = run(full_delta(client))[-1].odata_delta_link
    sim.set_replication_delay(0.6)
    try:
        sim.disable_user(tenant, uid)
        assert sim.wait_deliveries(5) and receiver.accepted_items()[-1]["resourceData"]["id"] == uid
        pages = run(follow(client, link))
        assert users_of(pages) == []
        time.sleep(0.7)
        later = users_of(run(follow(client, pages[-1].odata_delta_link)))  # the newer link still holds it
        assert [(u.id, u.account_enabled) for u in later] == [(uid, False)]
    finally:
        sim.set_replication_delay(0)


def test_subscribed_skus_tell_company_wide_free_and_lapsing_subscriptions_apart(sim, tenant):
    sim.add_sku(tenant, "FLOW_FREE", prepaid=10_000)
    sim.add_sku(tenant, "AAD_PREMIUM_P2_COMPANY", prepaid=1, applies_to="Company")
    sim.set_sku_status(tenant, "EXCHANGESTANDARD", "Warning")
    sim.set_prepaid_units(tenant, "EXCHANGESTANDARD", 0, warning=5)
    with pytest.raises(ValueError, match="company"):
        sim.create_user(tenant, "Nobody", skus=["AAD_PREMIUM_P2_COMPANY"])
    skus = {s["skuPartNumber"]: s for s in sim.skus(tenant)}
    assert skus["AAD_PREMIUM_P2_COMPANY"]["appliesTo"] == "Company"
    assert skus["FLOW_FREE"]["prepaidUnits"]["enabled"] == 10_000 and skus["FLOW_FREE"]["appliesTo"] == "User"
    assert skus["EXCHANGESTANDARD"]["capabilityStatus"] == "Warning"
    assert skus["EXCHANGESTANDARD"]["prepaidUnits"] == {"enabled": 0, "suspended": 0, "warning": 5, "lockedOut": 0}
    assert all(len(s["subscriptionIds"]) == 1 for s in skus.values())


def test_a_notification_answered_too_slowly_counts_as_failed_and_is_retried(sim, tenant):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    calls = []

    class Slow(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if "validationToken" in self.path:
                token = self.path.split("validationToken=")[1]
                from urllib.parse import unquote
                payload = unquote(token).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            calls.append(time.monotonic())
            if len(calls) == 1:
                time.sleep(3.5)  # Graph waits about 3 s
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/notify"
        body = {"changeType": "updated", "resource": "/users", "notificationUrl": url,
                "expirationDateTime": (sim.now() + timedelta(hours=1)).isoformat()}
        answer = httpx.post(f"{sim.base_url}/subscriptions", json=body,
                            headers={"Authorization": f"Bearer sim-token.{tenant}"}, timeout=30)
        assert answer.status_code == 201
        sim.create_user(tenant, "Slowly Answered")
        assert sim.wait_deliveries(10)
        outcomes = [(e["outcome"], e["status"]) for e in sim.delivery_log if e["kind"] == "change"]
        assert outcomes[0][0] == "retrying" and outcomes[0][1] is None and outcomes[-1] == ("ok", 202)
        assert len(calls) == 2
    finally:
        server.shutdown()
        server.server_close()


def test_a_round_without_a_token_shows_only_replicated_state_and_its_link_brings_the_rest(sim, tenant):
    client = graph_client(sim.base_url, tenant)
    renamed = sim.create_user(tenant, "Old Name")
    sim.set_replication_delay(0.6)
    try:
        sim.update_user(tenant, renamed, display_name="New Name")
        newcomer = sim.create_user(tenant, "Newcomer")
        pages = run(full_delta(client))
        assert [(u.id, u.display_name) for u in users_of(pages)] == [(renamed, "Old Name")]
        time.sleep(0.7)
        later = users_of(run(follow(client, pages[-1].odata_delta_link)))
        assert [(u.id, u.display_name) for u in later] == [(renamed, "New Name"), (newcomer, "Newcomer")]
    finally:
        sim.set_replication_delay(0)
