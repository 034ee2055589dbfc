"""./dev demo --guardrails: the month after the demo's, one client's staff triples; its invoice is
held while the others are emailed, and releasing it emails it exactly once."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_holds_the_tripled_invoice_emails_the_others_and_a_release_sends_it_once(tmp_path):
    result = subprocess.run([sys.executable, "-m", "devtools.cli", "demo", "--period", "2026-09", "--out",
                             str(tmp_path / "demo"), "--guardrails"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert "Traceback" not in said
    held = re.search(r"Contoso Dental\s+(NW-2026-\d{5}) HELD, not emailed: total [\d,.]+ USD is \d+ % of "
                     r"September's [\d,.]+ USD; .*\d+ users billed, \d+ in September", said)
    assert held, said
    assert re.search(r"Fabrikam Logistics\s+NW-2026-\d{5} emailed", said)
    assert re.search(r"Tailspin Studios\s+NW-2026-\d{5} emailed", said)
    number = held.group(1)
    assert f"invoice {number} emailed to accounts@contosodental.example" in said
    assert f"{number} was emailed 1 time(s)." in said
    # Its run's accounting files were written while it was held: the release names its own.
    assert re.search(rf"import files: invoices/2026-10/xero-invoices-released-{number}-USD\.csv, "
                     rf"invoices/2026-10/quickbooks-invoices-released-{number}-USD\.csv", said), said
