"""./dev host: the development server. Serves function_app.py on 127.0.0.1:7071 as `func start`
would (HTTP, timer and queue triggers), starting Azurite when the storage setting is
development storage. Not for production."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STORAGE = "AzureWebJobsStorage"


class _HostFormatter(logging.Formatter):
    """`[2026-11-25T02:10:28.850Z] message`, as the Functions host prints its console log."""

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_HostFormatter("[%(asctime)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs log every HTTP call at INFO


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./dev host",
        description="DEVELOPMENT server, not for production: serves the Functions app "
                    "(function_app.py) on 127.0.0.1 with its HTTP, timer and queue triggers, "
                    "as `func start` would. Starts Azurite when AzureWebJobsStorage is "
                    "UseDevelopmentStorage=true or absent, and stops it on exit.")
    parser.add_argument("--port", type=int, default=None,
                        help="HTTP port (default: Host.LocalHttpPort of the settings file, else 7071)")
    parser.add_argument("--app", default="function_app", help="module holding `app` (default: function_app)")
    parser.add_argument("--root", default=str(REPO_ROOT),
                        help="the app's root folder, with host.json (default: the repository)")
    parser.add_argument("--no-timers", action="store_true", help="do not run timer triggers on their schedules")
    parser.add_argument("--no-queues", action="store_true", help="do not run queue triggers (messages wait in their queues)")
    parser.add_argument("--settings", default="local.settings.json",
                        help="settings file whose Values become app settings (default: local.settings.json)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    configure_logging()
    log = logging.getLogger("devtools.host")

    from devtools.azurite import AzuriteError, ensure_azurite, is_development_storage
    from devtools.host import DevHost, read_local_settings

    root = Path(args.root).resolve()
    settings_path = Path(args.settings)
    if not settings_path.is_absolute():
        settings_path = root / settings_path
    local = read_local_settings(settings_path)
    port = args.port if args.port is not None else int(local.get("Host", {}).get("LocalHttpPort", 7071))
    storage = os.environ.get(STORAGE, local.get("Values", {}).get(STORAGE))
    log.info("Prorata development host: a DEVELOPMENT server, not for production.")
    azurite = host = None
    try:
        if is_development_storage(storage):
            connection, azurite = ensure_azurite(storage)
            os.environ[STORAGE] = connection
            log.info("Azurite %s (blob/queue/table on 127.0.0.1:10000-10002)",
                     "started" if azurite else "already running: reused")
        host = DevHost(root, args.app, port=port, settings_file=settings_path,
                       enable_timers=not args.no_timers, enable_queues=not args.no_queues)
        host.start()
        log.info("Listening on %s. Press Ctrl+C to stop.", host.base_url)
        while not stop.wait(0.5):
            pass
        log.info("Stopping the host...")
        return 0
    except (AzuriteError, OSError) as error:
        log.error("dev host: %s", error)
        return 1
    except Exception:  # noqa: BLE001 - an app that fails to import: show why, exit cleanly
        log.exception("dev host: the app could not be started")
        return 1
    finally:
        if host is not None:
            host.stop()
        if azurite is not None:
            azurite.stop()
