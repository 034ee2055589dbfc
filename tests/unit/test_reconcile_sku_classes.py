"""Reconciliation tells seats from free and company-wide SKUs, and names lapsing subscriptions."""
from __future__ import annotations

from datetime import datetime, timezone

from shared.billing import Observation, parse_plan
from shared.billing.reconciliation import (COMPANY, FREE, IDLE_UNITS, LAPSING, SEATS, UNPRICED_IN_USE, findings_csv,
                                           reconcile)
from shared.graph.gateway import SkuInfo

AT = datetime(2026, 11, 3, 9, 30, tzinfo=timezone.utc)
TENANT = "8f2c6a1e-4b7d-4c1a-9e55-2d0f3b7a9c10"
PLAN = parse_plan({"tenant_id": TENANT, "name": "Contoso Dental", "currency": "USD", "timezone": "UTC",
                   "per_user_price": "45.00", "sku_prices": {"SPB": "22.00", "EXCHANGESTANDARD": "4.00"}})


def holder(name: str, *skus: str) -> Observation:
    return Observation(AT, name.lower(), f"{name.lower()}@contoso.example", name, "Member", True, skus)


def test_free_and_company_wide_skus_are_never_idle_seats_nor_unbilled_licences():
    skus = [SkuInfo("id-flow", "FLOW_FREE", 2, 10_000),
            SkuInfo("id-viral", "SOME_NEW_VIRAL_OFFER", 0, 1_000_000),
            SkuInfo("id-aad", "AAD_PREMIUM_P2_COMPANY", 0, 1, applies_to="Company"),
            SkuInfo("id-spb", "SPB", 1, 3)]
    result = reconcile(PLAN, skus, [holder("Ann", "SPB", "FLOW_FREE"), holder("Bo", "FLOW_FREE")], at=AT)

    categories = {s.sku: s.category for s in result.skus}
    assert categories == {"FLOW_FREE": FREE, "SOME_NEW_VIRAL_OFFER": FREE, "AAD_PREMIUM_P2_COMPANY": COMPANY,
                          "SPB": SEATS}
    assert [(f.sku, f.units) for f in result.of_kind(IDLE_UNITS)] == [("SPB", 2)]
    assert result.of_kind(UNPRICED_IN_USE) == []
    assert "2 idle units (USD 44.00/month)" in result.summary_line()


def test_a_subscription_in_warning_or_suspended_is_named_with_what_users_are_about_to_lose():
    skus = [SkuInfo("id-exo", "EXCHANGESTANDARD", 5, 0, capability_status="Warning", warning_units=5),
            SkuInfo("id-spb", "SPB", 2, 0, capability_status="Suspended", suspended_units=2),
            SkuInfo("id-e3", "SPE_E3", 1, 1)]
    users = [holder(f"U{n}", "EXCHANGESTANDARD") for n in range(5)] + [holder("V1", "SPB"), holder("V2", "SPB")]
    result = reconcile(PLAN, skus, users, at=AT)

    lapsing = {f.sku: f for f in result.of_kind(LAPSING)}
    assert lapsing["EXCHANGESTANDARD"].detail == "EXCHANGESTANDARD: 5 licences in Warning: renew before users lose them."
    assert lapsing["EXCHANGESTANDARD"].amount_text == "20.00"
    assert "Suspended" in lapsing["SPB"].detail and lapsing["SPB"].units == 2
    assert "SPE_E3" not in lapsing
    assert "EXCHANGESTANDARD: 5 licences in Warning: renew before users lose them." in result.summary_line()
    assert b"lapsing_subscription" in findings_csv([result])
