"""An invoice document as a UN/CEFACT Cross Industry Invoice (CII D16B), Factur-X / ZUGFeRD
profile EN 16931: the XML a Factur-X PDF carries. Pure: document + seller + payment in, XML
bytes out. The same business terms as the UBL (ubl.py), in CII's structure and element order:

* a prorated line: BilledQuantity 17 DAY, NetPriceProductTradePrice 45.00 per BasisQuantity
  31 DAY, LineTotalAmount 24.68; without proration 1 MON;
* one VAT breakdown per plan (S/Z/E/AE, exemption reason where required), totals from the
  invoice: LineTotal = TaxBasisTotal = subtotal, GrandTotal = DuePayable = total.
"""
from __future__ import annotations

from datetime import date

from lxml import etree as ET

from shared.billing.money import format_price
from shared.invoicing.document import InvoiceDocument
from shared.invoicing.einvoice.ubl import REVERSE_CHARGE, money_text, percent_text
from shared.invoicing.parties import Party, Payment
from shared.invoicing.render import item_label

GUIDELINE_EN16931 = "urn:cen.eu:en16931:2017"
NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
}


def _el(parent: ET._Element, tag: str, text: str | None = None, **attributes: str) -> ET._Element:
    prefix, name = tag.split(":")
    element = ET.SubElement(parent, f"{{{NS[prefix]}}}{name}", attributes)
    if text is not None:
        element.text = text
    return element


def _date(parent: ET._Element, tag: str, day: date) -> None:
    _el(_el(parent, tag), "udt:DateTimeString", day.strftime("%Y%m%d"), format="102")  # 102 = CCYYMMDD


def _party(parent: ET._Element, tag: str, party: Party, email: str) -> None:
    node = _el(parent, tag)
    _el(node, "ram:Name", party.registered_name)  # BT-27 / BT-44
    if party.company_id or party.name != party.registered_name:
        legal = _el(node, "ram:SpecifiedLegalOrganization")
        if party.company_id:
            _el(legal, "ram:ID", party.company_id)  # BT-30 / BT-47
        if party.name != party.registered_name:
            _el(legal, "ram:TradingBusinessName", party.name)
    address = _el(node, "ram:PostalTradeAddress")
    for tag_name, value in (("ram:PostcodeCode", party.address.postcode), ("ram:LineOne", party.address.street),
                            ("ram:CityName", party.address.city)):
        if value:
            _el(address, tag_name, value)
    _el(address, "ram:CountryID", party.address.country)
    if email:
        _el(_el(node, "ram:URIUniversalCommunication"), "ram:URIID", email, schemeID="EM")
    if party.vat_id:
        _el(_el(node, "ram:SpecifiedTaxRegistration"), "ram:ID", party.vat_id, schemeID="VA")


