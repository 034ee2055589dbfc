"""Invoices rendered as HTML, PDF and email, and the run's CSV (shared/invoicing)."""
from __future__ import annotations

import io
from dataclasses import replace
import re
from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from pypdf import PdfReader

from shared.billing import Period, parse_plan
from shared.billing.invoice import Invoice, InvoiceLine
from shared.billing.money import round_half_up
from shared.invoicing import (
    Brand, BrandError, InvoiceDocument, render_email, render_html, render_pdf,
)
from shared.invoicing.render import ROWS_PER_TABLE, _chunks, _Row, _unicode_fonts, _UserBlock
from shared.settings import Settings

NBSP = "\u00a0"
BRAND = Brand(name="Northwind IT Services", address=("12 Harbour Road", "Bristol BS1 4QA"))
# A 1×1 PNG, as a data: URL (no network in a render).
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
         "DwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def make_document(users, *, currency="USD", locale="en_US", tax_rate="0.0825", period="2026-10",
                  number="INV-2026-00042", client="Contoso Ltd", email="", proration="daily"):
    """A document from [(display name, upn, [(item, unit price, days), ...]), ...], with amounts,
    subtotal, tax and total computed by the billing rules."""
    plan = parse_plan({"tenant_id": "t-1", "name": client, "currency": currency, "timezone": "UTC",
                       "per_user_price": "45.00", "sku_prices": {"SPB": "22.00", "E3": "36.00"},
                       "tax_rate": tax_rate, "proration": proration})
    the_period = Period.parse(period)
    lines = []
    for index, (name, upn, items) in enumerate(users):
        for item, price, days in items:
            price = Decimal(price)
            share = Fraction(days, the_period.days) if proration == "daily" else 1
            amount = round_half_up(Fraction(price) * share, currency)
            lines.append(InvoiceLine(f"u-{index}", upn, name, item, price, days, amount))
    subtotal = sum((line.amount for line in lines), Decimal(0))
    tax = round_half_up(Fraction(subtotal) * Fraction(plan.tax_rate), currency)
    invoice = Invoice(plan, the_period, tuple(lines), subtotal, tax, subtotal + tax)
    return InvoiceDocument(invoice=invoice, number=number, issued_on=date(2026, 11, 1),
                           due_on=date(2026, 12, 1), client_name=client,
                           client_address=("100 Main Street", "Springfield, IL 62701"), locale=locale,
                           client_email=email)


def many_users(count, *, skus=("SPB",)):
    """`count` users, each with the per-user fee and the given SKUs, some for part of the month."""
    users = []
    for n in range(count):
        days = 31 - (n % 7) * 3
        items = [("user", "45.00", days)] + [(sku, "22.00" if sku == "SPB" else "36.00", days) for sku in skus]
        users.append((f"User {n:03d} Example", f"user{n:03d}@contoso.com", items))
    return users


# A total of exactly 1,234.56: 1,140.47 + 8.25 % tax (94.09).
ROUND_TOTAL = [("Ann Lee", "ann@contoso.com", [("user", "1140.47", 31)])]


