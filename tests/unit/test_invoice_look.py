"""What a client's accountant sees: invoices rendered to pictures (pypdfium2), the PDF's text
layer checked for words drawn over each other, and long names kept inside their columns."""
from __future__ import annotations

import csv
from datetime import date, datetime, timezone

import pypdfium2 as pdfium
import pytest

from shared.billing import Observation, Period, compute_invoice, parse_plan
from shared.invoicing import Brand, InvoiceDocument, render_pdf
from shared.invoicing.document import PaymentDetails
from shared.invoicing.products import CATALOG_PATH
from shared.invoicing.render import wrap_text

with open(CATALOG_PATH, encoding="utf-8", newline="") as _handle:
    LONGEST = max(csv.DictReader(_handle), key=lambda row: len(row["product_name"]))
SIXTY = "Maximilian Alexander Konstantin von Aschaffenburg-Hohenlohe XY"[:60]
BRAND = Brand(name="Northwind IT Services", address=("12 Harbour Road", "Bristol BS1 4QA"), vat_id="GB123456789",
              payment=PaymentDetails(iban="GB82WEST12345698765432", bic="NWBKGB2L"))


def document(locale: str, currency: str) -> InvoiceDocument:
    long_sku = LONGEST["string_id"]
    plan = parse_plan({"tenant_id": "t-1", "name": "Contoso", "currency": currency, "timezone": "UTC",
                       "per_user_price": "45.00", "tax_rate": "0.19",
                       "sku_prices": {"SPB": "22.00", long_sku: "57.00", "CONTOSO_UNNAMED_ADDON_WITHOUT_ANY_SPACES_1TB": "3.00"}})
    start = datetime(2026, 9, 1, tzinfo=timezone.utc)
    people = [Observation(start, "u-1", "ann@contoso.com", "Ann Lee", skus=("SPB", long_sku)),
              Observation(datetime(2026, 10, 12, tzinfo=timezone.utc), "u-2",
                          "maximilian.konstantin.von.aschaffenburg-hohenlohe@contoso.com", SIXTY,
                          skus=(long_sku, "CONTOSO_UNNAMED_ADDON_WITHOUT_ANY_SPACES_1TB", "SPB"))]
    people += [Observation(start, f"u-{n}", f"user{n}@contoso.com", f"User {n:02d}", skus=("SPB",)) for n in range(3, 9)]
    invoice = compute_invoice(plan, people, Period(2026, 10))
    return InvoiceDocument(invoice=invoice, number="INV-2026-00042", issued_on=date(2026, 11, 1),
                           due_on=date(2026, 12, 1), client_name="Contoso", locale=locale)


def words(page) -> list[tuple[str, tuple[float, float, float, float]]]:
    """The words of a PDF page with their boxes (left, bottom, right, top), from the text layer."""
    text = page.get_textpage()
    found, current, box = [], "", None
    for index in range(text.count_chars()):
        char = text.get_text_range(index, 1)
        if not char.strip():
            if current:
                found.append((current, box))
            current, box = "", None
            continue
        left, bottom, right, top = text.get_charbox(index)
        if box is not None and (left < box[2] - 0.5 or abs(bottom - box[1]) > 2):  # a new line or a jump back
            found.append((current, box))
            current, box = "", None
        current += char
        box = (left, bottom, right, top) if box is None else (box[0], min(box[1], bottom), max(box[2], right),
                                                              max(box[3], top))
    if current:
        found.append((current, box))
    return found


def overlapping(found):
    clashes = []
    for i, (word, a) in enumerate(found):
        for other, b in found[i + 1:]:
            width = min(a[2], b[2]) - max(a[0], b[0])
            height = min(a[3], b[3]) - max(a[1], b[1])
            if width > 0.5 and height > 0.5:
                clashes.append((word, other))
    return clashes


@pytest.mark.parametrize("locale, currency", [("de_DE", "EUR"), ("en_GB", "GBP")])
def test_an_invoice_rendered_to_pictures_has_no_words_drawn_over_each_other(locale, currency, tmp_path):
    pdf = pdfium.PdfDocument(render_pdf(document(locale, currency), BRAND))
    in_column, crossing = [], []
    for number in range(len(pdf)):
        page = pdf[number]
        picture = tmp_path / f"invoice-{locale}-{number + 1}.png"
        page.render(scale=1.5).to_pil().save(picture)
        assert picture.stat().st_size > 10_000
        found = words(page)
        assert not overlapping(found), overlapping(found)[:5]
        # The item column of "Charges by user" spans 33 % to 64 % of the text width (1.6 cm
        # margins), below its header cell ("Item", "Position"), on every page the table crosses.
        margin = 45.35
        text_width = page.get_width() - 2 * margin
        left, right = margin + 0.33 * text_width, margin + 0.64 * text_width
        header = [box for word, box in found if word in ("Item", "Position") and abs(box[0] - left) < 12]
        if not header:
            continue
        below = min(box[1] for box in header)
        column = [(word, box) for word, box in found if box[3] < below and left - 1 <= box[0] < right]
        in_column += [word for word, _ in column]
        crossing += [(word, box) for word, box in column if box[2] > right + 0.5]
    assert {"Conferencing", "Premium"} <= set(in_column)  # the longest product name is in the column
    assert not crossing, f"words running out of the item column: {crossing[:5]}"


def test_long_names_wrap_into_lines_that_fit_and_keep_every_character():
    for text in (LONGEST["product_name"], SIXTY, "CONTOSO_UNNAMED_ADDON_WITHOUT_ANY_SPACES_1TB" * 3):
        lines = wrap_text(text, 140.0)
        assert len(lines) > 1
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")
        from reportlab.pdfbase.pdfmetrics import stringWidth
        assert all(stringWidth(line, "Helvetica", 9) <= 140.0 for line in lines)
