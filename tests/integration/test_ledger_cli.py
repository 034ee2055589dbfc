"""./dev ledger import and export as an MSP uses them: backfill, then show the accountant the month."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from shared.billing import Period, compute_invoice, parse_observations_jsonl, parse_plan
from tests.integration.test_ledger import history

ROOT = Path(__file__).resolve().parents[2]
PLAN = {"tenant_id": "t", "name": "Contoso Ltd", "currency": "EUR", "timezone": "Europe/Berlin",
        "per_user_price": "12.50", "sku_prices": {"SPB": "20.60", "E3": "33.00"}, "tax_rate": "0.19"}


def dev(*args: str, connection: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AzureWebJobsStorage": connection}
    return subprocess.run([sys.executable, "-m", "devtools.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_quote_of_an_exported_month_equals_the_close_computation(azurite, tmp_path):
    tenant = str(uuid.uuid4())
    observations = history(users=6, changes=8, seed=11)
    source = tmp_path / "history.jsonl"
    source.write_text("\n".join(json.dumps(o.to_dict()) for o in observations) + "\n")
    first = dev("ledger", "import", "--tenant", tenant, "--observations", str(source), connection=azurite.connection_string)
    assert first.returncode == 0, first.stderr
    assert f"{len(observations)} new record(s)" in first.stdout
    again = dev("ledger", "import", "--tenant", tenant, "--observations", str(source), connection=azurite.connection_string)
    assert "0 new record(s)" in again.stdout

    exported = tmp_path / "2026-09.jsonl"
    export = dev("ledger", "export", "--tenant", tenant, "--period", "2026-09", "--zone", "Europe/Berlin",
                 "--out", str(exported), connection=azurite.connection_string)
    assert export.returncode == 0, export.stderr
    lines = parse_observations_jsonl(exported.read_text().splitlines())
    assert lines and all(o.at.isoformat() < "2026-10-01" for o in lines)

    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(PLAN))
    quote = subprocess.run([sys.executable, "-m", "devtools.cli", "quote", "--plan", str(plan_file),
                            "--observations", str(exported), "--period", "2026-09"],
                           cwd=ROOT, capture_output=True, text=True)
    expected = compute_invoice(parse_plan(PLAN), observations, Period(2026, 9)).to_json()
    assert json.loads(quote.stdout) == expected


def test_exporting_an_unknown_tenant_without_a_zone_says_what_to_do(azurite):
    result = dev("ledger", "export", "--tenant", str(uuid.uuid4()), "--period", "2026-09",
                 connection=azurite.connection_string)
    assert result.returncode == 2 and "give --zone" in result.stderr
