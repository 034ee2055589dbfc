"""./dev commands that name a client refuse a --tenant that is not a tenant id, before any
storage or Graph call: exit 2, one line naming the argument and the value."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", [
    ["invoice", "ubl", "--tenant", "6c2b8f1e", "--period", "2026-10"],
    ["invoice", "list", "--tenant", "contoso"],
    ["tenants", "show", "--tenant", "nobody"],
    ["tenants", "charge", "--tenant", "x'; drop", "--period", "2026-11", "--description", "d", "--amount", "1"],
    ["reconcile", "--tenant", "x"],
    ["ledger", "import", "--tenant", "t-1", "--observations", "history.jsonl"],
    ["ledger", "export", "--tenant", "nobody", "--period", "2026-09"],
    ["close", "--period", "2026-10", "--tenant", "00000000-0000-4000-8000-000000000000", "--tenant", "nope"],
])
def test_a_tenant_that_is_not_a_guid_is_refused_naming_the_argument(command):
    result = subprocess.run([sys.executable, "-m", "devtools.cli", *command], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "argument --tenant: expected the client's Entra tenant id (a GUID), got " in result.stderr
    assert "Traceback" not in result.stderr
