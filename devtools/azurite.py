"""Azurite (the storage emulator) in memory, for tests and the development host.

`Azurite()` starts `node_modules/.bin/azurite` bound to 127.0.0.1 on free (or given) ports in
its own process group and waits until blob, queue and table answer; `.stop()` ends the group.
`ensure_azurite(setting)` starts one on the default ports only when the app's storage setting
points at development storage and nothing is listening there yet. Standard library only, so
that importing this module (for example from tests/integration/conftest.py) costs nothing.
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite"
HOST = "127.0.0.1"
DEFAULT_PORTS = (10000, 10001, 10002)
ACCOUNT = "devstoreaccount1"
# The emulator's well-known, public development key (the same in every Azurite install).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_STORAGE = "UseDevelopmentStorage=true"


def connection_string_for(blob_port: int, queue_port: int, table_port: int) -> str:
    """The explicit devstoreaccount1 connection string for Azurite on these ports."""
    base = f"http://{HOST}:{{}}/{ACCOUNT}"
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={base.format(blob_port)};QueueEndpoint={base.format(queue_port)};"
            f"TableEndpoint={base.format(table_port)};")


def port_answers(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_azurite(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True when an HTTP server on host:port says it is Azurite (its Server header)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", f"/{ACCOUNT}")
        response = connection.getresponse()
        response.read()
        return (response.getheader("Server") or "").startswith("Azurite")
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free a moment ago (the caller must handle races)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class AzuriteError(RuntimeError):
    """Azurite could not be started."""


class Azurite:
    """A running in-memory Azurite; a context manager (`with Azurite() as az: az.connection_string`).

    Ports left as None are picked free; when a picked port is taken before Azurite binds it,
    start() retries with new ports. Given ports are used as they are (no retry).

    split: each service in a process of its own (azurite-blob, azurite-queue, azurite-table), as
    Azure runs them as separate services: one Node event loop no longer makes a queue send wait
    behind a table transaction or a table scan (in one process it does).
    """

    def __init__(self, blob_port: int | None = None, queue_port: int | None = None,
                 table_port: int | None = None, *, executable: Path | str = AZURITE_BIN,
                 start_timeout: float = 20.0, attempts: int = 5, location: Path | str | None = None,
                 split: bool = False) -> None:
        self._wanted = (blob_port, queue_port, table_port)
        self.split = split
        self.processes: list[subprocess.Popen] = []  # with split, one per service
        self.location = Path(location).resolve() if location is not None else None  # None: in memory
        self.executable = Path(executable)
        self.start_timeout = start_timeout
        self.attempts = attempts
        self.blob_port = self.queue_port = self.table_port = 0
        self.process: subprocess.Popen | None = None
        self._workdir: str | None = None

    @property
    def ports(self) -> tuple[int, int, int]:
        return self.blob_port, self.queue_port, self.table_port

    @property
    def connection_string(self) -> str:
        """Explicit devstoreaccount1 connection string with the three endpoints of this instance."""
        return connection_string_for(*self.ports)

    def start(self) -> "Azurite":
        """Start the process and return once all three services answer; raises AzuriteError."""
        if self.process is not None:
            return self
        if not self.executable.exists():
            raise AzuriteError(f"{self.executable} is missing: run ./dev once (npm ci installs Azurite)")
        fixed = None not in self._wanted
        error = ""
        for _ in range(1 if fixed else self.attempts):
            picked = iter(free_ports(3))
            ports = tuple(p if p is not None else next(picked) for p in self._wanted)
            ok, error = self._try_start(ports)
            if ok:
                return self
        raise AzuriteError(f"Azurite did not start: {error or 'no answer'}")

    def _try_start(self, ports: tuple[int, int, int]) -> tuple[bool, str]:
        """One attempt on these ports: (True, "") when all answer from our process."""
        self._workdir = tempfile.mkdtemp(prefix="azurite-")
        log_path = Path(self._workdir) / "stderr.log"
        if self.location is not None:
            self.location.mkdir(parents=True, exist_ok=True)
        keep = ["--location", str(self.location)] if self.location is not None else ["--inMemoryPersistence"]
        common = ["--silent", *keep, "--skipApiVersionCheck", "--loose", "--disableTelemetry"]
        services = [(f"--{name}Host", HOST, f"--{name}Port", str(port))
                    for name, port in zip(("blob", "queue", "table"), ports)]
        if self.split:
            commands = [[str(self.executable.with_name(f"azurite-{name}")), *common, *service]
                        for name, service in zip(("blob", "queue", "table"), services)]
        else:
            commands = [[str(self.executable), *common, *(arg for service in services for arg in service)]]
        with open(log_path, "wb") as err:
            self.processes = [subprocess.Popen(command, cwd=self._workdir, stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
                              for command in commands]
        self.process = self.processes[0]
        self.blob_port, self.queue_port, self.table_port = ports
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if any(process.poll() is not None for process in self.processes):
                break
            if all(port_answers(p) for p in ports):
                # ours? (a port grabbed by someone else answers too)
                if all(is_azurite(p) for p in ports) and all(process.poll() is None for process in self.processes):
                    return True, ""
            time.sleep(0.05)
        message = log_path.read_text(errors="replace").strip()[-2000:]
        self.stop()
        return False, message

    def stop(self) -> None:
        """Terminate Azurite and its children (the whole process group of each); idempotent."""
        self.process, processes, self.processes = None, self.processes, []
        for proc in processes:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> "Azurite":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def is_development_storage(setting: str | None) -> bool:
    """True for an absent setting or `UseDevelopmentStorage=true` (any case, spaces, trailing ;)."""
    if not setting or not setting.strip():
        return True
    return setting.replace(" ", "").rstrip(";").lower() == DEV_STORAGE.lower()


def ensure_azurite(setting: str | None) -> tuple[str, Azurite | None]:
    """Resolve the app's storage setting to (connection string, Azurite started here or None).

    A real connection string is returned unchanged. For development storage, an emulator already
    listening on 10000-10002 is reused; if none listens, one is started on those ports and
    returned so the caller stops it. Some but not all default ports taken raises AzuriteError.
    """
    if not is_development_storage(setting):
        return setting, None
    answering = [port_answers(p) for p in DEFAULT_PORTS]
    if all(answering) and all(is_azurite(p) for p in DEFAULT_PORTS):
        return connection_string_for(*DEFAULT_PORTS), None
    if any(answering):
        taken = [p for p, a in zip(DEFAULT_PORTS, answering) if a]
        raise AzuriteError(f"ports {taken} are taken by something that is not a full Azurite")
    azurite = Azurite(*DEFAULT_PORTS).start()
    return azurite.connection_string, azurite
