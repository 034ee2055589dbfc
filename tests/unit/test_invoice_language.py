"""Invoices and invoice emails speak the client's language and say what an invoice must say:
product names, the MSP's registration numbers, how to pay, the client's reference, amounts with
an unambiguous currency, and guests by their real address."""
from __future__ import annotations

import gettext
import io
import os
from datetime import date, datetime, timezone

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from shared.billing import Observation, Period, compute_invoice, parse_plan
from shared.invoicing import Brand, BrandError, InvoiceDocument, render_email, render_html
from shared.invoicing.exports.accounting import describe_line
from shared.invoicing.document import PaymentDetails
from shared.invoicing.i18n import LANGUAGES, LOCALE_DIR, translations
from shared.invoicing.render import display_address
from shared.settings import Settings

NBSP = "\u00a0"
INVOICING = os.path.dirname(LOCALE_DIR)
BRAND = Brand(name="Northwind IT Services", address=("12 Harbour Road", "Bristol BS1 4QA"),
              vat_id="GB123456789", company_id="12345678",
              payment=PaymentDetails(iban="GB82 WEST 1234 5698 7654 32", bic="NWBKGB2L", bank_name="NatWest"))
GUEST_UPN = "chloe_partner.example#EXT#@contoso.onmicrosoft.com"


def document(locale="en_GB", currency="GBP", **plan_fields) -> InvoiceDocument:
    plan = parse_plan({"tenant_id": "t-1", "name": "Contoso", "currency": currency, "timezone": "UTC",
                       "per_user_price": "45.00", "sku_prices": {"SPB": "22.00"}, "tax_rate": "0.19",
                       "include_guests": True, **plan_fields})
    start = datetime(2026, 9, 1, tzinfo=timezone.utc)
    observations = [Observation(start, "u-1", "ann@contoso.com", "Ann Lee", skus=("SPB",)),
                    Observation(start, "u-2", GUEST_UPN, "Chloé Partner", user_type="Guest", skus=("SPB",))]
    invoice = compute_invoice(plan, observations, Period(2026, 10))
    return InvoiceDocument(invoice=invoice, number="INV-2026-00042", issued_on=date(2026, 11, 1),
                           due_on=date(2026, 12, 1), client_name="Contoso", client_address=("1 Main St",),
                           locale=locale)


# --------------------------------------------------------------------------- the catalogs

def messages(path):
    with open(path, "rb") as handle:
        return read_po(handle)


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_compiled_catalog_matches_its_po_source(language):
    folder = os.path.join(LOCALE_DIR, language, "LC_MESSAGES")
    compiled = io.BytesIO()
    write_mo(compiled, messages(os.path.join(folder, "messages.po")))
    compiled.seek(0)
    expected = gettext.GNUTranslations(compiled)._catalog  # type: ignore[attr-defined]
    with open(os.path.join(folder, "messages.mo"), "rb") as handle:
        shipped = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
    assert shipped == expected, ("messages.mo is stale: run .venv/bin/pybabel compile -d "
                                 "shared/invoicing/locale -D messages")


def test_the_template_catalog_has_every_message_of_the_templates_and_the_code():
    found = {message[2] if isinstance(message[2], str) else message[2][0]
             for message in extract_from_dir(INVOICING, method_map=[("**/templates/**.html", "jinja2"),
                                                                     ("**/templates/**.txt", "jinja2"),
                                                                     ("**.py", "python")],
                                             options_map={"**/templates/**": {"extensions": "jinja2.ext.i18n"}},
                                             keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None})}
    template = {m.id if isinstance(m.id, str) else m.id[0] for m in messages(os.path.join(LOCALE_DIR, "messages.pot"))
                if m.id}
    assert found == template, "update messages.pot and the .po files (see shared/invoicing/i18n.py)"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_in_every_language(language):
    catalog = messages(os.path.join(LOCALE_DIR, language, "LC_MESSAGES", "messages.po"))
    untranslated = [m.id for m in catalog if m.id and (not m.string or (isinstance(m.string, tuple)
                                                                          and not all(m.string)))]
    assert not untranslated
    assert not [m.id for m in catalog if m.id and m.fuzzy]


