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

from devtools.paths import from_caller

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
    parser.add_argument("--azurite-ports", metavar="BLOB,QUEUE,TABLE", type=azurite_ports,
                        help="start Azurite on these ports, or 'free' for free ones (default: 10000,10001,10002, "
                             "reusing an Azurite already there)")
    parser.add_argument("--data", metavar="DIR", type=from_caller,
                        help="keep Azurite's storage on disk in DIR (default: in memory, gone when the host stops)")
    return parser.parse_args(argv)


def azurite_ports(text: str) -> tuple[int | None, int | None, int | None]:
    """`free` or three ports `BLOB,QUEUE,TABLE` (an argparse type)."""
    if text.strip().lower() == "free":
        return None, None, None
    try:
        ports = tuple(int(part) for part in text.split(","))
    except ValueError:
        ports = ()
    if len(ports) != 3 or not all(0 < port < 65536 for port in ports) or len(set(ports)) != 3:
        raise argparse.ArgumentTypeError(f"expected 'free' or three distinct ports BLOB,QUEUE,TABLE, got {text!r}")
    return ports[0], ports[1], ports[2]


def start_storage(storage: str | None, ports: tuple | None, data: Path | None, log: logging.Logger):
    """(connection string, Azurite started here or None) for development storage, saying where
    the data lives."""
    from devtools.azurite import DEFAULT_PORTS, Azurite, AzuriteError, ensure_azurite, port_answers

    if ports is None and data is None:
        connection, azurite = ensure_azurite(storage)
        if azurite is None:
            log.info("Azurite already running on 127.0.0.1:10000-10002: reused (its storage is its own).")
        else:
            log.info("Azurite started on 127.0.0.1:10000-10002. Storage is IN MEMORY: it is gone when the host "
                     "stops (--data DIR keeps it on disk).")
        return connection, azurite
    wanted = ports or DEFAULT_PORTS
    taken = [port for port in wanted if port is not None and port_answers(port)]
    if taken:
        raise AzuriteError(f"ports {taken} are taken (another Azurite?); choose others with --azurite-ports "
                           "BLOB,QUEUE,TABLE or --azurite-ports free")
    azurite = Azurite(*wanted, location=data).start()
    where = f"on disk in {data}" if data is not None else "IN MEMORY: it is gone when the host stops (--data DIR keeps it)"
    log.info("Azurite started on 127.0.0.1 (blob %d, queue %d, table %d). Storage is %s. Other ./dev commands "
             "reach it with AzureWebJobsStorage='%s'.", *azurite.ports, where, azurite.connection_string)
    return azurite.connection_string, azurite


def main(argv: list[str]) -> int:
    args = parse(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    configure_logging()
    log = logging.getLogger("devtools.host")

    from devtools.azurite import AzuriteError, is_development_storage
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
            connection, azurite = start_storage(storage, args.azurite_ports, args.data, log)
            os.environ[STORAGE] = connection
        elif args.azurite_ports or args.data:
            log.warning("AzureWebJobsStorage is a real connection string: --azurite-ports and --data are ignored.")
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
