"""The demo path end to end, as a new user runs it: ./dev demo on local stand-ins."""
from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from shared.invoicing.einvoice.validate import validate
from shared.invoicing.products import CATALOG_PATH

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One run of ./dev demo for the tests of this module: (the finished process, its --out folder)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    result = subprocess.run([sys.executable, "-m", "devtools.cli", "demo", "--period", "2026-10", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    return result, out


def test_the_demo_closes_a_month_and_leaves_readable_invoices_emails_and_a_csv(demo):
    result, out = demo
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "[5/5] Done." in result.stdout and result.stdout.count("emailed to") == 4
    assert result.stdout.count("licenses: ") == 4

    pdfs = sorted((out / "invoices" / "2026-10").rglob("*.pdf"))
    assert len(pdfs) == 4
    text = "\n".join(page.extract_text() for page in PdfReader(str(pdfs[0])).pages)
    assert "October 2026" in text and "/31" in text  # prorated days of a 31-day month
    assert any(word in text for word in ("Lee", "Chen", "Okafor", "Patel", "Schmidt", "Nakamura", "Silva", "Garcia"))

    # One e-invoice per PDF, each passing the UBL 2.1 XSD and the EN 16931 schematron.
    ubls = sorted((out / "invoices" / "2026-10").rglob("*.xml"))
    assert [p.with_suffix(".pdf") for p in ubls] == pdfs
    for ubl in ubls:
        validate(ubl.read_bytes(), ubl.stem)

    # The Xero and QuickBooks import files, one per currency, every required Xero column filled.
    folder = out / "invoices" / "2026-10"
    xero = sorted(folder.glob("xero-invoices-*.csv"))
    quickbooks = sorted(folder.glob("quickbooks-invoices-*.csv"))
    assert [p.name[-7:-4] for p in xero] == [p.name[-7:-4] for p in quickbooks] == ["AUD", "EUR", "GBP", "USD"]
    for path in xero:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        assert rows and all(row[name] for row in rows for name in rows[0] if name.startswith("*"))
    findings = list((out / "invoices" / "2026-10").glob("reconciliation-*.csv"))
    assert len(findings) == 1 and "idle_units" in findings[0].read_text(encoding="utf-8-sig")

    messages = [json.loads(p.read_text()) for p in (out / "outbox").glob("*/message.json")]
    assert len(messages) == 9  # October's four invoices, September's four, and one credit note
    assert all(m["attachments"] and m["attachments"][0]["contentType"] == "application/pdf" for m in messages)
    # The client that asked for e-invoices (Fabrikam) gets its UBL next to the PDF, each month.
    kinds = [tuple(a["contentType"] for a in m["attachments"]) for m in messages]
    assert sorted(set(kinds)) == [("application/pdf",), ("application/pdf", "application/xml")]
    assert kinds.count(("application/pdf", "application/xml")) == 2

    # a price change taking effect mid-month, and a correction of the month before (billing-rules.md)
    assert "Price change: Contoso Dental: from 15 October 2026, licenses billed: O365_BUSINESS_PREMIUM 24.00 USD." \
        in result.stdout
    [correction] = [line for line in result.stdout.splitlines() if "Correction: " in line]
    assert "Credit note CN-2026-00001 for Contoso Dental: " in correction and "left on 28 September, known since " \
        "3 October; -" in correction
    [credit_note] = (out / "invoices" / "2026-09").rglob("CN-2026-00001.pdf")
    # ...in Xero's credit-note import of the run that issued it (October's), the amounts credited
    # positive and its Reference the invoice it corrects; in no invoice file, not in QuickBooks'
    [credit_file] = folder.glob("xero-credit-notes-*.csv")
    credited = list(csv.DictReader(io.StringIO(credit_file.read_text(encoding="utf-8"), newline="")))
    assert {row["*CreditNoteNumber"] for row in credited} == {"CN-2026-00001"}
    assert all(row[name] for row in credited for name in credited[0] if name.startswith("*"))
    assert all(row["*Quantity"] == "1" and not row["*UnitAmount"].startswith("-") and not row["Total"].startswith("-")
               for row in credited)
    [corrected] = {row["Reference"] for row in credited}  # September's invoice of that client, to allocate it to
    assert list((out / "invoices" / "2026-09").rglob(f"{corrected}.pdf")) and corrected != "CN-2026-00001"
    assert not any("CN-2026-00001" in path.read_text(encoding="utf-8") for path in xero + quickbooks)
    assert not any("CN-2026-00001" in path.read_text(encoding="utf-8")
                   for path in (out / "invoices" / "2026-09").glob("*-*.csv"))
    text = "\n".join(page.extract_text() for page in PdfReader(str(credit_note)).pages)
    assert "CREDIT NOTE" in text and "Corrects invoice" in text
    [contoso] = [p for p in (out / "invoices" / "2026-10").rglob("*.pdf") if "6c2b8f1e" in str(p)]
    october = "\n".join(page.extract_text() for page in PdfReader(str(contoso)).pages)
    assert "22.00" in october and "24.00" in october  # licenses at the old and the new price


# What a client reads: product names, how to pay, the MSP's registration, one invoice in German.
ENGLISH_WORDS = ("INVOICE", "Invoice number", "Due date", "Amount due", "BILL TO", "Charges by", "Unit price",
                 "Subtotal", "Total due", "How to pay", "Payment reference", "Managed user", "Page ", "VAT ID")


def test_the_demo_invoices_name_products_say_how_to_pay_and_one_is_wholly_german(demo):
    result, out = demo
    assert result.returncode == 0, result.stdout + result.stderr
    texts = {pdf: "\n".join(page.extract_text() for page in PdfReader(str(pdf)).pages)
             for pdf in sorted((out / "invoices" / "2026-10").rglob("*.pdf"))}
    assert len(texts) == 4
    with open(CATALOG_PATH, encoding="utf-8", newline="") as handle:
        part_numbers = [row["string_id"] for row in csv.DictReader(handle)]
    for pdf, text in texts.items():
        flat = " ".join(text.split())
        assert re.search(r"(Microsoft|Office) 365 (Business (Premium|Standard)|E3|E5)", flat), pdf
        assert "GB82 WEST 1234 5698 7654 32" in flat and "WESTGB2L" in flat, pdf
        assert "GB 123 4567 89" in flat and "09876543" in flat, pdf
        assert "#EXT#" not in text, pdf
        shown = [part for part in part_numbers if re.search(rf"(?<![\w-]){re.escape(part)}(?![\w-])", flat)]
        assert not shown, f"{pdf.name} shows Microsoft part numbers {shown}"
    german = [text for text in texts.values() if "RECHNUNG" in text]
    assert len(german) == 1
    flat = " ".join(german[0].split())
    for word in ENGLISH_WORDS:
        assert word not in flat, word
    for word in ("Rechnungsnummer", "Fälligkeitsdatum", "MwSt. (19", "Betreuter Benutzer", "Verwendungszweck",
                 "Ihre Bestellnummer", "BE-2026-0117", "Copilot for Microsoft 365"):
        assert word in flat, word
    assert any("@partner.example" in text for text in texts.values())  # guests by their real address

    messages = [json.loads(p.read_text()) for p in (out / "outbox").glob("*/message.json")]
    bodies = {m["subject"].split()[1]: json.dumps(m["body"], ensure_ascii=False) for m in messages}
    assert any("AUD\u00a01,917.30" in body for body in bodies.values())  # the AUD client: a code, not "$"
    assert not any("$" in body for body in bodies.values())  # never a bare dollar sign
    assert [m["subject"] for m in messages if m["subject"].startswith("Rechnung ")]
