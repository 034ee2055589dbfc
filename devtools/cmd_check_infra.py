"""./dev check-infra: checkov on infra/bicep.

checkov and its many dependencies live in a virtual environment of their own, `.venv-checkov`,
installed from the pinned `requirements-checkov.txt` on first use (and again when that file
changes), so they never clash with the app's pins. Every check that is skipped is skipped
inline, beside the resource, with its reason (`// checkov:skip=CKV_...: why`); the command
fails on any other failed check."""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-checkov"
REQUIREMENTS = ROOT / "requirements-checkov.txt"


def _stamp() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]


def ensure_checkov() -> Path:
    """The checkov executable, installing the pinned environment first if it is missing or stale."""
    executable = VENV / "bin" / "checkov"
    stamp_file = VENV / ".prorata-stamp"
    if executable.exists() and stamp_file.exists() and stamp_file.read_text().strip() == _stamp():
        return executable
    print("dev: installing checkov into .venv-checkov (first run or requirements-checkov.txt changed)",
          file=sys.stderr, flush=True)
    if not (VENV / "bin" / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(REQUIREMENTS)], check=True, stdout=sys.stderr)
    stamp_file.write_text(_stamp())
    return executable


_SKIP = re.compile(r"checkov:skip=([A-Za-z_\d-]+)(?::\s*(.*))?")


def unjustified_skips(directory: Path) -> list[str]:
    """`file:line: CKV_...` of each skip comment without a reason of a few words."""
    found = []
    for path in sorted(directory.rglob("*.bicep")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = _SKIP.search(line)
            if match and len((match.group(2) or "").split()) < 4:
                found.append(f"{path.relative_to(directory)}:{number}: {match.group(1)}")
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./dev check-infra", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--directory", default=str(ROOT / "infra" / "bicep"), help="what to check (infra/bicep)")
    args = parser.parse_args(argv)
    unjustified = unjustified_skips(Path(args.directory))
    if unjustified:
        print("dev check-infra: every skipped check needs its reason beside it (// checkov:skip=CKV_X: why):",
              *unjustified, sep="\n  ", file=sys.stderr)
        return 1
    try:
        checkov = ensure_checkov()
    except (subprocess.CalledProcessError, OSError) as error:
        print(f"dev check-infra: could not install checkov: {error}", file=sys.stderr)
        return 2
    command = [str(checkov), "--directory", args.directory, "--framework", "bicep", "--compact", "--quiet",
               "--skip-download", "--output", "cli"]
    # offline: no platform download, no version check
    result = subprocess.run(command, env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"})
    return result.returncode
