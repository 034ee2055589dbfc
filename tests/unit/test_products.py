"""Product names: the catalog of Microsoft SKUs and the name an invoice gives each item."""
from __future__ import annotations

import csv
import io

import pytest

from shared.billing import parse_plan
from shared.invoicing.products import (
    CATALOG_PATH, GUID, CatalogError, catalog, item_name, product_name, read_catalog, unnamed_items,
)


def plan(**extra):
    return parse_plan({"tenant_id": "t-1", "name": "Contoso", "currency": "EUR", "timezone": "UTC",
                       "per_user_price": "45.00", "sku_prices": {"SPB": "22.00", "MADE_UP_SKU": "1.00"},
                       **extra})


def test_the_catalog_has_no_duplicate_part_number_or_guid_and_every_guid_is_well_formed():
    with open(CATALOG_PATH, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    parts = [row["string_id"].lower() for row in rows]
    guids = [row["guid"] for row in rows]
    assert len(set(parts)) == len(parts), sorted({p for p in parts if parts.count(p) > 1})
    assert len(set(guids)) == len(guids), sorted({g for g in guids if guids.count(g) > 1})
    assert not [g for g in guids if not GUID.match(g)]
    assert all(row["product_name"].strip() for row in rows)
    assert len(read_catalog(open(CATALOG_PATH, encoding="utf-8", newline=""))) == len(rows)


def test_the_catalog_names_what_an_msp_resells_to_businesses():
    expected = {
        "O365_BUSINESS_ESSENTIALS": "Microsoft 365 Business Basic",
        "O365_BUSINESS_PREMIUM": "Microsoft 365 Business Standard",
        "SPB": "Microsoft 365 Business Premium",
        "SPE_E3": "Microsoft 365 E3", "SPE_E5": "Microsoft 365 E5", "SPE_F1": "Microsoft 365 F3",
        "M365_F1_COMM": "Microsoft 365 F1",
        "STANDARDPACK": "Office 365 E1", "ENTERPRISEPACK": "Office 365 E3", "ENTERPRISEPREMIUM": "Office 365 E5",
        "EXCHANGESTANDARD": "Exchange Online (Plan 1)", "EXCHANGEENTERPRISE": "Exchange Online (Plan 2)",
        "Teams_Ess": "Microsoft Teams Essentials", "AAD_PREMIUM": "Microsoft Entra ID P1",
        "AAD_PREMIUM_P2": "Microsoft Entra ID P2", "INTUNE_A": "Microsoft Intune Plan 1",
        "MDE_SMB": "Microsoft Defender for Business", "ATP_ENTERPRISE": "Microsoft Defender for Office 365 (Plan 1)",
        "DEFENDER_ENDPOINT_P1": "Microsoft Defender for Endpoint P1", "POWER_BI_PRO": "Power BI Pro",
        "PBI_PREMIUM_PER_USER": "Power BI Premium Per User", "VISIOCLIENT": "Visio Plan 2",
        "PROJECTPROFESSIONAL": "Project Plan 3", "Microsoft_365_Copilot": "Copilot for Microsoft 365",
        "DYN365_BUSCENTRAL_ESSENTIAL": "Dynamics 365 Business Central Essentials",
    }
    assert {sku: product_name(sku) for sku in expected} == expected
    assert product_name("Microsoft_Teams_Premium").startswith("Microsoft Teams Premium")


def test_a_sku_is_found_by_its_guid_in_any_case_and_by_its_part_number_in_any_case():
    assert product_name("CBDC14AB-D96C-4C30-B9F4-6ADA7CDC1D46") == "Microsoft 365 Business Premium"
    assert product_name("spb") == "Microsoft 365 Business Premium"
    assert product_name("NOT_A_SKU") is None
    assert catalog()["05e9a617-0261-4cee-bb44-138d3ef5d965"].string_id == "SPE_E3"


@pytest.mark.parametrize("text, problem", [
    ("string_id,guid,product_name\nSPB,cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46,A\nspb,"
     "05e9a617-0261-4cee-bb44-138d3ef5d965,B\n", "already on line 2"),
    ("string_id,guid,product_name\nA,cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46,A\nB,"
     "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46,B\n", "already on line 2"),
    ("string_id,guid,product_name\nA,cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d4,A\n", "not a lower-case GUID"),
    ("string_id,guid,product_name\nA,CBDC14AB-D96C-4C30-B9F4-6ADA7CDC1D46,A\n", "not a lower-case GUID"),
    ("sku,name\nA,B\n", "expected the columns"),
])
def test_a_catalog_with_a_duplicate_or_a_malformed_guid_is_refused_naming_the_line(text, problem):
    with pytest.raises(CatalogError, match=problem):
        read_catalog(io.StringIO(text), "skus.csv")


def test_the_plan_names_items_first_then_the_catalog_then_the_part_number():
    assert item_name(plan(), "SPB") == "Microsoft 365 Business Premium"
    assert item_name(plan(), "MADE_UP_SKU") == "MADE_UP_SKU"
    assert item_name(plan(), "user") == "Managed user"
    named = plan(item_names={"SPB": "Business Premium (annual)", "MADE_UP_SKU": "Backup 1 TB"},
                 user_item_name="Supported workplace")
    assert item_name(named, "SPB") == "Business Premium (annual)"
    assert item_name(named, "MADE_UP_SKU") == "Backup 1 TB"
    assert item_name(named, "user") == "Supported workplace"
    assert item_name(plan(), "user", {"Managed user": "Betreuter Benutzer"}.get) == "Betreuter Benutzer"


def test_the_priced_skus_without_a_name_are_the_ones_the_reconciliation_reports():
    assert unnamed_items(plan()) == ["MADE_UP_SKU"]
    assert unnamed_items(plan(item_names={"MADE_UP_SKU": "Backup"})) == []


def test_plan_naming_fields_round_trip_and_bad_values_name_the_field():
    named = plan(item_names={"SPB": "Business Premium"}, user_item_name="Managed user", tax_label="VAT",
                 purchase_order="PO-4711")
    assert parse_plan(named.to_dict()) == named
    assert "item_names" not in plan().to_dict()  # absent fields stay absent
    from shared.billing.errors import InputError
    for bad, field in (({"item_names": ["SPB"]}, "item_names"), ({"item_names": {"SPB": ""}}, "item_names.SPB"),
                       ({"tax_label": 19}, "tax_label"), ({"purchase_order": "x" * 101}, "purchase_order")):
        with pytest.raises(InputError) as raised:
            plan(**bad)
        assert raised.value.field == field