def test_a_locale_picks_its_language_and_a_language_without_catalog_reads_english():
    assert translations("de").gettext("Due date") == "Fälligkeitsdatum"
    assert translations("pt").gettext("Due date") == "Due date"
    assert "RECHNUNG" in render_html(document("de_AT", "EUR"), BRAND)
    assert ">INVOICE<" in render_html(document("pt_BR", "BRL"), BRAND)


# --------------------------------------------------------------------------- the words

ENGLISH_WORDS = ("INVOICE", "Invoice number", "Invoice date", "Due date", "Amount due", "BILL TO", "SERVICE PERIOD",
                 "Charges by", "Unit price", "User-days", "Subtotal", "Total due", "How to pay", "Payment reference",
                 "Managed user", "Tax (", "billed user", "Page ", "VAT ID", "Each item")


def test_a_german_client_reads_a_wholly_german_invoice_and_email():
    doc = document("de_DE", "EUR", tax_label="MwSt.")
    html = render_html(doc, BRAND)
    for word in ENGLISH_WORDS:
        assert word not in html, word
    for word in ("RECHNUNG", "Rechnungsnummer", "Fälligkeitsdatum", "Kosten nach Position", "Einzelpreis",
                 "Benutzertage", "Zwischensumme", "MwSt. (19", "Gesamtbetrag", "Betreuter Benutzer", "Seite",
                 "USt-IdNr.: GB123456789", "Verwendungszweck", "31 Tage", "2 abgerechnete Benutzer",
                 "monatlicher Einzelpreis × Tage ÷ 31", "Microsoft 365 Business Premium"):
        assert word in html, word
    subject, body = render_email(doc, BRAND)
    assert subject == "Rechnung INV-2026-00042 von Northwind IT Services für Oktober 2026"
    for word in ("Amount due", "Due date", "attached", "Kind regards", "Thank you"):
        assert word not in body, word
    assert "Fälliger Betrag" in body and "Mit freundlichen Grüßen" in body


@pytest.mark.parametrize("locale, currency, words", [
    ("fr_FR", "EUR", ("FACTURE", "Date d'échéance", "Montants par article", "Utilisateur géré", "N° TVA")),
    ("nl_NL", "EUR", ("FACTUUR", "Vervaldatum", "Kosten per artikel", "Beheerde gebruiker", "Btw-nummer")),
    ("es_ES", "EUR", ("FACTURA", "Fecha de vencimiento", "Cargos por artículo", "Usuario gestionado", "NIF-IVA")),
])
def test_french_dutch_and_spanish_clients_read_their_language(locale, currency, words):
    html = render_html(document(locale, currency), BRAND)
    for word in words:
        assert word in html, word  # catalog text is trusted markup: not escaped
    assert "Invoice number" not in html and "Managed user" not in html


def test_the_plan_names_the_tax_and_the_per_user_fee():
    html = render_html(document(tax_label="VAT", user_item_name="Supported user"), BRAND)
    assert "VAT (19%)" in html and "Supported user" in html and "Managed user" not in html
    assert "Tax (19%)" in render_html(document(), BRAND)


# --------------------------------------------------------------------------- what an invoice must say

def test_the_invoice_and_email_show_the_msps_registration_numbers_and_how_to_pay():
    html = render_html(document(), BRAND)
    for text in ("VAT ID: GB123456789", "Company no.: 12345678", "NatWest", "GB82 WEST 1234 5698 7654 32",
                 "NWBKGB2L", "Payment reference", "<b>INV-2026-00042</b>", "Please pay £"):
        assert text in html, text
    _, body = render_email(document(), BRAND)
    for text in ("GB82 WEST 1234 5698 7654 32", "NWBKGB2L", "INV-2026-00042", "VAT ID: GB123456789"):
        assert text in body, text


def test_the_payment_reference_follows_its_format_and_a_payment_link_is_shown():
    brand = Brand(name="Northwind", payment=PaymentDetails(link="https://pay.example/northwind",
                                                           reference="Northwind {number}"))
    html = render_html(document(), brand)
    assert "Northwind INV-2026-00042" in html and "https://pay.example/northwind" in html and "IBAN" not in html
    _, body = render_email(document(), brand)
    assert 'href="https://pay.example/northwind"' in body and "Northwind INV-2026-00042" in body