def pdf_text(pdf: bytes) -> list[str]:
    return [" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf)).pages]


# --------------------------------------------------------------------------- HTML

def test_html_names_every_user_with_upn_and_shows_the_total_in_us_dollars_with_the_code_for_en_us():
    users = ROUND_TOTAL + [("Bob Stone", "bob@contoso.com", [("user", "45.00", 17), ("SPB", "22.00", 17)])]
    document = make_document(users, tax_rate="0")
    html = render_html(make_document(ROUND_TOTAL), BRAND)
    assert f"USD{NBSP}1,234.56" in html and "$" not in html  # "$" alone could be any dollar
    html = render_html(document, BRAND)
    for name, upn, _ in users:
        assert name in html and upn in html


def test_html_shows_euros_the_german_way_for_de_de():
    html = render_html(make_document(ROUND_TOTAL, currency="EUR", locale="de_DE"), BRAND)
    assert f"1.234,56{NBSP}€" in html
    assert "Oktober 2026" in html
    assert "8,25" in html  # the tax rate as a German percentage


def test_html_shows_yen_without_minor_digits_and_dinars_with_three():
    yen = render_html(make_document([("Ann Lee", "ann@contoso.com", [("user", "1141", 31)])],
                                    currency="JPY", locale="ja_JP"), BRAND)
    assert f"JPY{NBSP}1,235" in yen and "1,235." not in yen  # ￥ is the yen's and the yuan's sign
    assert "2026年10月" in yen
    dinars = render_html(make_document(ROUND_TOTAL, currency="KWD"), BRAND)
    assert "KWD1,234.559" in dinars  # 1,140.470 + 94.089 tax


def test_html_shows_invoice_number_dates_period_days_and_tax_rate():
    html = render_html(make_document(many_users(3)), BRAND)
    for text in ("INV-2026-00042", "November 1, 2026", "December 1, 2026", "October 2026",
                 "31 days", "Tax (8.25%)", "Contoso Ltd", "100 Main Street", "Northwind IT Services",
                 "12 Harbour Road", "Managed user", "Microsoft 365 Business Premium", "25/31", "<pdf:pagenumber", "<pdf:pagecount"):
        assert text in html, text


def test_html_shows_a_subtotal_per_item_with_its_users_days_and_amount():
    users = [("Ann Lee", "ann@contoso.com", [("user", "45.00", 31), ("SPB", "22.00", 31)]),
             ("Bob Stone", "bob@contoso.com", [("user", "45.00", 10)])]
    html = render_html(make_document(users, tax_rate="0"), BRAND)
    summary = html[html.index("Charges by item"):html.index("Charges by user")]
    cells = r"</td><td[^>]*>"
    assert re.search(rf"Managed user{cells}USD{NBSP}45.00{cells}2{cells}41{cells}USD{NBSP}59\.52<", summary)
    assert re.search(rf"Microsoft 365 Business Premium{cells}USD{NBSP}22.00{cells}1{cells}31{cells}USD{NBSP}22\.00<",
                     summary)
    assert "sum of the rounded amounts" in summary


def test_html_explains_proration_by_days_or_full_months_as_the_plan_says():
    users = [("Ann Lee", "ann@contoso.com", [("user", "45.00", 10)])]
    daily = render_html(make_document(users), BRAND)
    assert "× days ÷ 31" in daily and f"USD{NBSP}14.52" in daily
    full = render_html(make_document(users, proration="none"), BRAND)
    assert "full monthly unit price" in full and "× days" not in full and f"USD{NBSP}45.00" in full


def test_html_escapes_display_names_and_client_names():
    users = [("<script>alert(1)</script>", "x@contoso.com", [("user", "45.00", 31)]),
             ("O'Brien & Sons", "ob@contoso.com", [("user", "45.00", 31)])]
    html = render_html(make_document(users, client="Smith & <Co>"), BRAND)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "O&#39;Brien &amp; Sons" in html
    assert "Smith &amp; &lt;Co&gt;" in html


def test_html_shows_the_logo_only_when_the_brand_has_one():
    document = make_document(ROUND_TOTAL)
    assert "<img" not in render_html(document, BRAND)
    with_logo = Brand(name="Northwind", logo_url=PIXEL)
    assert f'<img src="{PIXEL}"' in render_html(document, with_logo)


def test_html_of_an_invoice_without_lines_says_there_is_nothing_to_bill():
    html = render_html(make_document([]), BRAND)
    assert "No billable users" in html and f"USD{NBSP}0.00" in html


def test_every_line_is_in_some_table_when_the_lines_are_split_into_tables():
    users = many_users(120, skus=("SPB", "E3"))  # 360 lines
    html = render_html(make_document(users), BRAND)
    assert html.count('<table class="lines">') >= 360 // ROWS_PER_TABLE
    assert html.count("<thead>") == html.count('<table class="lines">') + 1  # + the item summary
    for name, _upn, _ in users:
        assert name in html


def test_a_user_with_more_lines_than_a_table_holds_continues_in_the_next_table():
    rows = tuple(_Row(f"SKU{n}", "31/31", "$1.00", "$1.00") for n in range(ROWS_PER_TABLE + 5))
    tables = _chunks([_UserBlock("Ann", "ann@x.com", rows[:3], False),
                      _UserBlock("Big", "big@x.com", rows, True)], ROWS_PER_TABLE)
    assert all(sum(len(block.rows) for block in table) <= ROWS_PER_TABLE for table in tables)
    assert sum(len(block.rows) for table in tables for block in table) == 3 + len(rows)
    big = [block for table in tables for block in table if block.display_name == "Big"]
    assert [block.continued for block in big] == [False] + [True] * (len(big) - 1) and len(big) == 2


# --------------------------------------------------------------------------- PDF

@pytest.fixture(scope="module")
def small_pdf():
    users = [("Ann Lee", "ann@contoso.com", [("user", "1140.47", 31)]),
             ("O'Brien & Sons", "ob@contoso.com", [("user", "45.00", 12), ("SPB", "22.00", 12)]),
             ("Chloé Dupont", "chloe@contoso.com", [("user", "45.00", 31)])]
    document = make_document(users)
    return document, render_pdf(document, Brand(name="Northwind IT Services", logo_url=PIXEL))


@pytest.fixture(scope="module")
def long_pdf():
    document = make_document(many_users(75))  # 150 lines
    assert len(document.invoice.lines) == 150
    return document, render_pdf(document, BRAND)


def test_pdf_text_has_every_user_the_invoice_number_and_the_total(small_pdf):
    document, pdf = small_pdf
    assert pdf.startswith(b"%PDF-")
    text = " ".join(pdf_text(pdf))
    for line in document.invoice.lines:
        assert line.display_name in text
    assert "INV-2026-00042" in text
    total = document.invoice.total
    assert f"USD {total:,}" in text


def test_pdf_draws_the_data_url_logo(small_pdf):
    _, pdf = small_pdf
    assert len(PdfReader(io.BytesIO(pdf)).pages[0].images) == 1


def test_a_150_line_pdf_has_several_pages_each_numbered_with_the_table_header_repeated(long_pdf):
    document, pdf = long_pdf
    pages = pdf_text(pdf)
    assert len(pages) > 1
    assert f"Page 2 of {len(pages)}" in pages[1]
    assert "User Item Days Unit price Amount" in pages[1]
    assert f"Page {len(pages)} of {len(pages)}" in pages[-1]
    text = " ".join(pages)
    for name in {line.display_name for line in document.invoice.lines}:
        assert name in text


@pytest.mark.skipif(_unicode_fonts() is None, reason="no DejaVu Sans installed to embed")
def test_pdf_draws_cyrillic_names_with_an_embedded_font_and_never_fails_on_them():
    users = [("Дмитрий Иванов", "dmitry@contoso.com", [("user", "45.00", 31)])]
    pdf = render_pdf(make_document(users, currency="EUR", locale="de_DE"), BRAND)
    assert "Дмитрий Иванов" in " ".join(pdf_text(pdf))


# --------------------------------------------------------------------------- email

def test_email_subject_names_the_invoice_number_the_msp_and_the_period():
    subject, _ = render_email(make_document(ROUND_TOTAL), BRAND)
    assert subject == "Invoice INV-2026-00042 from Northwind IT Services for October 2026"


def test_email_subject_is_plain_text_on_one_line_and_the_body_is_escaped():
    brand = Brand(name="O'Brien & Sons\nIT")
    subject, body = render_email(make_document(ROUND_TOTAL, client="<b>Contoso</b>"), brand)
    assert subject == "Invoice INV-2026-00042 from O'Brien & Sons IT for October 2026"
    assert "O&#39;Brien &amp; Sons" in body and "&lt;b&gt;Contoso&lt;/b&gt;" in body


def test_email_body_states_the_total_the_due_date_and_that_the_pdf_is_attached():
    _, body = render_email(make_document(ROUND_TOTAL, currency="EUR", locale="de_DE"), BRAND)
    assert f"1.234,56{NBSP}€" in body and "1. Dezember 2026" in body
    assert "angehängt" in body and "INV-2026-00042" in body


# --------------------------------------------------------------------------- brand and document

def test_brand_from_settings_reads_name_address_lines_logo_and_colours():
    brand = Brand.from_settings(Settings({"BRAND_NAME": "Northwind", "BRAND_ADDRESS": "1 Road | Town|",
                                          "BRAND_LOGO_URL": PIXEL, "BRAND_PRIMARY_COLOR": "#0a0",
                                          "BRAND_ACCENT_COLOR": "#eeeeee"}))
    assert brand == Brand("Northwind", ("1 Road", "Town"), PIXEL, "#00AA00", "#EEEEEE")
    default = Brand.from_settings(Settings({}))
    assert (default.name, default.address, default.logo_url, default.primary_color) == ("Your MSP", (), "", "#1F4E79")


@pytest.mark.parametrize("setting, value", [("BRAND_PRIMARY_COLOR", "blue"), ("BRAND_ACCENT_COLOR", "#12345"),
                                            ("BRAND_LOGO_URL", "ftp://logo")])
def test_brand_from_settings_rejects_a_bad_value_naming_the_setting(setting, value):
    with pytest.raises(BrandError, match=setting):
        Brand.from_settings(Settings({setting: value}))


def test_invoice_document_rejects_an_unknown_locale_and_a_due_date_before_the_invoice_date():
    document = make_document(ROUND_TOTAL)
    with pytest.raises(ValueError, match="locale"):
        make_document(ROUND_TOTAL, locale="xx_NOPE")
    with pytest.raises(ValueError, match="due date"):
        InvoiceDocument(document.invoice, "INV-1", date(2026, 11, 2), date(2026, 11, 1), "Contoso")


def test_a_light_primary_colour_gets_dark_text_on_it_and_a_dark_one_white_text():
    assert Brand(name="Northwind", primary_color="#FFD166").on_primary_color != "#FFFFFF"
    assert Brand(name="Northwind", primary_color="#1F4E79").on_primary_color == "#FFFFFF"


def test_a_one_off_charge_line_shows_a_dash_for_its_days_never_zero_days_of_the_month():
    from shared.billing.charges import parse_charge, with_charges

    document = make_document([("Ann Lee", "ann@contoso.com", [("user", "45.00", 31)])])
    charge = parse_charge({"period": "2026-10", "description": "Server migration", "amount": "1200.00"},
                          document.invoice.plan)
    invoice = with_charges(document.invoice, [charge])
    html = render_html(replace(document, invoice=invoice), BRAND)
    assert "Server migration" in html and "31/31" in html
    assert "0/31" not in html
    assert html.count("\u2014") == 2  # the charge's days cell, in its line and in the per-item subtotals
