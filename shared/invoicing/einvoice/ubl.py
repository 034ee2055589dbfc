"""An invoice document as a UBL 2.1 Invoice (or CreditNote), EN 16931 / Peppol BIS Billing 3.0.

Pure: document + seller + payment in, XML bytes out (lxml). Element order follows
the UBL 2.1 schema's sequences (the XSD rejects any other). Business terms (BT-n) as EN 16931
names them, in comments where the mapping is not obvious.

* A prorated line reconciles exactly: InvoicedQuantity = days held (unit DAY), PriceAmount = the
  monthly price, BaseQuantity = the days of the month (DAY); LineExtensionAmount = the line's
  amount, which the billing rules computed as price × days ÷ days-in-month rounded half-up once:
  17 DAY × 45.00 / 31 DAY = 24.677… → 24.68. Without proration: 1 MON at the monthly price.
* VAT: one category per plan (S standard, Z zero rated, E exempt with the plan's reason, AE
  reverse charge with VATEX-EU-AE); the breakdown's taxable amount is the subtotal and its tax
  the invoice's tax (rounded once on the subtotal), so BR-CO-17 holds within its tolerance.
* Totals: LineExtensionAmount = TaxExclusiveAmount = subtotal (no allowances or charges),
  TaxInclusiveAmount = PayableAmount = total (BR-CO-10, BR-CO-13, BR-CO-15, BR-CO-16).
* Amounts with the currency's minor digits; EN 16931 allows at most two (BR-DEC-*), so a
  three-digit currency (KWD) is written with two where its last digit is 0, and a document
  whose amounts need the third fails validation (onboarding refuses e-invoices for them).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from lxml import etree as ET

from shared.billing.money import format_money, format_price
from shared.invoicing.document import InvoiceDocument
from shared.invoicing.parties import Party, Payment
from shared.invoicing.render import item_label

CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
NS = {
    "Invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "CreditNote": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
INVOICE_TYPE = "380"  # UNCL 1001: commercial invoice
CREDIT_NOTE_TYPE = "381"  # UNCL 1001: credit note
# VATEX code and text where the law requires the reason of a 0 % category (BR-AE-10, BR-E-10).
REVERSE_CHARGE = ("VATEX-EU-AE", "Reverse charge")


@dataclass(frozen=True)
class CreditedInvoice:
    """The invoice a credit note corrects (BG-3 preceding invoice reference)."""

    number: str
    issued_on: date


class _Builder:
    def __init__(self, document: InvoiceDocument):
        self.currency = document.invoice.currency

    @staticmethod
    def cbc(parent: ET._Element, name: str, text: str, **attributes: str) -> ET._Element:
        element = ET.SubElement(parent, f"{{{NS['cbc']}}}{name}", attributes)
        element.text = text
        return element

    @staticmethod
    def cac(parent: ET._Element, name: str) -> ET._Element:
        return ET.SubElement(parent, f"{{{NS['cac']}}}{name}")

    def amount(self, parent: ET._Element, name: str, value: Decimal) -> None:
        self.cbc(parent, name, money_text(value, self.currency), currencyID=self.currency)


def money_text(value: Decimal, currency: str) -> str:
    """The amount with the currency's minor digits, trailing zeros past the second dropped
    (KWD "1.250" -> "1.25"; BR-DEC-* allows two decimals at most)."""
    text = format_money(value, currency)
    if "." in text:
        whole, fraction = text.split(".")
        fraction = fraction[:2] + fraction[2:].rstrip("0")
        text = f"{whole}.{fraction}"
    return text


def percent_text(rate: Decimal) -> str:
    """0.0825 -> "8.25", 0.21 -> "21", 0 -> "0"."""
    text = format(rate * 100, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _party(b: _Builder, parent: ET._Element, role: str, party: Party, email: str) -> None:
    holder = b.cac(parent, role)
    node = b.cac(holder, "Party")
    if email:  # BT-34 / BT-49 electronic address; EAS scheme EM = electronic mail
        b.cbc(node, "EndpointID", email, schemeID="EM")
    if party.name and party.name != party.registered_name:
        b.cbc(b.cac(node, "PartyName"), "Name", party.name)  # BT-28 / BT-45 trading name
    address = b.cac(node, "PostalAddress")
    if party.address.street:
        b.cbc(address, "StreetName", party.address.street)
    if party.address.city:
        b.cbc(address, "CityName", party.address.city)
    if party.address.postcode:
        b.cbc(address, "PostalZone", party.address.postcode)
    b.cbc(b.cac(address, "Country"), "IdentificationCode", party.address.country)
    if party.vat_id:  # BT-31 / BT-48
        scheme = b.cac(node, "PartyTaxScheme")
        b.cbc(scheme, "CompanyID", party.vat_id)
        b.cbc(b.cac(scheme, "TaxScheme"), "ID", "VAT")
    legal = b.cac(node, "PartyLegalEntity")
    b.cbc(legal, "RegistrationName", party.registered_name)  # BT-27 / BT-44
    if party.company_id:  # BT-30 / BT-47
        b.cbc(legal, "CompanyID", party.company_id)
    if email:
        b.cbc(b.cac(node, "Contact"), "ElectronicMail", email)


def _tax_category(b: _Builder, parent: ET._Element, name: str, category: str, rate: Decimal,
                  reason: str = "", with_reason: bool = False) -> None:
    node = b.cac(parent, name)
    b.cbc(node, "ID", category)
    b.cbc(node, "Percent", percent_text(rate))
    if with_reason and category == "AE":
        b.cbc(node, "TaxExemptionReasonCode", REVERSE_CHARGE[0])
        b.cbc(node, "TaxExemptionReason", reason or REVERSE_CHARGE[1])
    elif with_reason and category == "E":
        b.cbc(node, "TaxExemptionReason", reason)
    b.cbc(b.cac(node, "TaxScheme"), "ID", "VAT")


def to_ubl(document: InvoiceDocument, seller: Party, payment: Payment,
           credited: CreditedInvoice | None = None) -> bytes:
    """The document as UBL XML (UTF-8): an Invoice, or a CreditNote when `credited` names the
    invoice it corrects (its amounts are then the positive amounts credited)."""
    kind = "Invoice" if credited is None else "CreditNote"
    invoice, plan = document.invoice, document.invoice.plan
    buyer = document.buyer or Party(name=document.client_name)
    b = _Builder(document)
    root = ET.Element(f"{{{NS[kind]}}}{kind}", nsmap={None: NS[kind], "cac": NS["cac"], "cbc": NS["cbc"]})
    b.cbc(root, "CustomizationID", CUSTOMIZATION_ID)
    b.cbc(root, "ProfileID", PROFILE_ID)
    b.cbc(root, "ID", document.number)
    b.cbc(root, "IssueDate", document.issued_on.isoformat())
    if kind == "Invoice":
        b.cbc(root, "DueDate", document.due_on.isoformat())  # BT-9
        b.cbc(root, "InvoiceTypeCode", INVOICE_TYPE)
    else:
        b.cbc(root, "CreditNoteTypeCode", CREDIT_NOTE_TYPE)
    b.cbc(root, "DocumentCurrencyCode", invoice.currency)
    b.cbc(root, "BuyerReference", str(invoice.period))  # BT-10; Peppol asks for one
    period = b.cac(root, "InvoicePeriod")  # BG-14: the month billed
    b.cbc(period, "StartDate", invoice.period.first_day.isoformat())
    b.cbc(period, "EndDate", invoice.period.last_day.isoformat())
    if credited is not None:
        reference = b.cac(b.cac(root, "BillingReference"), "InvoiceDocumentReference")  # BG-3
        b.cbc(reference, "ID", credited.number)
        b.cbc(reference, "IssueDate", credited.issued_on.isoformat())
    _party(b, root, "AccountingSupplierParty", seller, seller.email)
    _party(b, root, "AccountingCustomerParty", buyer, buyer.email or document.client_email)
    if payment.iban:
        means = b.cac(root, "PaymentMeans")
        # UNCL 4461: 58 SEPA credit transfer (EUR), 30 credit transfer otherwise.
        b.cbc(means, "PaymentMeansCode", "58" if invoice.currency == "EUR" else "30")
        if kind == "CreditNote":
            b.cbc(means, "PaymentDueDate", document.due_on.isoformat())
        b.cbc(means, "PaymentID", payment.reference(document.number))  # BT-83 remittance information
        account = b.cac(means, "PayeeFinancialAccount")
        b.cbc(account, "ID", payment.iban)  # BT-84
        b.cbc(account, "Name", seller.registered_name)
        if payment.bic:
            b.cbc(b.cac(account, "FinancialInstitutionBranch"), "ID", payment.bic)  # BT-86
    terms = b.cac(root, "PaymentTerms")  # BT-20
    b.cbc(terms, "Note", f"Payment due within {(document.due_on - document.issued_on).days} days, "
                         f"by {document.due_on.isoformat()}.")
    category, rate = plan.vat_category, plan.tax_rate
    tax_total = b.cac(root, "TaxTotal")
    b.amount(tax_total, "TaxAmount", invoice.tax)  # BT-110
    subtotal = b.cac(tax_total, "TaxSubtotal")  # BG-23, one per VAT category
    b.amount(subtotal, "TaxableAmount", invoice.subtotal)
    b.amount(subtotal, "TaxAmount", invoice.tax)
    _tax_category(b, subtotal, "TaxCategory", category, rate, plan.tax_exemption_reason, with_reason=True)
    totals = b.cac(root, "LegalMonetaryTotal")
    b.amount(totals, "LineExtensionAmount", invoice.subtotal)  # BT-106
    b.amount(totals, "TaxExclusiveAmount", invoice.subtotal)  # BT-109
    b.amount(totals, "TaxInclusiveAmount", invoice.total)  # BT-112
    b.amount(totals, "PayableAmount", invoice.total)  # BT-115
    daily = plan.proration == "daily"
    for number, line in enumerate(invoice.lines, start=1):
        node = b.cac(root, f"{kind}Line")
        b.cbc(node, "ID", str(number))
        quantity = str(line.days) if daily else "1"
        b.cbc(node, "InvoicedQuantity" if kind == "Invoice" else "CreditedQuantity", quantity,
              unitCode="DAY" if daily else "MON")  # UN/ECE Rec. 20: DAY day, MON month
        b.amount(node, "LineExtensionAmount", line.amount)  # BT-131
        item = b.cac(node, "Item")
        b.cbc(item, "Description", f"{line.display_name} ({line.user_principal_name}), "
                                   f"{line.days}/{invoice.period.days} days")
        b.cbc(item, "Name", item_label(line.item))
        _tax_category(b, item, "ClassifiedTaxCategory", category, rate)
        price = b.cac(node, "Price")
        b.cbc(price, "PriceAmount", format_price(line.unit_price, invoice.currency), currencyID=invoice.currency)
        if daily:  # BT-149: the price is per month = per days-in-month days
            b.cbc(price, "BaseQuantity", str(invoice.period.days), unitCode="DAY")
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)
