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
    assert len(messages) == 3
    assert all(m["attachments"] and m["attachments"][0]["contentType"] == "application/pdf" for m in messages)
