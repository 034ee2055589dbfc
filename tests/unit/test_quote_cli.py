"""./dev quote as a user runs it: files in, invoice JSON out, one clear line for bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAN = {"tenant_id": "t-9", "name": "Fabrikam", "currency": "EUR", "timezone": "Europe/Berlin",
        "per_user_price": "12.50", "sku_prices": {"SPB": "20.60"}, "tax_rate": "0.19"}
LINE = {"at": "2026-10-14T15:03:00Z", "user_id": "u-1", "user_principal_name": "ann@fabrikam.de",
        "display_name": "Ann Lee", "user_type": "Member", "account_enabled": True, "skus": ["SPB"], "deleted": False}


def quote(tmp_path, plan=PLAN, lines=(LINE,), period="2026-10", raw_lines=None):
    plan_file, obs_file = tmp_path / "plan.json", tmp_path / "obs.jsonl"
    plan_file.write_text(plan if isinstance(plan, str) else json.dumps(plan))
    obs_file.write_text(raw_lines if raw_lines is not None else "\n".join(json.dumps(l) for l in lines) + "\n")
    return subprocess.run([sys.executable, "-m", "devtools.cli", "quote", "--plan", str(plan_file),
                           "--observations", str(obs_file), "--period", period],
                          cwd=ROOT, capture_output=True, text=True)


def test_quote_prints_the_invoice_json_and_exits_0(tmp_path):
    result = quote(tmp_path)
    assert result.returncode == 0, result.stderr
    invoice = json.loads(result.stdout)
    assert [(l["item"], l["days"], l["amount"]) for l in invoice["lines"]] == [("user", 18, "7.26"), ("SPB", 18, "11.96")]
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == ("19.22", "3.65", "22.87")


def test_quote_reproduces_the_specs_worked_example():
    result = subprocess.run([sys.executable, "-m", "devtools.cli", "quote", "--plan", "examples/plan.json",
                             "--observations", "examples/observations.jsonl", "--period", "2026-10"],
                            cwd=ROOT, capture_output=True, text=True)
    invoice = json.loads(result.stdout)
    assert invoice["lines"][0]["amount"] == "24.68" and invoice["total"] == "26.72"


@pytest.mark.parametrize("case, says", [
    (dict(raw_lines='{"at": "2026-10-01T00:00:00Z", "user_id": "u-1"}\n{"at": oops}\n'), "obs.jsonl line 2: not valid JSON"),
    (dict(lines=[{"user_id": "u-1"}]), "obs.jsonl line 1: field 'at'"),
    (dict(lines=[LINE, {"at": "2026-10-02T00:00:00Z"}]), "obs.jsonl line 2: field 'user_id'"),
    (dict(lines=[{**LINE, "at": "2026-10-02T00:00:00"}]), "obs.jsonl line 1: field 'at': time has no UTC offset"),
    (dict(plan={**PLAN, "currency": "EURO"}), "plan.json: field 'currency': unknown currency"),
    (dict(plan={**PLAN, "timezone": "Europe/Atlantis"}), "plan.json: field 'timezone': unknown time zone"),
    (dict(plan={**PLAN, "per_user_price": "-12.50"}), "plan.json: field 'per_user_price': must not be negative"),
    (dict(plan={**PLAN, "discount": "0.1"}), "plan.json: field 'discount': unknown plan field"),
    (dict(plan="{not json"), "plan.json line 1: not valid JSON"),
    (dict(period="2026-1"), "field 'period': period must be YYYY-MM"),
    (dict(period="October"), "field 'period'"),
])
def test_bad_input_exits_2_with_one_line_naming_what_is_wrong(tmp_path, case, says):
    result = quote(tmp_path, **case)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and says in result.stderr, result.stderr
