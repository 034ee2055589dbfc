"""./dev check-infra: checkov finds nothing in infra/bicep but checks skipped with a reason."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def check_infra(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devtools.cli", "check-infra", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)


def test_checkov_passes_on_the_bicep_with_every_skip_justified_inline():
    result = check_infra()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Failed checks: 0" in result.stdout
    assert "Parsing errors" not in result.stdout  # a file checkov cannot parse would go unchecked


def test_a_skip_without_its_reason_is_refused(tmp_path):
    (tmp_path / "main.bicep").write_text(
        "resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n"
        "  // checkov:skip=CKV_AZURE_35\n  name: 'x'\n}\n", encoding="utf-8")
    result = check_infra("--directory", str(tmp_path))
    assert result.returncode == 1
    assert "main.bicep:2: CKV_AZURE_35" in result.stderr