def to_cii(document: InvoiceDocument, seller: Party, payment: Payment) -> bytes:
    invoice, plan = document.invoice, document.invoice.plan
    currency = invoice.currency
    buyer = document.buyer or Party(name=document.client_name)
    category, rate = plan.vat_category, plan.tax_rate
    root = ET.Element(f"{{{NS['rsm']}}}CrossIndustryInvoice", nsmap=NS)
    context = _el(root, "rsm:ExchangedDocumentContext")
    _el(_el(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", GUIDELINE_EN16931)
    header = _el(root, "rsm:ExchangedDocument")
    _el(header, "ram:ID", document.number)
    _el(header, "ram:TypeCode", "380")
    _date(header, "ram:IssueDateTime", document.issued_on)
    transaction = _el(root, "rsm:SupplyChainTradeTransaction")
    daily = plan.proration == "daily"
    for number, line in enumerate(invoice.lines, start=1):
        item = _el(transaction, "ram:IncludedSupplyChainTradeLineItem")
        _el(_el(item, "ram:AssociatedDocumentLineDocument"), "ram:LineID", str(number))
        product = _el(item, "ram:SpecifiedTradeProduct")
        _el(product, "ram:Name", item_label(line.item))
        _el(product, "ram:Description", f"{line.display_name} ({line.user_principal_name}), "
                                        f"{line.days}/{invoice.period.days} days")
        price = _el(_el(item, "ram:SpecifiedLineTradeAgreement"), "ram:NetPriceProductTradePrice")
        _el(price, "ram:ChargeAmount", format_price(line.unit_price, currency))
        if daily:
            _el(price, "ram:BasisQuantity", str(invoice.period.days), unitCode="DAY")
        _el(_el(item, "ram:SpecifiedLineTradeDelivery"), "ram:BilledQuantity", str(line.days) if daily else "1",
            unitCode="DAY" if daily else "MON")
        settlement = _el(item, "ram:SpecifiedLineTradeSettlement")
        tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(tax, "ram:TypeCode", "VAT")
        _el(tax, "ram:CategoryCode", category)
        _el(tax, "ram:RateApplicablePercent", percent_text(rate))
        _el(_el(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation"), "ram:LineTotalAmount",
            money_text(line.amount, currency))
    agreement = _el(transaction, "ram:ApplicableHeaderTradeAgreement")
    _el(agreement, "ram:BuyerReference", str(invoice.period))
    _party(agreement, "ram:SellerTradeParty", seller, seller.email)
    _party(agreement, "ram:BuyerTradeParty", buyer, buyer.email or document.client_email)
    _el(transaction, "ram:ApplicableHeaderTradeDelivery")
    settlement = _el(transaction, "ram:ApplicableHeaderTradeSettlement")
    if payment.iban:
        _el(settlement, "ram:PaymentReference", payment.reference(document.number))
    _el(settlement, "ram:InvoiceCurrencyCode", currency)
    if payment.iban:
        means = _el(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
        _el(means, "ram:TypeCode", "58" if currency == "EUR" else "30")
        _el(_el(means, "ram:PayeePartyCreditorFinancialAccount"), "ram:IBANID", payment.iban)
        if payment.bic:
            _el(_el(means, "ram:PayeeSpecifiedCreditorFinancialInstitution"), "ram:BICID", payment.bic)
    tax = _el(settlement, "ram:ApplicableTradeTax")
    _el(tax, "ram:CalculatedAmount", money_text(invoice.tax, currency))
    _el(tax, "ram:TypeCode", "VAT")
    if category == "AE":
        _el(tax, "ram:ExemptionReason", plan.tax_exemption_reason or REVERSE_CHARGE[1])
    elif category == "E":
        _el(tax, "ram:ExemptionReason", plan.tax_exemption_reason)
    _el(tax, "ram:BasisAmount", money_text(invoice.subtotal, currency))
    _el(tax, "ram:CategoryCode", category)
    if category == "AE":
        _el(tax, "ram:ExemptionReasonCode", REVERSE_CHARGE[0])
    _el(tax, "ram:RateApplicablePercent", percent_text(rate))
    period = _el(settlement, "ram:BillingSpecifiedPeriod")
    _date(period, "ram:StartDateTime", invoice.period.first_day)
    _date(period, "ram:EndDateTime", invoice.period.last_day)
    terms = _el(settlement, "ram:SpecifiedTradePaymentTerms")
    _el(terms, "ram:Description", f"Payment due within {(document.due_on - document.issued_on).days} days, "
                                  f"by {document.due_on.isoformat()}.")
    _date(terms, "ram:DueDateDateTime", document.due_on)
    totals = _el(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    _el(totals, "ram:LineTotalAmount", money_text(invoice.subtotal, currency))
    _el(totals, "ram:TaxBasisTotalAmount", money_text(invoice.subtotal, currency))
    _el(totals, "ram:TaxTotalAmount", money_text(invoice.tax, currency), currencyID=currency)
    _el(totals, "ram:GrandTotalAmount", money_text(invoice.total, currency))
    _el(totals, "ram:DuePayableAmount", money_text(invoice.total, currency))
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)


def to_facturx_pdf(pdf: bytes, document: InvoiceDocument, seller: Party, payment: Payment) -> bytes:
    """The PDF with the document's CII embedded as factur-x.xml (Factur-X, profile EN 16931),
    the XMP metadata and the attachment relationship set by the `factur-x` package; the XML is
    validated (XSD + the Factur-X EN 16931 schematron) first."""
    from facturx import generate_from_binary

    from shared.invoicing.einvoice.validate import validate

    xml = to_cii(document, seller, payment)
    validate(xml, document.number)
    return generate_from_binary(pdf, xml, flavor="factur-x", level="en16931", check_xsd=False,
                                lang="en-GB", pdf_metadata={
                                    "author": seller.registered_name, "keywords": "Factur-X, Invoice",
                                    "title": f"{seller.registered_name}: Invoice {document.number}",
                                    "subject": f"Factur-X invoice {document.number} dated "
                                               f"{document.issued_on.isoformat()} issued by {seller.registered_name}"})
