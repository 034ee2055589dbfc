"""Paths given on the ./dev command line. ./dev runs from the repository (it cds there first) and
passes the folder it was called from in PRORATA_CALLER_CWD, so that `--plan my/plan.json`
means the file beside the user, as in any other command."""
from __future__ import annotations

import os
from pathlib import Path

CALLER_CWD = "PRORATA_CALLER_CWD"


def from_caller(text: str) -> Path:
    """An argparse type: the path, relative ones taken from the caller's folder."""
    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    return Path(os.environ.get(CALLER_CWD) or os.getcwd()) / path
