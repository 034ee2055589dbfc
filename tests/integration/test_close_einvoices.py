"""E-invoices in the month-end close against Azurite, the Graph simulator and the dev host: the
UBL archived beside each PDF, attached for clients who asked for it, refused (and the client
stopped, no number spent, nothing emailed) when it would break EN 16931; served over HTTP and by
./dev invoice ubl."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone

import pytest
from lxml import etree

from devtools.cmd_invoice import _facturx, _ubl
from shared.billing import Observation, Period, parse_plan
from shared.invoicing.einvoice.validate import validate
from shared.invoicing.parties import ClientLegal, PostalAddress
from shared.tenants import Tenant
from tests.integration.stack import call, running_stack
from tests.integration import test_close as close_tests
from tests.integration.test_close import OCTOBER

# The close tests' fixtures (on this module's own stack, which has the MSP's legal settings).
env, loop = close_tests.env, close_tests.loop

UTC = timezone.utc
LEGAL_SETTINGS = {
    "BRAND_LEGAL_NAME": "Northwind MSP BV", "BRAND_VAT_ID": "BE0403170701", "BRAND_COUNTRY": "BE",
    "BRAND_CITY": "Antwerp", "BRAND_POSTCODE": "2000", "BRAND_STREET": "Kade 12",
    "BRAND_EMAIL": "billing@northwind-msp.example", "PAYMENT_IBAN": "BE71096123456769", "PAYMENT_BIC": "GKCCBEBB",
}


@pytest.fixture(scope="module")
def stack(azurite):
    with running_stack(azurite.connection_string, **LEGAL_SETTINGS) as (sim, host, app):
        yield sim, host, app


def client(env, name, *, legal: ClientLegal, tax_rate="0.21", tax_category=None, users=3):
    tenant_id = str(uuid.uuid4())
    slug = name.lower().split()[0]
    plan = parse_plan({"tenant_id": tenant_id, "name": name, "currency": "EUR", "timezone": "Europe/Brussels",
                       "per_user_price": "45.00", "sku_prices": {"SPB": "22.00"}, "tax_rate": tax_rate,
                       **({"tax_category": tax_category} if tax_category else {})})
    tenant = Tenant(tenant_id=tenant_id, plan=plan, billing_contacts=(f"ap@{slug}.example",),
                    onboarded_at=datetime(2026, 9, 20, tzinfo=UTC), legal=legal)
    env.app.tenants.save(tenant)
    env.made.append(tenant_id)
    before = datetime(2026, 9, 10, tzinfo=UTC)
    people = [Observation(before, f"u{n}", f"user{n}@{slug}.example", f"{name.split()[0]} User {n}", skus=("SPB",))
              for n in range(users)]
    people.append(Observation(datetime(2026, 10, 15, 12, tzinfo=UTC), "late", f"late@{slug}.example", "Late Joiner"))
    env.app.ledger.append(tenant_id, people, observed_at=before, source="test")
    return tenant


BELGIAN = ClientLegal(legal_name="Brasserie Lambiek NV", vat_id="BE0477472701", postal_address=PostalAddress(
    "Grote Markt 1", "Brussels", "1000", "BE"), einvoice=True)


def test_an_e_invoicing_client_gets_its_validated_ubl_next_to_the_pdf_and_it_is_served_over_http(env):
    tenant = client(env, "Brasserie Lambiek", legal=BELGIAN)
    outcome = env.close(tenant.tenant_id)
    row = env.row(tenant.tenant_id)
    assert outcome.kind == "emailed" and row["ubl_blob"] == f"2026-10/{tenant.tenant_id}/{row['number']}.xml"

    [mail] = env.sent_to("ap@brasserie.example")
    pdf, xml = mail.attachments
    assert (pdf.name, xml.name) == (f"{row['number']}.pdf", f"{row['number']}.xml")
    assert xml.content_type == "application/xml"
    archived = env.service().archive.get(row["ubl_blob"])
    assert xml.data == archived
    validate(archived, row["number"])
    tree = etree.fromstring(archived)
    ns = {"cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"}
    assert tree.findtext("cbc:ID", namespaces=ns) == row["number"]
    assert tree.xpath("//cbc:PayableAmount/text()", namespaces=ns) == [row["total"]]
    assert "Brasserie Lambiek NV" in tree.xpath("//cbc:RegistrationName/text()", namespaces=ns)

    path = f"/api/tenants/{tenant.tenant_id}/invoices/2026-10/ubl"
    status, headers, body = call(env.host, "GET", path)
    assert status == 200 and body == archived and headers["Content-Type"].startswith("application/xml")
    assert call(env.host, "GET", path, key=None)[0] == 401
    status, _, body = call(env.host, "GET", f"/api/tenants/{tenant.tenant_id}/invoices/2026-09/ubl")
    assert status == 404 and b"has no issued invoice" in body
    status, _, body = call(env.host, "GET", f"/api/tenants/{tenant.tenant_id}/invoices/2026-13/ubl")
    assert status == 400 and b"period" in body


def test_a_client_without_e_invoicing_has_its_ubl_archived_but_only_the_pdf_emailed(env, tmp_path, capsys):
    legal = ClientLegal(legal_name="Quiet Bakery BV", postal_address=PostalAddress(country="BE"))
    tenant = client(env, "Quiet Bakery", legal=legal)
    env.close(tenant.tenant_id)
    row = env.row(tenant.tenant_id)
    [mail] = env.sent_to("ap@quiet.example")
    assert [a.content_type for a in mail.attachments] == ["application/pdf"]
    archived = env.service().archive.get(row["ubl_blob"])
    validate(archived)

    # ./dev invoice ubl writes the same document
    out = tmp_path / "e-invoice.xml"
    assert _ubl(env.service(), tenant, OCTOBER, out) == 0
    assert out.read_bytes() == archived
    assert _ubl(env.service(), tenant, Period(2026, 9), None) == 1
    assert "has no issued invoice" in capsys.readouterr().err

    # ./dev invoice facturx: the archived PDF with the CII inside
    from facturx import get_facturx_xml_from_pdf
    assert _facturx(env.service(), tenant, OCTOBER, tmp_path / "facturx.pdf") == 0
    name, xml = get_facturx_xml_from_pdf((tmp_path / "facturx.pdf").read_bytes())
    assert name == "factur-x.xml" and row["number"].encode() in xml
    validate(xml)


def test_an_e_invoice_that_would_break_en16931_stops_the_client_before_a_number_is_spent(env, caplog):
    caplog.set_level(logging.INFO, "prorata.close")
    # Reverse charge without the client's VAT or company id: BR-AE-02 (onboarding refuses this;
    # here the stored tenant predates the check).
    broken = ClientLegal(legal_name="Nordlicht GmbH", postal_address=PostalAddress(country="DE"), einvoice=True)
    bad = client(env, "Nordlicht GmbH", legal=broken, tax_rate="0", tax_category="AE")
    good = client(env, "Steady Lambiek", legal=BELGIAN)
    env.clock.now = datetime(2026, 11, 2, tzinfo=UTC)
    run_id, outcomes, _ = env.run(env.service().close_by_hand(OCTOBER, [bad.tenant_id, good.tenant_id]))
    summary = env.service().run_report(run_id)
    assert summary["emailed"] == 1 and summary["failed"] == 1
    [failure] = summary["failures"]
    assert failure["name"] == "Nordlicht GmbH" and "BR-AE-02" in failure["reason"]
    assert failure["reason"].startswith("not issued: e-invoice PENDING fails")
    row = env.row(bad.tenant_id)
    assert not row.get("number") and row["step"] == "queued"  # no number spent, nothing rendered
    assert env.sent_to("ap@nordlicht.example") == []
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "Failed: Nordlicht GmbH: not issued: e-invoice PENDING fails BR-AE-02" in logged


@pytest.mark.parametrize("client_fields, field", [
    ({"vat_id": "477472701"}, "vat_id"),
    ({"einvoice": True, "postal_address": {"city": "Brussels"}}, "postal_address.country"),
    ({"plan": {"tax_category": "R"}}, "tax_category"),
])
def test_onboarding_answers_400_naming_the_field_e_invoicing_needs(env, client_fields, field):
    tenant_id = str(uuid.uuid4())
    plan = {"tenant_id": tenant_id, "name": "Bad Fields BV", "currency": "EUR", "timezone": "Europe/Brussels",
            "per_user_price": "45.00", "tax_rate": "0.21", **client_fields.pop("plan", {})}
    status, _, body = call(env.host, "POST", "/api/tenants",
                           {"plan": plan, "billing_contacts": ["ap@bad.example"], **client_fields})
    assert status == 400 and f"field '{field}'".encode() in body, body
    assert env.app.tenants.get(tenant_id) is None
