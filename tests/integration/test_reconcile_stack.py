"""License reconciliation end to end: the Graph simulator's subscribedSkus against the ledger in
Azurite, through GET /api/tenants/{id}/reconciliation on ./dev host, ./dev reconcile, the CSV blob
of a close run, and a drift made by a dropped notification that the next delta repairs."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import logging

import pytest

from devtools import cmd_reconcile
from shared.billing.reconciliation import DRIFT, EXCLUDED_HOLDING_LICENSES, IDLE_UNITS, UNPRICED_IN_USE
from shared.messages import SYNC_QUEUE
from tests.integration.stack import add_client_tenant, call, running_stack, wait_for

DENTAL = "6d1f4b2a-8c3e-4a5f-9b7d-1e2c3a4b5c6d"
_LOOP = asyncio.new_event_loop()  # one loop for the module: the app's Graph clients keep their pool on it


def run(coroutine):
    return _LOOP.run_until_complete(coroutine)


@pytest.fixture(scope="module")
def stack(azurite):
    with running_stack(azurite.connection_string) as (sim, host, app):
        add_client_tenant(sim, DENTAL, "Contoso Dental", "contosodental.example")
        sim.add_sku(DENTAL, "SPB", prepaid=6)
        sim.add_sku(DENTAL, "EXCHANGESTANDARD", prepaid=1)
        users = {
            "ann": sim.create_user(DENTAL, "Ann Lee", "ann@contosodental.example", skus=["SPB"]),
            "bo": sim.create_user(DENTAL, "Bo Chen", "bo@contosodental.example", skus=["SPB", "EXCHANGESTANDARD"]),
            "gus": sim.create_user(DENTAL, "Gus Guest", user_type="Guest", skus=["SPB"]),
            "dee": sim.create_user(DENTAL, "Dee Away", "dee@contosodental.example", account_enabled=False,
                                   skus=["SPB"]),
            "svc": sim.create_user(DENTAL, "Svc Backup", "svc-backup@contosodental.example"),
            "nell": sim.create_user(DENTAL, "Nell Nolicense", "nell@contosodental.example"),
        }
        onboarding = {"plan": {"tenant_id": DENTAL, "name": "Contoso Dental", "currency": "USD",
                               "timezone": "America/New_York", "per_user_price": "45.00",
                               "sku_prices": {"SPB": "22.00"}, "exclude_upn_patterns": ["svc-*"]},
                      "billing_contacts": ["accounts@contosodental.example"]}
        status, _, body = call(host, "POST", "/api/tenants", onboarding)
        assert status == 201, body
        yield sim, host, app, users
    run(_LOOP.shutdown_asyncgens())


def settle(sim, host):
    sim.wait_deliveries()
    assert host.wait_idle(15)


def test_the_simulators_subscribed_skus_follow_the_users_licenses_and_the_prepaid_units(stack):
    sim, host, app, users = stack
    assert {s["skuPartNumber"]: (s["consumedUnits"], s["prepaidUnits"]["enabled"]) for s in sim.skus(DENTAL)} == {
        "SPB": (4, 6), "EXCHANGESTANDARD": (1, 1)}


def test_the_endpoint_reports_unpriced_licenses_idle_units_and_excluded_holders_as_json(stack):
    sim, host, app, users = stack
    settle(sim, host)
    status, headers, body = call(host, "GET", f"/api/tenants/{DENTAL}/reconciliation")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    data = json.loads(body)
    found = {(f["kind"], f["sku"], f["display_name"]): f for f in data["findings"]}
    assert set(found) == {(UNPRICED_IN_USE, "EXCHANGESTANDARD", "Bo Chen"), (IDLE_UNITS, "SPB", None),
                          (EXCLUDED_HOLDING_LICENSES, "SPB", "Gus Guest"), (EXCLUDED_HOLDING_LICENSES, "SPB", "Dee Away")}
    assert found[(IDLE_UNITS, "SPB", None)]["units"] == 2 and found[(IDLE_UNITS, "SPB", None)]["monthly_amount"] == "44.00"
    assert found[(EXCLUDED_HOLDING_LICENSES, "SPB", "Gus Guest")]["rule"] == "guest"
    assert found[(EXCLUDED_HOLDING_LICENSES, "SPB", "Dee Away")]["rule"] == "disabled"
    assert found[(UNPRICED_IN_USE, "EXCHANGESTANDARD", "Bo Chen")]["user_principal_name"] == "bo@contosodental.example"
    assert data["summary"] == ("Contoso Dental: 1 unpriced license in use (EXCHANGESTANDARD ×1), 2 idle units "
                               "(USD 44.00/month), 2 excluded users holding licenses, no drift.")


def test_the_endpoint_needs_the_function_key_knows_only_onboarded_tenants_and_can_answer_csv(stack):
    sim, host, app, users = stack
    assert call(host, "GET", f"/api/tenants/{DENTAL}/reconciliation", key=None)[0] == 401
    status, _, body = call(host, "GET", "/api/tenants/00000000-0000-4000-8000-000000000000/reconciliation")
    assert status == 404 and "not onboarded" in json.loads(body)["error"]
    status, headers, body = call(host, "GET", f"/api/tenants/{DENTAL}/reconciliation?format=csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert {r["kind"] for r in csv.DictReader(io.StringIO(body.decode("utf-8-sig")))} == {
        UNPRICED_IN_USE, IDLE_UNITS, EXCLUDED_HOLDING_LICENSES}


def test_dev_reconcile_prints_the_findings_in_plain_words_and_writes_the_csv(stack, tmp_path, capsys):
    sim, host, app, users = stack
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": dict(app.settings.values)}), encoding="utf-8")
    report = tmp_path / "findings.csv"
    assert cmd_reconcile.main(["--tenant", DENTAL, "--csv", str(report), "--settings", str(settings)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Contoso Dental: 1 unpriced license in use (EXCHANGESTANDARD ×1)")
    assert "  - Gus Guest (" in out and "a guest account" in out and "Wrote 4 finding(s)" in out
    assert len(list(csv.DictReader(io.StringIO(report.read_text(encoding="utf-8-sig"))))) == 4
    assert cmd_reconcile.main(["--tenant", "00000000-0000-4000-8000-000000000000", "--settings", str(settings)]) == 1
    assert "is not onboarded" in capsys.readouterr().err


def test_a_close_run_stores_the_findings_csv_beside_the_invoices(stack):
    sim, host, app, users = stack
    results = run(app.reconciler.reconcile_all())   # other test modules' tenants share this Azurite: unknown to this simulator
    dental = next(r for r in results if r.tenant_id == DENTAL)
    assert dental.error is None and len(dental.findings) == 4
    assert all(r.error for r in results if r.tenant_id != DENTAL)
    name = app.reconciler.store_findings_csv("2026-10", "run-42", results)
    assert name == "2026-10/reconciliation-run-42.csv"
    blob = app.storage.container(app.settings.get("INVOICE_CONTAINER")).download_blob(name).readall()
    rows = list(csv.DictReader(io.StringIO(blob.decode("utf-8-sig"))))
    assert [r["kind"] for r in rows if r["tenant_id"] == DENTAL] == [
        UNPRICED_IN_USE, IDLE_UNITS, EXCLUDED_HOLDING_LICENSES, EXCLUDED_HOLDING_LICENSES]
    assert {r["kind"] for r in rows if r["tenant_id"] != DENTAL} <= {"error"}


def test_a_dropped_notification_shows_as_drift_with_a_warning_until_the_daily_delta_repairs_it(stack, caplog):
    sim, host, app, users = stack
    settle(sim, host)
    sim.drop_next_notifications(DENTAL, 1)
    sim.assign_license(DENTAL, users["nell"], "SPB")   # the ledger never hears of it
    settle(sim, host)
    caplog.set_level(logging.WARNING, logger="prorata.reconcile")
    drifted = run(app.reconciler.reconcile_tenant(DENTAL))
    [drift] = drifted.of_kind(DRIFT)
    assert (drift.sku, drift.units, drift.monthly_amount is not None) == ("SPB", 1, True)
    assert drifted.summary_line().endswith("drift on SPB (Graph 5, ledger 4).")
    assert any(r.levelno == logging.WARNING and DENTAL in r.getMessage() and "SKU SPB" in r.getMessage()
               for r in caplog.records)

    # What the daily timer queues for each active tenant (only this one: other modules' tenants share Azurite).
    app.enqueue(SYNC_QUEUE, {"tenant_id": DENTAL, "reason": "daily"})
    wait_for(lambda: "SPB" in app.ledger.current_states(DENTAL)[users["nell"]].skus, what="Nell's license in the ledger")
    repaired = run(app.reconciler.reconcile_tenant(DENTAL))
    assert not repaired.has_drift and repaired.summary_line().endswith("no drift.")
    assert [f.units for f in repaired.of_kind(IDLE_UNITS)] == [1]
