"""Onboarding a client whose admin has not consented yet: stored as awaiting_consent, answered
202 with the admin-consent URL, never billed, and active by itself once consent exists."""
from __future__ import annotations

import json

import pytest

from shared.tenants import ACTIVE, AWAITING_CONSENT
from tests.integration.stack import add_client_tenant, call, consent_client, running_stack, wait_for

APP_ID = "11111111-2222-4333-8444-555555555555"
CLIENT = "7e6d5c4b-3a29-4810-9f8e-7d6c5b4a3928"


def onboarding() -> dict:
    return {"plan": {"tenant_id": CLIENT, "name": "Late Consent Ltd", "currency": "USD", "timezone": "America/Chicago",
                     "per_user_price": "30.00"}, "billing_contacts": ["ap@late.example"]}


@pytest.fixture(scope="module")
def stack(azurite):
    with running_stack(azurite.connection_string, GRAPH_APP_CLIENT_ID=APP_ID) as running:
        yield running


def listed(host) -> dict:
    status, _, body = call(host, "GET", "/api/tenants")
    assert status == 200
    return {row["tenant_id"]: row for row in json.loads(body)}


def test_an_unconsented_client_is_answered_202_with_the_consent_url_then_activates_by_itself(stack):
    sim, host, app = stack
    status, _, body = call(host, "POST", "/api/tenants", onboarding())
    answer = json.loads(body)
    assert status == 202, answer
    assert answer["status"] == AWAITING_CONSENT
    assert answer["consent_url"] == f"https://login.microsoftonline.com/{CLIENT}/adminconsent?client_id={APP_ID}"
    assert "has not consented yet" in answer["message"]
    row = listed(host)[CLIENT]
    assert row["status"] == AWAITING_CONSENT and row["users"] == 0 and row["last_sync"] is None
    assert app.tenants.get(CLIENT).status == AWAITING_CONSENT and app.subscriptions.for_tenant(CLIENT) == []

    # The next day the admin has consented (the tenant now answers), and the daily timer runs.
    add_client_tenant(sim, CLIENT, "Late Consent Ltd", "late.example")  # consented as docs/deploy.md asks
    sim.create_user(CLIENT, "Ivy Ng", "ivy@late.example")
    sim.create_user(CLIENT, "Jo Park", "jo@late.example")
    assert call(host, "POST", "/admin/functions/daily_sync", {"input": ""})[0] == 202
    wait_for(lambda: app.tenants.get(CLIENT).status == ACTIVE and app.subscriptions.for_tenant(CLIENT),
             what="the client to become active")
    row = wait_for(lambda: (r := listed(host)[CLIENT])["users"] == 2 and r, what="the baseline in the listing")
    assert row["status"] == ACTIVE and row["last_sync"] is not None and row["last_invoice"] is None


def test_a_client_whose_tenant_refuses_the_app_403_awaits_consent_until_its_admin_grants_it(stack):
    sim, host, app = stack
    tenant_id = "2b3c4d5e-6f70-4819-9a2b-3c4d5e6f7081"
    sim.add_tenant(tenant_id, "Refusing Ltd", "refusing.example")  # the app has no permission there yet
    sim.create_user(tenant_id, "Kim Lo", "kim@refusing.example")
    body = {**onboarding(), "plan": {**onboarding()["plan"], "tenant_id": tenant_id, "name": "Refusing Ltd"}}
    status, _, answer = call(host, "POST", "/api/tenants", body)
    assert status == 202 and "Microsoft Graph answered 403" in json.loads(answer)["message"]
    consent_client(sim, tenant_id)
    assert call(host, "POST", "/admin/functions/daily_sync", {"input": ""})[0] == 202
    row = wait_for(lambda: (r := listed(host)[tenant_id])["status"] == ACTIVE and r["users"] == 1 and r,
                   what="the consented client active with its baseline")
    assert row["last_sync"] is not None
