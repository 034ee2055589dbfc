"""Plan versions over HTTP (function key) and `./dev tenants show|plan`, against Azurite and the
development host serving the real function_app.py."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from shared.billing import Period, parse_plan
from shared.storage.invoices import InvoiceStore
from shared.tenants import OFFBOARDED, Tenant
from tests.integration.stack import call, running_stack


@pytest.fixture(scope="module")
def stack(azurite):
    with running_stack(azurite.connection_string) as (sim, host, app):
        yield sim, host, app


@pytest.fixture
def client(stack):
    """A client whose October 2026 is invoiced (INV-TEST-…); offboarded after the test."""
    _, _, app = stack
    tenant_id = str(uuid.uuid4())
    plan = parse_plan({"tenant_id": tenant_id, "name": "Contoso Dental", "currency": "USD", "timezone": "UTC",
                       "per_user_price": "45.00", "sku_prices": {"SPB": "22.00"}})
    app.tenants.save(Tenant(tenant_id=tenant_id, plan=plan, billing_contacts=("ap@contoso.example",),
                            onboarded_at=datetime(2026, 9, 1, tzinfo=timezone.utc)))
    number = f"INV-TEST-{tenant_id[:8]}"
    InvoiceStore(app.storage).create(tenant_id, Period(2026, 10), {"step": "emailed", "status": "done", "number": number})
    yield tenant_id, number
    app.tenants.update(tenant_id, status=OFFBOARDED)


def test_a_plan_version_is_added_shown_and_deleted_over_http(stack, client):
    _, host, _ = stack
    tenant_id, number = client
    base = f"/api/tenants/{tenant_id}"
    status, _, body = call(host, "POST", base + "/plan/versions",
                           {"effective_from": "2099-01-01", "per_user_price": "49.00", "sku_prices": {"SPB": "24.00"}})
    assert status == 201, body
    assert json.loads(body)["message"] == ("Contoso Dental: from 01 January 2099, per-user fee 49.00 USD; "
                                           "licenses billed: SPB 24.00 USD.")
    status, _, body = call(host, "GET", base)
    shown = json.loads(body)
    assert status == 200 and shown["status"] == "active" and shown["billing_contacts"] == ["ap@contoso.example"]
    assert shown["plan"]["versions"] == [{"effective_from": "2099-01-01", "per_user_price": "49.00",
                                          "sku_prices": {"SPB": "24.00"}}]
    status, _, body = call(host, "DELETE", base + "/plan/versions/2099-01-01")
    assert status == 200, body
    assert json.loads(call(host, "GET", base)[2])["plan"]["versions"] == []


def test_a_version_inside_an_invoiced_month_is_409_naming_the_invoice_and_nothing_changes(stack, client):
    _, host, _ = stack
    tenant_id, number = client
    status, _, body = call(host, "POST", f"/api/tenants/{tenant_id}/plan/versions",
                           {"effective_from": "2026-10-15", "per_user_price": "49.00"})
    assert status == 409 and number in json.loads(body)["error"]
    assert json.loads(call(host, "GET", f"/api/tenants/{tenant_id}")[2])["plan"]["versions"] == []


def test_bad_requests_answer_400_404_and_409_naming_what_is_wrong(stack, client):
    _, host, _ = stack
    tenant_id, _ = client
    versions = f"/api/tenants/{tenant_id}/plan/versions"
    cases = [
        ("POST", versions, None, b'{"effective_from": "2026-13-01", "per_user_price": "1"}', 400, "effective_from"),
        ("POST", versions, None, b'{"effective_from": "2099-01-01", "currency": "EUR"}', 400, "currency"),
        ("POST", versions, None, b'{"effective_from": "2099-01-01", "per_user_price": "8.25e30"}', 400, "per_user_price"),
        ("POST", versions, None, b"[" * 50_000, 400, "nested more than"),
        ("POST", versions, None, b"\xff\xfe", 400, "not UTF-8"),
        ("POST", versions, None, b"{oops", 400, "not valid JSON"),
        ("POST", f"/api/tenants/{uuid.uuid4()}/plan/versions", {"effective_from": "2099-01-01", "per_user_price": "1"},
         None, 404, "not onboarded"),
        ("GET", f"/api/tenants/{uuid.uuid4()}", None, None, 404, "not onboarded"),
        ("DELETE", versions + "/2099-02-30", None, None, 400, "effective_from"),
        ("DELETE", versions + "/2099-02-01", None, None, 404, "no plan version"),
    ]
    for method, path, body, raw, expected, says in cases:
        status, _, answer = call(host, method, path, body, raw=raw)
        assert status == expected and says in json.loads(answer)["error"], (path, raw, status, answer)
    assert call(host, "POST", versions, {"effective_from": "2026-11-02", "per_user_price": "46.00"})[0] == 201
    status, _, answer = call(host, "DELETE", versions + "/2026-11-02")
    assert status == 409 and "already in force" in json.loads(answer)["error"]
    assert call(host, "GET", f"/api/tenants/{tenant_id}", key=None)[0] == 401
    _, number = client  # a row without a computed invoice or PDF: refused in words, never a 500
    for action, body in (("void", {"reason": "wrong"}), ("resend", {"to": "a@b.example"}), ("reissue", {})):
        status, _, answer = call(host, "POST", f"/api/invoices/{number}/{action}", body)
        assert status == 409 and json.loads(answer)["error"], answer


def test_dev_tenants_show_and_plan_change_the_same_plan(stack, client, tmp_path, capsys):
    from devtools import cmd_tenants

    _, _, app = stack
    tenant_id, number = client
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": dict(app.settings.values)}))
    version = tmp_path / "version.json"
    version.write_text(json.dumps({"effective_from": "2099-03-01", "sku_prices": {"SPB": "25.00"}}))
    common = ["--tenant", tenant_id, "--settings", str(settings)]
    assert cmd_tenants.main(["plan", *common, "--add-version", str(version)]) == 0
    assert "Contoso Dental: from 01 March 2099, licenses billed: SPB 25.00 USD." in capsys.readouterr().out
    assert cmd_tenants.main(["show", *common]) == 0
    assert json.loads(capsys.readouterr().out)["plan"]["versions"][0]["effective_from"] == "2099-03-01"

    version.write_text(json.dumps({"effective_from": "2026-10-31", "per_user_price": "1.00"}))
    assert cmd_tenants.main(["plan", *common, "--add-version", str(version)]) == 1
    assert number in capsys.readouterr().err
    version.write_text(json.dumps({"effective_from": "2099-04-01", "tax_rate": "8.25"}))
    assert cmd_tenants.main(["plan", *common, "--add-version", str(version)]) == 2
    err = capsys.readouterr().err
    assert "field 'tax_rate'" in err and len(err.strip().splitlines()) == 1
    assert cmd_tenants.main(["plan", *common, "--remove-version", "2099-03-01"]) == 0
    assert "is deleted" in capsys.readouterr().out


HOSTILE = st.one_of(
    st.binary(max_size=64), st.just(b"[" * 20_000), st.just(b"\xff\xfe"), st.just(b"null"),
    st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(
        st.sampled_from(["effective_from", "per_user_price", "sku_prices", "tax_rate", "period", "description",
                         "amount", "currency", "reason", "to", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.text(max_size=30),
                  st.sampled_from(["2026-10-15", "9999-12-31", "2026-13", "8.25", "1e26", "1e-99999999", "EUR",
                                   "A" * 300, "2099-01-01", "-5.00"]),
                  st.lists(st.text(max_size=3), max_size=3), st.dictionaries(st.text(max_size=5), st.text(max_size=5),
                                                                             max_size=2)), max_size=4)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(["plan/versions", "charges", "corrections", "invoice-void", "invoice-resend"]),
       body=HOSTILE)
def test_hostile_bodies_on_the_new_routes_get_a_clear_answer_never_a_5xx(stack, client, route, body):
    _, host, _ = stack
    tenant_id, number = client
    path = {"invoice-void": f"/api/invoices/{number}/void", "invoice-resend": f"/api/invoices/{number}/resend"
            }.get(route, f"/api/tenants/{tenant_id}/{route}")
    began = time.monotonic()
    status, _, answer = call(host, "POST", path, raw=body)
    assert status < 500, (path, body, answer)
    assert time.monotonic() - began < 5
    if status >= 400:
        assert json.loads(answer)["error"]
