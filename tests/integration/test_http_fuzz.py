"""Every HTTP route of the Function App, fuzzed through the development host against Azurite and
the Graph simulator: whatever arrives, the answer is never a 5xx, never a traceback, and comes
within a few seconds (a few hundred cases per route)."""
from __future__ import annotations

import http.client
import json
import time
import uuid
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.tenants import OFFBOARDED
from tests.integration.stack import add_client_tenant, FUNCTION_KEY, call, running_stack

CLIENT = "5b1f2e3d-6c7a-4b8e-9f10-1a2b3c4d5e6f"
CASES = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
SLOWEST_SECONDS = 5.0


def onboarding(tenant_id: str = CLIENT) -> dict:
    return {"plan": {"tenant_id": tenant_id, "name": "Fuzz Dental", "currency": "USD", "timezone": "America/New_York",
                     "per_user_price": "45.00", "sku_prices": {"SPB": "22.00"}, "tax_rate": "0.0825"},
            "billing_contacts": ["accounts@fuzz.example"], "address": ["1 Main Street"], "locale": "en_US"}


@pytest.fixture(scope="module")
def stack(azurite):
    with running_stack(azurite.connection_string) as (sim, host, app):
        add_client_tenant(sim, CLIENT, "Fuzz Dental", "fuzz.example")
        sim.add_sku(CLIENT, "SPB", prepaid=5)
        sim.create_user(CLIENT, "Ann Lee", "ann@fuzz.example", skus=["SPB"])
        status, _, body = call(host, "POST", "/api/tenants", onboarding())
        assert status == 201, body
        yield sim, host, app
        for tenant in app.tenants.all():  # what the fuzz onboarded: no other module's timers work on it
            if tenant.status != OFFBOARDED:
                app.tenants.update(tenant.tenant_id, status=OFFBOARDED)


