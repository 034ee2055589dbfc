"""Onboarding's client legal fields and the MSP's legal settings: what e-invoicing needs, refused
early with the field or setting named."""
from __future__ import annotations

import pytest

from shared.billing import InputError
from shared.invoicing.parties import PostalAddress, SettingError, payment_from_settings, seller_from_settings
from shared.settings import Settings
from shared.tenants import check_einvoicing, parse_onboarding

TENANT = "8f2c1d3e-1111-4a5b-9c8d-0123456789ab"
BRAND = {"BRAND_NAME": "Northwind IT", "BRAND_LEGAL_NAME": "Northwind IT Services BV", "BRAND_VAT_ID": "BE 0403.170.701",
         "BRAND_COUNTRY": "be", "BRAND_CITY": "Antwerp", "BRAND_EMAIL": "billing@northwind.example",
         "PAYMENT_IBAN": "BE71 0961 2345 6769", "PAYMENT_BIC": "GKCCBEBB"}


def request(**client):
    plan = {"tenant_id": TENANT, "name": "Contoso", "currency": "EUR", "timezone": "Europe/Brussels",
            "per_user_price": "45.00", "tax_rate": "0.21", **client.pop("plan", {})}
    return {"plan": plan, "billing_contacts": ["ap@contoso.example"], **client}


def refused(data) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_onboarding(data, source="request body")
    return caught.value


def test_the_client_fields_are_read_normalised_and_kept():
    tenant = parse_onboarding(request(legal_name="Contoso Belgium NV", vat_id="be 0477.472.701", company_id="0477472701",
                                      postal_address={"street": "Rue de la Loi 16", "city": "Brussels",
                                                      "postcode": "1000", "country": "be"}, einvoice=True))
    assert tenant.legal.vat_id == "BE0477472701"
    assert tenant.legal.postal_address == PostalAddress("Rue de la Loi 16", "Brussels", "1000", "BE")
    assert tenant.legal.einvoice is True
    buyer = tenant.legal.buyer("Contoso", "ap@contoso.example")
    assert (buyer.registered_name, buyer.email) == ("Contoso Belgium NV", "ap@contoso.example")


def test_a_vat_id_of_the_wrong_shape_is_refused_naming_the_field():
    error = refused(request(vat_id="0477472701"))
    assert error.field == "vat_id" and "request body" in str(error) and "country prefix" in str(error)


def test_an_unknown_tax_category_is_refused_naming_the_field():
    error = refused(request(plan={"tax_category": "X"}))
    assert error.field == "tax_category" and "S standard rate" in error.problem


def test_a_tax_category_that_contradicts_the_rate_is_refused():
    assert refused(request(plan={"tax_category": "AE"})).field == "tax_rate"
    assert refused(request(plan={"tax_rate": "0", "tax_category": "E"})).field == "tax_exemption_reason"


def test_an_e_invoicing_client_without_a_country_is_refused_naming_the_missing_field():
    error = refused(request(einvoice=True, postal_address={"street": "Rue de la Loi 16", "city": "Brussels"}))
    assert error.field == "postal_address.country" and "BR-11" in error.problem
    # without e-invoicing the address may stay incomplete
    assert parse_onboarding(request(postal_address={"city": "Brussels"})).legal.einvoice is False


def test_an_unknown_country_is_refused():
    assert refused(request(postal_address={"country": "XX"})).field == "postal_address.country"


def test_reverse_charge_e_invoices_need_the_clients_vat_id():
    error = refused(request(einvoice=True, postal_address={"country": "DE"},
                            plan={"tax_rate": "0", "tax_category": "AE"}))
    assert error.field == "vat_id" and "BR-AE-02" in error.problem


def test_e_invoices_are_refused_for_a_currency_with_three_decimals():
    error = refused(request(einvoice=True, postal_address={"country": "KW"}, plan={"currency": "KWD"}))
    assert error.field == "einvoice" and "BR-DEC" in error.problem


def test_e_invoicing_needs_the_msps_vat_id_and_country_settings():
    tenant = parse_onboarding(request(einvoice=True, postal_address={"country": "BE"}))
    with pytest.raises(InputError, match="BRAND_COUNTRY and BRAND_VAT_ID"):
        check_einvoicing(tenant, Settings({"BRAND_NAME": "Northwind"}))
    check_einvoicing(tenant, Settings(BRAND))


def test_the_msps_legal_and_payment_settings_are_read_and_checked():
    settings = Settings(BRAND)
    seller = seller_from_settings(settings)
    assert (seller.vat_id, seller.address.country, seller.registered_name) == (
        "BE0403170701", "BE", "Northwind IT Services BV")
    assert payment_from_settings(settings).iban == "BE71096123456769"
    with pytest.raises(SettingError, match="PAYMENT_IBAN"):
        payment_from_settings(Settings({**BRAND, "PAYMENT_IBAN": "BE71096123456768"}))
    with pytest.raises(SettingError, match="BRAND_VAT_ID"):
        seller_from_settings(Settings({**BRAND, "BRAND_VAT_ID": "12"}))
