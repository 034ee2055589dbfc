"""The reconciliation reports priced SKUs whose invoices would show a bare part number."""
from __future__ import annotations

from datetime import datetime, timezone

from shared.billing import Observation, parse_plan
from shared.billing.reconciliation import UNNAMED_PRODUCT, reconcile
from shared.graph.gateway import SkuInfo
from shared.invoicing.products import product_name

AT = datetime(2026, 11, 3, 9, 30, tzinfo=timezone.utc)


def plan(**extra):
    return parse_plan({"tenant_id": "t-1", "name": "Contoso Dental", "currency": "USD", "timezone": "UTC",
                       "per_user_price": "45.00", "sku_prices": {"SPB": "22.00", "CONTOSO_BACKUP_1TB": "4.00"},
                       **extra})


def holder(name, *skus):
    return Observation(AT, name.lower(), f"{name.lower()}@contoso.example", name, "Member", True, tuple(skus))


SKUS = [SkuInfo("cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46", "SPB", 1, 1), SkuInfo("id-backup", "CONTOSO_BACKUP_1TB", 1, 1)]


def test_a_held_priced_sku_the_catalog_cannot_name_is_a_finding_that_says_how_to_name_it():
    result = reconcile(plan(), SKUS, [holder("Ann", "SPB", "CONTOSO_BACKUP_1TB")], at=AT, product_name=product_name)
    [finding] = result.of_kind(UNNAMED_PRODUCT)
    assert finding.sku == "CONTOSO_BACKUP_1TB" and finding.units == 1 and finding.monthly_amount is None
    assert "item_names" in finding.detail and "CONTOSO_BACKUP_1TB" in finding.detail
    assert result.summary_line().endswith("1 product without a name on invoices (CONTOSO_BACKUP_1TB).")


def test_a_sku_the_plan_names_or_nobody_holds_is_no_finding():
    named = plan(item_names={"CONTOSO_BACKUP_1TB": "Cloud backup 1 TB"})
    held = [holder("Ann", "SPB", "CONTOSO_BACKUP_1TB")]
    assert reconcile(named, SKUS, held, at=AT, product_name=product_name).of_kind(UNNAMED_PRODUCT) == []
    assert reconcile(plan(), SKUS, [holder("Ann", "SPB")], at=AT, product_name=product_name).of_kind(UNNAMED_PRODUCT) == []
