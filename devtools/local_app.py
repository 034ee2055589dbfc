"""The app for ./dev commands: settings from local.settings.json (or, on a fresh clone, the
committed example), the environment winning, and Azurite started when the storage is the
development storage and none is running (stopped again when the command ends)."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from devtools.azurite import ensure_azurite
from devtools.host.settings import read_local_settings
from shared.app import Prorata
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def local_settings(path: Path | None = None) -> dict[str, str]:
    """local.settings.json's Values (or the example's), with the environment winning."""
    if path is not None and not path.exists():
        raise SystemExit(f"dev: settings file {path} does not exist")
    candidates = [path] if path else [ROOT / "local.settings.json", ROOT / "local.settings.json.example"]
    values: dict[str, str] = {}
    for candidate in candidates:
        if candidate and candidate.exists():
            values = {k: str(v) for k, v in read_local_settings(candidate).get("Values", {}).items()}
            break
    return {**values, **{k: v for k, v in os.environ.items() if k in values or k.startswith("AzureWebJobs")}}


@contextmanager
def local_app(settings_file: Path | None = None, *, quiet: bool = False) -> Iterator[Prorata]:
    values = local_settings(settings_file)
    connection, started = ensure_azurite(values.get("AzureWebJobsStorage"))
    if started is not None and not quiet:
        print("note: started a temporary in-memory Azurite for this command; what it stores is gone when the "
              "command ends. Keep `./dev host` running (it keeps one), or set AzureWebJobsStorage to a real "
              "storage account, to keep data between commands.", file=sys.stderr)
    try:
        yield Prorata(Settings({**values, "AzureWebJobsStorage": connection}))
    finally:
        if started is not None:
            started.stop()


def graph_failure(command: str, app: Prorata, error: Exception) -> int:
    """Says in one line on stderr why Microsoft Graph could not be used; returns exit code 1."""
    from shared.graph.gateway import GraphError

    if isinstance(error, GraphError):
        print(f"{command}: Microsoft Graph refused: {error}", file=sys.stderr)
    else:
        print(f"{command}: cannot reach Microsoft Graph at {app.settings.get('GRAPH_BASE_URL')} ({error}); "
              "for local work start the simulator with ./dev graph-sim", file=sys.stderr)
    return 1
