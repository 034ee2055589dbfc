"""License reconciliation, the pure part: Graph's subscribed SKUs against the ledger's states under
a plan (no Azure, no Graph), plus the service around it with stand-in collaborators."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from shared.billing import Observation, parse_plan
from shared.graph.gateway import GraphError, SkuInfo
from shared.billing.reconciliation import (DRIFT, EXCLUDED_HOLDING_LICENSES, IDLE_UNITS, UNPRICED_IN_USE, Reconciliation,
                                           findings_csv, reconcile)
from shared.errors import TenantNotOnboarded
from shared.services.reconcile import Reconciler
from shared.storage.archive import findings_path as findings_blob_name
from shared.tenants import Tenant

AT = datetime(2026, 11, 3, 9, 30, tzinfo=timezone.utc)
TENANT = "8f2c6a1e-4b7d-4c1a-9e55-2d0f3b7a9c10"
SPB_ID = "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46"
EXO_ID = "4b9405b0-7788-4568-add1-99614e613b69"


def plan(**changes):
    data = {"tenant_id": TENANT, "name": "Contoso Dental", "currency": "USD", "timezone": "America/New_York",
            "per_user_price": "45.00", "sku_prices": {"SPB": "22.00"}, "exclude_upn_patterns": ["svc-*"]}
    data.update(changes)
    return parse_plan(data)


def sku(part, consumed, enabled, sku_id=None):
    return SkuInfo(sku_id or {"SPB": SPB_ID, "EXCHANGESTANDARD": EXO_ID}.get(part, f"id-{part}"), part, consumed, enabled)


def user(name, upn=None, *skus, user_type="Member", enabled=True, deleted=False, user_id=None):
    return Observation(AT, user_id or name.lower().replace(" ", "-"), upn or f"{name.split()[0].lower()}@contoso.example",
                       name, user_type, enabled, tuple(skus), deleted)


def kinds(result, kind):
    return result.of_kind(kind)


# --- the example of the brief -----------------------------------------------------------------

def test_the_summary_line_names_unpriced_licenses_idle_units_with_their_cost_exclusions_and_drift():
    result = reconcile(plan(), [sku("SPB", 2, 5), sku("EXCHANGESTANDARD", 1, 1)],
                       [user("Ann Lee", None, "SPB"), user("Svc Backup", "svc-backup@contoso.example", "SPB",
                                                           "EXCHANGESTANDARD")], at=AT)
    assert result.summary_line() == ("Contoso Dental: 1 unpriced license in use (EXCHANGESTANDARD ×1), "
                                     "3 idle units (USD 66.00/month), 1 excluded user holding licenses, no drift.")


def test_a_tenant_with_nothing_to_report_says_so_in_one_line():
    result = reconcile(plan(), [sku("SPB", 1, 1)], [user("Ann Lee", None, "SPB")], at=AT)
    assert result.findings == ()
    assert result.summary_line() == ("Contoso Dental: no unpriced license in use, no idle units, "
                                     "no excluded user holding licenses, no drift.")


# --- unpriced licenses in use -------------------------------------------------------------------

def test_an_unpriced_sku_in_use_lists_each_holder_by_name_and_upn_with_no_price():
    result = reconcile(plan(), [sku("SPB", 0, 0), sku("EXCHANGESTANDARD", 2, 2)],
                       [user("Bo Chen", None, "EXCHANGESTANDARD"), user("Ann Lee", None, "EXCHANGESTANDARD", "SPB")],
                       at=AT)
    unpriced = kinds(result, UNPRICED_IN_USE)
    assert [(f.display_name, f.user_principal_name, f.sku, f.units) for f in unpriced] == [
        ("Ann Lee", "ann@contoso.example", "EXCHANGESTANDARD", 1), ("Bo Chen", "bo@contoso.example", "EXCHANGESTANDARD", 1)]
    assert all(f.monthly_amount is None and f.amount_text == "" for f in unpriced)
    assert "no price in the plan" in unpriced[0].detail and "Ann Lee (ann@contoso.example)" in unpriced[0].detail
    assert unpriced[0].tenant_id == TENANT and unpriced[0].tenant_name == "Contoso Dental"
    assert unpriced[0].currency == "USD" and unpriced[0].kind == "unpriced_in_use"


def test_a_sku_priced_by_its_guid_or_in_another_case_is_not_unpriced():
    result = reconcile(plan(sku_prices={SPB_ID.upper(): "22.00", "exchangestandard": "4.00"}),
                       [sku("SPB", 1, 1), sku("EXCHANGESTANDARD", 1, 1)], [user("Ann Lee", None, "SPB", "EXCHANGESTANDARD")],
                       at=AT)
    assert result.findings == ()
    assert {s.sku: s.price for s in result.skus} == {"SPB": Decimal("22.00"), "EXCHANGESTANDARD": Decimal("4.00")}


def test_unpriced_licenses_graph_counts_beyond_the_ledger_are_reported_without_a_user():
    result = reconcile(plan(), [sku("VISIOCLIENT", 3, 3)], [user("Ann Lee", None, "VISIOCLIENT")], at=AT)
    unpriced = kinds(result, UNPRICED_IN_USE)
    assert [(f.display_name, f.units) for f in unpriced] == [("Ann Lee", 1), ("", 2)]
    assert "2 more VISIOCLIENT licenses in use than the ledger records" in unpriced[1].detail
    assert result.summary_line().startswith("Contoso Dental: 3 unpriced licenses in use (VISIOCLIENT ×3)")


# --- idle units ---------------------------------------------------------------------------------

def test_idle_units_are_reported_per_sku_with_their_monthly_cost_at_the_plans_price():
    result = reconcile(plan(), [sku("SPB", 2, 5), sku("EXCHANGESTANDARD", 0, 4)], [], at=AT)
    idle = {f.sku: f for f in kinds(result, IDLE_UNITS)}
    assert idle["SPB"].units == 3 and idle["SPB"].monthly_amount == Decimal("66.00")
    assert idle["SPB"].detail == "3 of 5 SPB licenses bought are not assigned to anyone (USD 66.00 a month at the plan's price)."
    assert idle["EXCHANGESTANDARD"].units == 4 and idle["EXCHANGESTANDARD"].monthly_amount is None
    assert "no price in the plan" in idle["EXCHANGESTANDARD"].detail
    assert "7 idle units (USD 66.00/month, 4 of them with no price in the plan)" in result.summary_line()


def test_idle_units_with_no_price_at_all_say_so_in_the_summary():
    result = reconcile(plan(sku_prices={}), [sku("EXCHANGESTANDARD", 0, 1)], [], at=AT)
    assert "1 idle unit (no price in the plan)" in result.summary_line()


def test_no_idle_units_when_more_are_consumed_than_enabled():
    result = reconcile(plan(), [sku("SPB", 3, 2)], [user(n, None, "SPB") for n in ("A A", "B B", "C C")], at=AT)
    assert kinds(result, IDLE_UNITS) == [] and result.skus[0].idle_units == 0


@pytest.mark.parametrize("currency, price, expected", [("JPY", "1200", "3600"), ("KWD", "1.2345", "3.704"),
                                                       ("USD", "22.005", "66.02")])
def test_amounts_at_stake_are_rounded_half_up_to_the_currencys_minor_units(currency, price, expected):
    result = reconcile(plan(currency=currency, sku_prices={"SPB": price}), [sku("SPB", 0, 3)], [], at=AT)
    finding = kinds(result, IDLE_UNITS)[0]
    assert finding.amount_text == expected and finding.currency == currency
    assert f"({currency} {expected}/month)" in result.summary_line()


# --- users excluded from the per-user fee while holding licenses --------------------------------

@pytest.mark.parametrize("holder, rule, words", [
    (user("Gus Guest", "gus_x.example#EXT#@contoso.example", "SPB", user_type="Guest"), "guest", "a guest account"),
    (user("Dee Disabled", None, "SPB", enabled=False), "disabled", "a disabled account"),
    (user("Svc Backup", "SVC-Backup@contoso.example", "SPB"), "UPN matches svc-*", "exclusion pattern svc-*"),
], ids=["guest", "disabled", "upn-pattern"])
def test_a_license_holder_excluded_by_a_plan_rule_is_reported_with_that_rule_and_the_per_user_price(holder, rule, words):
    result = reconcile(plan(), [sku("SPB", 1, 1)], [holder], at=AT)
    [finding] = kinds(result, EXCLUDED_HOLDING_LICENSES)
    assert finding.rule == rule and words in finding.detail
    assert (finding.display_name, finding.user_principal_name) == (holder.display_name, holder.user_principal_name)
    assert finding.monthly_amount == Decimal("45.00") and finding.units == 1 and finding.sku == "SPB"
    assert "USD 45.00 a month at stake" in finding.detail


def test_require_license_never_excludes_a_license_holder_so_it_yields_no_finding():
    result = reconcile(plan(require_license=True), [sku("SPB", 1, 2)],
                       [user("Ann Lee", None, "SPB"), user("Nell Nolicense")], at=AT)
    assert kinds(result, EXCLUDED_HOLDING_LICENSES) == []


def test_an_excluded_user_without_licenses_is_no_finding():
    result = reconcile(plan(), [], [user("Gus Guest", None, user_type="Guest"), user("Svc Idle", "svc-idle@contoso.example")],
                       at=AT)
    assert result.findings == ()


def test_rules_that_the_plan_relaxes_exclude_nobody():
    holders = [user("Gus Guest", None, "SPB", user_type="Guest"), user("Dee Disabled", None, "SPB", enabled=False)]
    result = reconcile(plan(include_guests=True, include_disabled=True), [sku("SPB", 2, 2)], holders, at=AT)
    assert kinds(result, EXCLUDED_HOLDING_LICENSES) == []


def test_without_a_per_user_fee_nobody_is_kept_out_of_it():
    result = reconcile(plan(per_user_price=None), [sku("SPB", 1, 1)], [user("Gus Guest", None, "SPB", user_type="Guest")],
                       at=AT)
    assert result.findings == ()


def test_an_excluded_users_finding_lists_every_sku_they_hold():
    result = reconcile(plan(), [sku("SPB", 1, 1), sku("EXCHANGESTANDARD", 1, 1, )],
                       [user("Gus Guest", None, "SPB", "EXCHANGESTANDARD", user_type="Guest")], at=AT)
    assert kinds(result, EXCLUDED_HOLDING_LICENSES)[0].sku == "EXCHANGESTANDARD, SPB"
    assert "2 excluded" not in result.summary_line() and "1 excluded user holding licenses" in result.summary_line()


# --- drift --------------------------------------------------------------------------------------

def test_graph_counting_more_assignments_than_the_ledger_is_drift_with_the_unbilled_amount():
    result = reconcile(plan(), [sku("SPB", 3, 3)], [user("Ann Lee", None, "SPB"), user("Bo Chen", None, "SPB")], at=AT)
    [drift] = kinds(result, DRIFT)
    assert (drift.sku, drift.units, drift.monthly_amount) == ("SPB", 1, Decimal("22.00"))
    assert "Graph counts 3 SPB licenses assigned, the ledger 2" in drift.detail
    assert "not reached the ledger" in drift.detail and "next delta sync" in drift.detail
    assert result.has_drift and result.summary_line().endswith("drift on SPB (Graph 3, ledger 2).")


def test_the_ledger_keeping_an_assignment_graph_no_longer_has_is_drift_too():
    result = reconcile(plan(), [sku("EXCHANGESTANDARD", 0, 1)], [user("Ann Lee", None, "EXCHANGESTANDARD")], at=AT)
    [drift] = kinds(result, DRIFT)
    assert drift.units == 1 and drift.monthly_amount is None and "no price in the plan" in drift.detail
    assert "the ledger still records 1 assignment that Graph no longer has" in drift.detail


def test_a_sku_the_ledger_holds_but_graph_does_not_list_is_drift():
    result = reconcile(plan(), [], [user("Ann Lee", None, "SPB")], at=AT)
    assert [(s.sku, s.sku_id, s.consumed_units, s.ledger_units) for s in result.skus] == [("SPB", None, 0, 1)]
    assert [f.kind for f in result.findings] == [DRIFT]


def test_deleted_users_hold_nothing_and_a_ledger_sku_named_by_its_id_matches_its_part_number():
    result = reconcile(plan(), [sku("SPB", 1, 1)],
                       {"a": user("Ann Lee", None, SPB_ID.upper()), "z": user("Zed Gone", None, "SPB", deleted=True)}, at=AT)
    assert result.findings == ()
    assert [(s.sku, s.ledger_units) for s in result.skus] == [("SPB", 1)]


# --- the result as JSON and CSV -----------------------------------------------------------------

def mixed():
    return reconcile(plan(), [sku("SPB", 3, 5), sku("EXCHANGESTANDARD", 1, 1)],
                     [user("=Eve Formula", "eve@contoso.example", "SPB", "EXCHANGESTANDARD", user_type="Guest"),
                      user("Ann Lee", None, "SPB")], at=AT)


def test_the_json_holds_every_finding_with_money_as_strings_and_the_summary():
    data = json.loads(json.dumps(mixed().to_json()))
    assert data["tenant_id"] == TENANT and data["at"] == "2026-11-03T09:30:00Z" and data["drift"] is True
    assert [f["kind"] for f in data["findings"]] == [UNPRICED_IN_USE, IDLE_UNITS, EXCLUDED_HOLDING_LICENSES, DRIFT]
    assert data["findings"][1]["monthly_amount"] == "44.00" and data["findings"][0]["monthly_amount"] is None
    assert {s["sku"]: s["price"] for s in data["skus"]} == {"EXCHANGESTANDARD": None, "SPB": "22.00"}
    assert data["summary"] == mixed().summary_line()


def test_the_csv_has_a_row_per_finding_and_never_starts_a_cell_with_a_formula():
    other = reconcile(plan(tenant_id="3a9d1b44-7c2e-4f1d-b6a8-5e0c9f2d7b31", name="Fabrikam"), [sku("SPB", 0, 1)], [],
                      at=AT)
    data = findings_csv([mixed(), other])
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n" in data
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(rows) == len(mixed().findings) + 1
    unpriced = rows[0]
    assert (unpriced["kind"], unpriced["sku"], unpriced["user"], unpriced["monthly_amount"]) == (
        UNPRICED_IN_USE, "EXCHANGESTANDARD", "'=Eve Formula", "")
    assert unpriced["detail"].startswith("'=Eve Formula (eve@contoso.example) holds EXCHANGESTANDARD")
    assert rows[2]["rule"] == "guest" and rows[2]["monthly_amount"] == "45.00" and rows[2]["currency"] == "USD"
    assert rows[-1]["tenant"] == "Fabrikam" and rows[-1]["kind"] == IDLE_UNITS and rows[-1]["units"] == "1"


def test_a_tenant_that_could_not_be_reconciled_says_so_in_the_summary_and_the_csv():
    failed = Reconciliation(TENANT, "Contoso Dental", "USD", AT, error="Graph answered 403 Authorization_RequestDenied")
    assert failed.summary_line() == "Contoso Dental: could not be reconciled (Graph answered 403 Authorization_RequestDenied)."
    rows = list(csv.DictReader(io.StringIO(findings_csv([failed]).decode("utf-8-sig"))))
    assert [(r["kind"], r["tenant"]) for r in rows] == [("error", "Contoso Dental")]


def test_the_csv_blob_name_is_the_period_and_the_run_and_nothing_else():
    assert findings_blob_name("2026-10", "run-20261101.1") == "2026-10/reconciliation-run-20261101.1.csv"
    for period, run_id in (("2026-13", "r"), ("26-10", "r"), ("2026-10", "../x"), ("2026-10", "a/b"), ("2026-10", "")):
        with pytest.raises(ValueError):
            findings_blob_name(period, run_id)


# --- the service, with stand-ins for Graph, the ledger and the tenants --------------------------

class FakeGraph:
    def __init__(self, skus, failing=()):
        self.skus, self.failing, self.calls = skus, set(failing), []

    async def subscribed_skus(self, tenant_id):
        self.calls.append(tenant_id)
        if tenant_id in self.failing:
            raise GraphError(403, "Authorization_RequestDenied", "consent withdrawn")
        return self.skus[tenant_id]


class FakeLedger:
    def __init__(self, states):
        self.states = states

    def current_states(self, tenant_id):
        return {s.user_id: s for s in self.states.get(tenant_id, [])}


class FakeTenants:
    def __init__(self, tenants):
        self.tenants = {t.tenant_id: t for t in tenants}

    def get(self, tenant_id):
        return self.tenants.get(tenant_id)

    def all(self, *, active_only=False):
        return [t for t in self.tenants.values() if t.status == "active" or not active_only]


class FakeApp(Reconciler):
    def __init__(self, graph, ledger, tenants):
        super().__init__(tenants=tenants, ledger=ledger, graph=lambda: graph, archive=lambda: None, clock=lambda: AT)
        self.graph = graph


FABRIKAM = "3a9d1b44-7c2e-4f1d-b6a8-5e0c9f2d7b31"
LITWARE = "5b1e7c2d-9a3f-4e8b-a1c6-7d2f0e9b8a45"


def fake_app(failing=()):
    tenants = [Tenant(TENANT, plan(), ("a@contoso.example",)),
               Tenant(FABRIKAM, plan(tenant_id=FABRIKAM, name="Fabrikam"), ("a@fabrikam.example",)),
               Tenant(LITWARE, plan(tenant_id=LITWARE, name="Litware"), ("a@litware.example",), status="offboarded")]
    graph = FakeGraph({TENANT: [sku("SPB", 2, 2)], FABRIKAM: [sku("SPB", 1, 1)], LITWARE: []}, failing)
    ledger = FakeLedger({TENANT: [user("Ann Lee", None, "SPB")], FABRIKAM: [user("Femi Ade", None, "SPB")]})
    return FakeApp(graph, ledger, FakeTenants(tenants))


def test_reconcile_tenant_logs_a_warning_naming_the_tenant_and_the_drifting_sku(caplog):
    caplog.set_level(logging.INFO, logger="prorata.reconcile")
    result = asyncio.run(fake_app().reconcile_tenant(TENANT))
    assert result.has_drift and result.at == AT
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and TENANT in warnings[0] and "Contoso Dental" in warnings[0] and "SKU SPB" in warnings[0]
    assert any("Reconciliation: Contoso Dental:" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_reconcile_tenant_refuses_a_tenant_that_is_not_onboarded():
    with pytest.raises(TenantNotOnboarded, match="is not onboarded"):
        asyncio.run(fake_app().reconcile_tenant("00000000-0000-0000-0000-000000000000"))


def test_reconcile_all_covers_active_tenants_by_name_and_one_failure_does_not_stop_the_others(caplog):
    app = fake_app(failing={TENANT})
    results = asyncio.run(app.reconcile_all())
    assert [(r.tenant_name, r.error is None) for r in results] == [("Contoso Dental", False), ("Fabrikam", True)]
    assert "consent withdrawn" in results[0].summary_line()
    assert LITWARE not in app.graph.calls
    assert any(r.levelno == logging.ERROR and TENANT in r.getMessage() for r in caplog.records)
