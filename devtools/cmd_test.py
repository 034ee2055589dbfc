"""./dev test: the whole suite, in parallel on the machine's cores."""
from __future__ import annotations

import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    args = [sys.executable, "-m", "pytest", "-n", os.environ.get("PRORATA_TEST_WORKERS", "2"), *argv]
    return subprocess.call(args)