def ask(host, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request; asserts what every answer must be."""
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=30)
    started = time.monotonic()
    try:
        connection.request(method, path, body=body, headers={"x-functions-key": FUNCTION_KEY,
                                                              "Content-Type": "application/json"})
        response = connection.getresponse()
        status, answer = response.status, response.read()
    finally:
        connection.close()
    seconds = time.monotonic() - started
    assert status < 500, (method, path, body[:300] if body else None, status, answer[:500])
    assert b"Traceback" not in answer and b'File "' not in answer, answer[:500]
    assert seconds < SLOWEST_SECONDS, (method, path, seconds)
    return status, answer


# -- values that have broken doors before ----------------------------------------------------------
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "/", "a/b", "..", "%2F", "\x00", "8.25", "1.5", "-1", "1e-99999999", "1e26", "NaN",
                     "Infinity", "9999-12", "0000-01", "0001-01", "2026-13", "2026-02", "x" * 300,
                     "America/" + "A" * 300, "../../etc/passwd", "é" * 3_000, "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace")]),
    st.from_regex(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z"),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
                         st.floats(allow_nan=False, allow_infinity=False), nasty_text)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                  st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=12)


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


raw_bodies = st.one_of(st.binary(max_size=300), st.sampled_from([deep(100_000), deep(50), b"\xff\xfe\x00", b"{", b"null",
                                                                 '{"plan": {}}'.encode("utf-16")]))


@st.composite
def mutated(draw, original: dict) -> dict:
    """The valid request with one value (at any depth) replaced, added or removed."""
    data = json.loads(json.dumps(original))
    target, keys = data, []
    while isinstance(target, dict) and target and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(target)))
        if not isinstance(target[key], dict):
            break
        keys.append(key)
        target = target[key]
    action = draw(st.sampled_from(["replace", "add", "remove"]))
    key = draw(st.sampled_from(sorted(target))) if target else "x"
    if action == "remove":
        target.pop(key, None)
    elif action == "add":
        target[draw(st.text(max_size=10))] = draw(json_values)
    else:
        target[key] = draw(json_values)
    return data


def onboarding_bodies():
    valid = st.builds(lambda t: onboarding(str(t)), st.uuids())
    return st.one_of(raw_bodies, json_values.map(lambda v: json.dumps(v).encode()),
                     mutated(onboarding()).map(lambda v: json.dumps(v).encode()),
                     valid.flatmap(mutated).map(lambda v: json.dumps(v).encode()))


def path_id(text: str, keep_slash: bool) -> str:
    return quote(text, safe="/" if keep_slash else "")


@CASES
@given(body=onboarding_bodies())
def test_onboarding_never_fails_on_what_it_is_sent(stack, body):
    ask(stack[1], "POST", "/api/tenants", body)


@settings(CASES, max_examples=100)  # the route reads nothing of the request but its query string
@given(query=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3))
def test_listing_tenants_never_fails(stack, query):
    status, answer = ask(stack[1], "GET", "/api/tenants?" + urlencode(query))
    assert status == 200 and isinstance(json.loads(answer), list)


@CASES
@given(tenant=nasty_text, keep_slash=st.booleans())
def test_offboarding_never_fails_and_answers_404_for_a_tenant_it_does_not_know(stack, tenant, keep_slash):
    if tenant == CLIENT:
        return
    status, answer = ask(stack[1], "DELETE", f"/api/tenants/{path_id(tenant, keep_slash)}")
    assert 400 <= status < 500, answer[:300]


@CASES
@given(tenant=st.one_of(st.just(CLIENT), nasty_text), period=st.one_of(st.none(), nasty_text), keep_slash=st.booleans())
def test_the_invoice_preview_never_fails(stack, tenant, period, keep_slash):
    query = "" if period is None else "?" + urlencode({"period": period})
    status, _ = ask(stack[1], "GET", f"/api/tenants/{path_id(tenant, keep_slash)}/invoices/preview{query}")
    assert status in (200, 400) if tenant == CLIENT else 400 <= status < 500


@CASES
@given(tenant=st.one_of(st.just(CLIENT), nasty_text), period=nasty_text, keep_slash=st.booleans())
def test_the_e_invoice_route_never_fails(stack, tenant, period, keep_slash):
    status, _ = ask(stack[1], "GET", f"/api/tenants/{path_id(tenant, keep_slash)}/invoices/"
                                     f"{path_id(period, keep_slash)}/ubl")
    assert 400 <= status < 500  # nothing was closed: 404, or 400 for a bad tenant id or period


@CASES
@given(tenant=st.one_of(st.just(CLIENT), nasty_text), wanted=st.one_of(st.none(), nasty_text), keep_slash=st.booleans())
def test_the_reconciliation_never_fails(stack, tenant, wanted, keep_slash):
    query = "" if wanted is None else "?" + urlencode({"format": wanted})
    ask(stack[1], "GET", f"/api/tenants/{path_id(tenant, keep_slash)}/reconciliation{query}")


@CASES
@given(number=nasty_text, keep_slash=st.booleans(), body=st.one_of(st.none(), raw_bodies))
def test_releasing_an_invoice_never_fails_and_an_unknown_number_is_404(stack, number, keep_slash, body):
    status, _ = ask(stack[1], "POST", f"/api/invoices/{path_id(number, keep_slash)}/release", body)
    assert 400 <= status < 500


def notification_bodies():
    item = {"subscriptionId": str(uuid.uuid4()), "clientState": "x", "tenantId": CLIENT, "changeType": "updated",
            "resource": "Users/u-1", "resourceData": {"id": "u-1"}, "lifecycleEvent": "missed"}
    return st.one_of(raw_bodies, json_values.map(lambda v: json.dumps(v).encode()),
                     mutated({"value": [item]}).map(lambda v: json.dumps(v).encode()),
                     mutated(item).map(lambda v: json.dumps({"value": [v]}).encode()))


@CASES
@given(body=notification_bodies(), lifecycle=st.booleans(), token=st.one_of(st.none(), nasty_text))
def test_the_webhook_never_fails_on_what_it_is_sent(stack, body, lifecycle, token):
    query = "" if token is None else "?" + urlencode({"validationToken": token})
    status, _ = ask(stack[1], "POST", f"/api/graph/{'lifecycle' if lifecycle else 'notifications'}{query}", body)
    assert status in (200, 202, 400, 413)


def test_a_tenant_id_that_is_no_guid_is_refused_before_storage_and_named(stack):
    status, answer = ask(stack[1], "DELETE", "/api/tenants/a%2Fb")
    assert status == 400 and "tenant id in the path" in json.loads(answer)["error"]
    status, answer = ask(stack[1], "GET", f"/api/tenants/{uuid.uuid4()}/invoices/preview")
    assert status == 404 and "not onboarded" in json.loads(answer)["error"]
