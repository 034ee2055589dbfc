"""./dev host: the development server. Serves function_app.py on 127.0.0.1:7071 as `func start`
would (HTTP, timer and queue triggers), starting Azurite when the storage setting is
development storage. Not for production."""
from __future__ import annotations

import argparse
import atexit
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


class _BatchedHandler(logging.StreamHandler):
    """Formats each record where it is logged but writes the lines in batches, every 0.1 s (at
    once from a warning up): at hundreds of requests a second, one write and flush per line
    would cost the worker more than the line is worth."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()
        self._writer = threading.Thread(target=self._write_every, args=(0.1,), name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:  # noqa: BLE001 - logging's own rule: a bad record never raises
            self.handleError(record)
            return
        with self._lines_lock:
            self._lines.append(line)
        if record.levelno >= logging.WARNING:
            self.flush()

    def flush(self) -> None:
        with self._lines_lock:
            lines, self._lines = self._lines, []
        if lines:
            with self.lock:
                self.stream.write("".join(lines))
                self.stream.flush()

    def _write_every(self, seconds: float) -> None:
        while True:
            time.sleep(seconds)
            self.flush()


def configure_logging(worker: str | None = None) -> None:
    handler = _BatchedHandler(sys.stdout)
    handler.setFormatter(_HostFormatter(f"[%(asctime)s] {'[' + worker + '] ' if worker else ''}%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs log every HTTP call at INFO
    atexit.register(handler.flush)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./dev host",
        description="DEVELOPMENT server, not for production: serves the Functions app "
                    "(function_app.py) on 127.0.0.1 with its HTTP, timer and queue triggers, "
                    "as `func start` would. As Flex Consumption scales per function, the HTTP "
                    "functions run in one worker process and each queue-triggered function in its "
                    "own (the timers share one more). Starts Azurite when AzureWebJobsStorage is "
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
    parser.add_argument("--single-process", action="store_true",
                        help="run every function in this one process (the host before worker processes)")
    # A worker process of the multi-process host (started by it, not by hand).
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--no-http", action="store_true", help=argparse.SUPPRESS)
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
    configure_logging(args.worker)
    log = logging.getLogger("devtools.host")

    from devtools.azurite import AzuriteError, is_development_storage

    root = Path(args.root).resolve()
    settings_path = Path(args.settings)
    if not settings_path.is_absolute():
        settings_path = root / settings_path
    from devtools.host import read_local_settings
    local = read_local_settings(settings_path)
    port = args.port if args.port is not None else int(local.get("Host", {}).get("LocalHttpPort", 7071))
    storage = os.environ.get(STORAGE, local.get("Values", {}).get(STORAGE))
    if args.worker is None:
        log.info("Prorata development host: a DEVELOPMENT server, not for production.")
    azurite = None
    try:
        if is_development_storage(storage):
            connection, azurite = start_storage(storage, args.azurite_ports, args.data, log)
            os.environ[STORAGE] = connection
        elif args.azurite_ports or args.data:
            log.warning("AzureWebJobsStorage is a real connection string: --azurite-ports and --data are ignored.")
        if args.single_process or args.worker is not None:
            return _serve_here(args, root, settings_path, port, stop, log)
        return _serve_in_workers(args, root, settings_path, port, stop, log)
    except (AzuriteError, OSError) as error:
        log.error("dev host: %s", error)
        return 1
    except Exception:  # noqa: BLE001 - an app that fails to import: show why, exit cleanly
        log.exception("dev host: the app could not be started")
        return 1
    finally:
        if azurite is not None:
            azurite.stop()


def _serve_here(args, root: Path, settings_path: Path, port: int, stop: threading.Event, log) -> int:
    """The functions (all, or a worker's) in this process until stopped."""
    from devtools.host import DevHost

    only = [name for name in args.only.split(",") if name] if args.only is not None else None
    host = DevHost(root, args.app, port=port, settings_file=settings_path, enable_http=not args.no_http,
                   enable_timers=not args.no_timers, enable_queues=not args.no_queues, only=only)
    try:
        supervisor = os.getppid()
        host.start()
        if host.enable_http and args.worker is None:
            log.info("Listening on %s. Press Ctrl+C to stop.", host.base_url)
        while not stop.wait(0.5):
            if args.worker is not None and os.getppid() != supervisor:
                break  # the multi-process host is gone: its workers go too
        log.info("Stopping the host...")
        return 0
    finally:
        host.stop()


def _serve_in_workers(args, root: Path, settings_path: Path, port: int, stop: threading.Event, log) -> int:
    """One worker process for the HTTP functions and one per queue function, until stopped or
    until a worker ends (then the others are stopped too: the host is not half up)."""
    from devtools.azurite import free_ports, port_answers
    from devtools.host import read_local_settings
    from devtools.host.index import index_app, load_app
    from devtools.host.settings import Environment, is_truthy
    from devtools.host.workers import Workers, worker_groups

    environment = Environment()
    environment.apply(read_local_settings(settings_path).get("Values", {}), override=False)
    try:
        _, app = load_app(root, args.app, "app")
        functions = [info for info in index_app(app, [])
                     if not is_truthy(os.environ.get(f"AzureWebJobs.{info.name}.Disabled"))]
    finally:
        environment.restore()
    port = port or free_ports(1)[0]
    groups = worker_groups(functions, timers=not args.no_timers, queues=not args.no_queues)
    workers = Workers(groups, ["--root", str(root), "--app", args.app, "--settings", str(settings_path),
                               "--port", str(port)])
    try:
        workers.start()
        http = any(group.http for group in groups)
        deadline = time.monotonic() + 120
        while http and not port_answers(port) and not stop.is_set():
            if workers.exited() is not None or time.monotonic() > deadline:
                name, code = workers.exited() or ("http", None)
                log.error("dev host: worker '%s' did not start (%s)", name,
                          f"exit code {code}" if code is not None else "no answer on the port")
                return 1
            time.sleep(0.05)
        if http and not stop.is_set():
            log.info("Listening on http://127.0.0.1:%d. Press Ctrl+C to stop.", port)
        while not stop.wait(0.2):
            ended = workers.exited()
            if ended is not None and not stop.wait(1.0):
                log.error("dev host: worker '%s' ended (exit code %s); stopping the others", *ended)
                return 1
        log.info("Stopping the host...")
        return 0
    finally:
        workers.stop()
