"""An invoice PDF says "Page N of M" on every page, with M its real page count, from a single
layout pass (xhtml2pdf's <pdf:pagecount/> would lay the document out twice)."""
from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader

from shared.invoicing import render_pdf
from tests.unit.test_invoice_render import BRAND, make_document, many_users


def footers(pdf: bytes) -> list[tuple[int, int]]:
    pages = [" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf)).pages]
    return [tuple(map(int, re.findall(r"Page (\d+) of (\d+)", text)[-1])) for text in pages]


@pytest.mark.parametrize("users", [1, 40, 150])
def test_every_page_counts_the_pages_of_the_whole_invoice_from_one_layout_pass(monkeypatch, users):
    from xhtml2pdf.xhtml2pdf_reportlab import PmlBaseDoc

    def second_pass(*args, **kwargs):
        raise AssertionError("the invoice was laid out twice")

    monkeypatch.setattr(PmlBaseDoc, "multiBuild", second_pass)
    pdf = render_pdf(make_document(many_users(users)), BRAND)
    pages = footers(pdf)
    assert pages == [(n, len(pages)) for n in range(1, len(pages) + 1)]
    assert users < 100 or len(pages) > 2
