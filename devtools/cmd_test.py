"""./dev test: the linter (ruff) and the type checker (mypy), then the whole suite, in parallel on
the machine's cores. Given test paths (`./dev test tests/unit`), only those tests run, without
the checks. `./dev test --no-checks` skips the checks on a whole run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def checks() -> int:
    """ruff and mypy as configured in pyproject.toml; the first that fails stops the run."""
    for name, command in (("ruff", [sys.executable, "-m", "ruff", "check", "--quiet", "."]),
                          ("mypy", [sys.executable, "-m", "mypy", "--no-error-summary"])):
        code = subprocess.call(command, cwd=ROOT)
        if code != 0:
            print(f"dev test: {name} found problems (above); fix them, then run ./dev test again.", file=sys.stderr)
            return code
    return 0


def main(argv: list[str]) -> int:
    skip = "--no-checks" in argv
    argv = [a for a in argv if a != "--no-checks"]
    if not skip and not any(not a.startswith("-") for a in argv):
        code = checks()
        if code != 0:
            return code
    args = [sys.executable, "-m", "pytest", "-n", os.environ.get("PRORATA_TEST_WORKERS", "2"), *argv]
    return subprocess.call(args)