def test_payment_settings_are_read_and_checked_naming_the_setting():
    brand = Brand.from_settings(Settings({"BRAND_NAME": "Northwind", "BRAND_VAT_ID": " DE 123456788 ",
                                          "PAYMENT_IBAN": "de89 3704 0044 0532 0130 00", "PAYMENT_BIC": "cobadeffxxx"}))
    assert brand.vat_id == "DE 123456788" and brand.payment.iban == "DE89370400440532013000"
    assert brand.payment.bic == "COBADEFFXXX" and brand.payment.reference_for("INV-7") == "INV-7"
    for setting, value in (("PAYMENT_IBAN", "DE89 3704 0044 0532 0130 01"), ("PAYMENT_IBAN", "12345"),
                           ("PAYMENT_BIC", "COBA"), ("PAYMENT_LINK", "http://pay.example"),
                           ("PAYMENT_REFERENCE", "Invoice {invoice}")):
        with pytest.raises(BrandError) as raised:
            Brand.from_settings(Settings({"BRAND_NAME": "Northwind", setting: value}))
        assert raised.value.setting == setting


def test_the_clients_purchase_order_is_on_the_invoice_and_in_the_email_when_the_plan_has_one():
    doc = document(purchase_order="PO-2026-0815")
    assert "Your reference" in render_html(doc, BRAND) and "PO-2026-0815" in render_html(doc, BRAND)
    assert "PO-2026-0815" in render_email(doc, BRAND)[1]
    assert "Your reference" not in render_html(document(), BRAND)


def test_an_australian_client_reads_aud_never_a_bare_dollar_sign():
    doc = document("en_AU", "AUD")
    html = render_html(doc, BRAND)
    subject, body = render_email(doc, BRAND)
    total = f"AUD{NBSP}{doc.invoice.total:,}"
    assert total in html and total in body
    assert "$" not in html and "$" not in body and "$" not in subject


@pytest.mark.parametrize("locale, currency, expected", [
    ("sv_SE", "SEK", f"{NBSP}SEK"), ("de_DE", "EUR", f"{NBSP}€"), ("en_GB", "GBP", "£"), ("en_US", "USD", "USD"),
])
def test_amounts_show_the_currency_code_only_where_the_symbol_is_shared(locale, currency, expected):
    html = render_html(document(locale, currency), BRAND)
    assert expected in html


def test_guests_are_shown_by_name_and_real_address_never_the_ext_form():
    doc = document()
    html = render_html(doc, BRAND)
    assert "Chloé Partner" in html and "chloe@partner.example" in html and "#EXT#" not in html
    assert all("#EXT#" not in describe_line(line, 30, line.item) for line in doc.invoice.lines)
    assert display_address(GUEST_UPN) == "chloe@partner.example"
    assert display_address("first_last_partner.example#ext#@contoso.com") == "first_last@partner.example"
    assert display_address(GUEST_UPN, mail="chloe.p@partner.example") == "chloe.p@partner.example"
    assert display_address("ann@contoso.com") == "ann@contoso.com"


def test_the_item_summary_shows_user_days_and_says_its_amounts_are_sums_of_rounded_lines():
    html = render_html(document(), BRAND)
    summary = html[html.index("Charges by item"):html.index("How to pay")]
    assert "User-days" in summary and "62" in summary  # two holders of SPB for 31 days
    assert "sum of the rounded amounts" in summary and "unit price × user-days ÷ 31" in summary


def test_the_deployment_package_keeps_the_compiled_catalogs_and_the_product_catalog():
    from fnmatch import fnmatch
    from pathlib import Path

    root = Path(INVOICING).parent.parent
    patterns = [line.strip() for line in (root / ".funcignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    shipped = [f"shared/invoicing/locale/{language}/LC_MESSAGES/messages.mo" for language in LANGUAGES]
    shipped.append("shared/invoicing/data/microsoft_skus.csv")
    for path in shipped:
        assert (root / path).is_file(), path
        parts = path.split("/")
        left_out = [p for p in patterns for n in range(1, len(parts) + 1)
                    if fnmatch("/".join(parts[:n]), p.strip("/")) or fnmatch(parts[n - 1], p.strip("/"))]
        assert not left_out, f"{path} is left out of the package by .funcignore {left_out}"
