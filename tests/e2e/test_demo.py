"""The demo path end to end, as a new user runs it: ./dev demo on local stand-ins."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pypdf import PdfReader

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_closes_a_month_and_leaves_readable_invoices_emails_and_a_csv(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "devtools.cli", "demo", "--period", "2026-10", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "[5/5] Done." in result.stdout and result.stdout.count("emailed to") == 3
    assert result.stdout.count("licenses: ") == 3

    pdfs = sorted((out / "invoices" / "2026-10").rglob("*.pdf"))
    assert len(pdfs) == 3
    text = "\n".join(page.extract_text() for page in PdfReader(str(pdfs[0])).pages)
    assert "October 2026" in text and "/31" in text  # prorated days of a 31-day month
    assert any(word in text for word in ("Lee", "Chen", "Okafor", "Patel", "Schmidt", "Nakamura", "Silva", "Garcia"))

    csvs = list((out / "invoices" / "2026-10").glob("invoice-lines-*.csv"))
    assert len(csvs) == 1 and csvs[0].read_text(encoding="utf-8").count("\n") > 30
    findings = list((out / "invoices" / "2026-10").glob("reconciliation-*.csv"))
    assert len(findings) == 1 and "idle_units" in findings[0].read_text(encoding="utf-8-sig")

    messages = [json.loads(p.read_text()) for p in (out / "outbox").glob("*/message.json")]
    assert len(messages) == 7  # October's three invoices, September's three, and one credit note
    assert all(m["attachments"] and m["attachments"][0]["contentType"] == "application/pdf" for m in messages)

    # a price change taking effect mid-month, and a correction of the month before (billing-rules.md)
    assert "Price change: Contoso Dental: from 15 October 2026, licenses billed: O365_BUSINESS_PREMIUM 24.00 USD." \
        in result.stdout
    [correction] = [line for line in result.stdout.splitlines() if "Correction: " in line]
    assert "Credit note CN-2026-00001 for Contoso Dental: " in correction and "left on 28 September, known since " \
        "3 October; -" in correction
    [credit_note] = (out / "invoices" / "2026-09").rglob("CN-2026-00001.pdf")
    text = "\n".join(page.extract_text() for page in PdfReader(str(credit_note)).pages)
    assert "CREDIT NOTE" in text and "Corrects invoice" in text
    [contoso] = [p for p in (out / "invoices" / "2026-10").rglob("*.pdf") if "6c2b8f1e" in str(p)]
    october = "\n".join(page.extract_text() for page in PdfReader(str(contoso)).pages)
    assert "22.00" in october and "24.00" in october  # licenses at the old and the new price
