"""E-invoices in the close's steps, on the in-memory fakes: the XML archived beside the PDF and
attached for e-invoicing clients, refused before a number is spent, skipped (with the reason)
while the MSP's legal settings are missing."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest

from shared.billing import Observation, Period, parse_plan
from shared.errors import CloseError
from shared.invoicing.einvoice.validate import validate
from shared.invoicing.parties import ClientLegal, PostalAddress
from shared.settings import Settings
from shared.tenants import Tenant
from tests.unit.fakes import World

UTC = timezone.utc
OCTOBER = Period(2026, 10)
LEGAL = {"BRAND_NAME": "Northwind MSP", "INVOICE_MAILBOX": "billing@northwind-msp.example", "MSP_TENANT_ID": "msp",
         "BRAND_VAT_ID": "BE0403170701", "BRAND_COUNTRY": "BE", "PAYMENT_IBAN": "BE71096123456769"}
BELGIAN = ClientLegal(legal_name="Lambiek NV", vat_id="BE0477472701",
                      postal_address=PostalAddress("Grote Markt 1", "Brussels", "1000", "BE"), einvoice=True)


def client(world: World, legal: ClientLegal, **plan_fields: str) -> Tenant:
    tenant_id = str(uuid.uuid4())
    plan = parse_plan({"tenant_id": tenant_id, "name": "Lambiek", "currency": "EUR", "timezone": "Europe/Brussels",
                       "per_user_price": "45.00", "tax_rate": "0.21", **plan_fields})
    tenant = Tenant(tenant_id=tenant_id, plan=plan, billing_contacts=("ap@lambiek.example",),
                    onboarded_at=datetime(2026, 6, 1, tzinfo=UTC), legal=legal)
    world.tenants.save(tenant)
    world.ledger.append(tenant_id, [Observation(datetime(2026, 10, 15, 12, tzinfo=UTC), "u1", "ann@lambiek.example",
                                                "Ann Lee")], observed_at=datetime(2026, 10, 15, tzinfo=UTC), source="test")
    return tenant


def close(world: World, tenant: Tenant):
    return asyncio.run(world.close_service().close_tenant(tenant.tenant_id, OCTOBER))


def test_an_e_invoicing_client_gets_the_archived_xml_next_to_the_pdf():
    world = World()
    world.settings = Settings(LEGAL)
    tenant = client(world, BELGIAN)
    close(world, tenant)
    row = world.invoices.get(tenant.tenant_id, OCTOBER)
    [mail] = world.mailer.sent
    [xml] = mail["attachments"]
    assert xml.name == f"{row.number}.xml" and xml.data == world.archive.get(row["ubl_blob"])
    validate(xml.data, row.number)


def test_an_invalid_e_invoice_stops_the_client_before_its_number_is_spent():
    world = World()
    world.settings = Settings(LEGAL)
    tenant = client(world, ClientLegal(postal_address=PostalAddress(country="DE"), einvoice=True),
                    tax_rate="0", tax_category="AE")  # no VAT id for reverse charge: BR-AE-02
    with pytest.raises(CloseError, match="not issued: e-invoice PENDING fails .*BR-AE-02"):
        close(world, tenant)
    row = world.invoices.get(tenant.tenant_id, OCTOBER)
    assert not row.get("number") and world.mailer.sent == []


def test_without_the_msps_legal_settings_no_xml_is_archived_and_the_row_says_why():
    world = World()  # BRAND_VAT_ID and BRAND_COUNTRY unset
    tenant = client(world, ClientLegal(postal_address=PostalAddress(country="BE")))
    close(world, tenant)
    row = world.invoices.get(tenant.tenant_id, OCTOBER)
    assert not row.get("ubl_blob") and "BRAND_VAT_ID and BRAND_COUNTRY are not set" in row["ubl_skipped"]
    assert [a for m in world.mailer.sent for a in m["attachments"]] == []
