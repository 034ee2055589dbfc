"""DevHost: serves a Python v2 `func.FunctionApp` locally as `func start` would (HTTP on
127.0.0.1, timers, queue triggers), for development, tests and demos. Not a production host."""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Collection, Mapping

from .http import ALL_METHODS, KEYED_LEVELS, DevHttpServer, HttpDispatcher
from .index import HTTP, QUEUE, TIMER, Context, FunctionInfo, index_app, load_app
from .settings import Environment, is_truthy, read_host_json, read_local_settings

log = logging.getLogger("devtools.host")
REPO_ROOT = Path(__file__).resolve().parents[2]
KEYS_SETTING = "DEV_HOST_FUNCTION_KEYS"


@dataclass
class Invocation:
    """The outcome of one function execution."""
    id: str
    function: str
    reason: str
    succeeded: bool = False
    duration_ms: float = 0.0
    result: Any = None
    error: BaseException | None = None


def _reason(error: Exception) -> str:
    """An exception's message (a KeyError's without the quotes str() adds)."""
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


class _EventLoop:
    """One event loop in its own thread for `async def` functions (the worker's main loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="devhost-asyncio", daemon=True)
        self.thread.start()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class DevHost:
    """A development Functions host for `<root>/<app_module>.py`'s `app`.

    settings: app settings applied over the environment (they win, and are undone on stop());
    when None, `settings_file` (relative to root) is read and the environment wins over it.
    port: 0 picks a free port. start() returns once HTTP listens and the triggers run.
    only: the names of the functions to serve (None: all), for a worker process of ./dev host.
    """

    def __init__(self, root: Path | str = REPO_ROOT, app_module: str = "function_app",
                 settings: Mapping[str, Any] | None = None, *, port: int = 0,
                 settings_file: str | Path = "local.settings.json", app_attribute: str = "app",
                 enable_http: bool = True, enable_timers: bool = True, enable_queues: bool = True,
                 only: Collection[str] | None = None) -> None:
        self.root = Path(root).resolve()
        self.app_module, self.app_attribute = app_module, app_attribute
        self.settings, self.settings_file, self.port = settings, settings_file, port
        self.enable_http, self.enable_timers, self.enable_queues = enable_http, enable_timers, enable_queues
        self.only = None if only is None else frozenset(only)
        self.module = self.app = None
        self.functions: dict[str, FunctionInfo] = {}
        self.errors: dict[str, str] = {}  # function name -> why it is not running
        self.invocations: deque[Invocation] = deque(maxlen=1000)
        self._env = Environment()
        self._server = self._dispatcher = self._loop = None
        self._timers: dict = {}
        self._queues: dict = {}
        self._threads: list[threading.Thread] = []
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "DevHost":
        """Apply settings, import and index the app, start HTTP, timers and queue listeners."""
        if self._started:
            return self
        began = time.perf_counter()
        if self.settings is not None:
            self._env.apply(self.settings, override=True)
        else:
            values = read_local_settings(self.root / self.settings_file).get("Values", {})
            self._env.apply(values, override=False)
        try:
            self._start(began)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, began: float) -> None:
        host_json = read_host_json(self.root)
        self.module, self.app = load_app(self.root, self.app_module, self.app_attribute)
        warnings: list[str] = []
        for info in index_app(self.app, warnings):
            if self.only is not None and info.name not in self.only:
                continue
            if is_truthy(os.environ.get(f"AzureWebJobs.{info.name}.Disabled")):
                log.info("Function '%s' is disabled (AzureWebJobs.%s.Disabled)", info.name, info.name)
                continue
            self.functions[info.name] = info
        for warning in warnings:
            log.warning(warning)
        self._started = True
        if any(f.is_async for f in self.functions.values()):
            self._loop = _EventLoop()
        by_type = {kind: [f for f in self.functions.values() if f.trigger_type == kind]
                   for kind in (HTTP, TIMER, QUEUE)}
        for info in self.functions.values():
            if info.trigger_type not in by_type:
                self.errors[info.name] = f"{info.trigger_type} is not supported by the development host"
        if self.enable_http:
            self._start_http(by_type[HTTP], host_json)
        if self.enable_timers:
            self._start_timers(by_type[TIMER])
        if self.enable_queues:
            self._start_queues(by_type[QUEUE], host_json)
        log.info(self.banner())
        for name, why in self.errors.items():
            log.error("The '%s' function is in error: %s", name, why)
        log.info("Host started (%dms)", (time.perf_counter() - began) * 1000)
        for runner in self._timers.values():
            runner.start()

    def _start_http(self, functions: list[FunctionInfo], host_json: dict) -> None:
        keys = {k.strip() for k in os.environ.get(KEYS_SETTING, "").split(",") if k.strip()}
        prefix = host_json.get("extensions", {}).get("http", {}).get("routePrefix", "api")
        self._dispatcher = HttpDispatcher(self, functions, prefix, keys)
        keyed = [f.name for f in functions if f.auth_level in KEYED_LEVELS]
        if keyed and not keys:
            log.warning("%s is empty: the key-protected functions %s answer 401 to every request. "
                        "Set it (comma-separated keys) and send one as ?code= or x-functions-key.",
                        KEYS_SETTING, ", ".join(keyed))
        self._server = DevHttpServer(self.port, self._dispatcher)
        thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="devhost-http", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start_timers(self, functions: list[FunctionInfo]) -> None:
        from .timers import TimerRunner
        for info in functions:
            try:
                runner = TimerRunner(self, info)
            except (KeyError, ValueError) as error:
                self.errors[info.name] = _reason(error)
                continue
            self._timers[info.name] = runner
            log.info(runner.describe())

    def _start_queues(self, functions: list[FunctionInfo], host_json: dict) -> None:
        from .queues import QueueListener, QueueOptions
        options = QueueOptions.from_host_json(host_json)
        for info in functions:
            try:
                listener = QueueListener(self, info, options)
                listener.start()
            except Exception as error:  # noqa: BLE001 - the host reports the function in error
                self.errors[info.name] = _reason(error)
                continue
            self._queues[info.name] = listener

    def stop(self) -> None:
        """Stop listening, let running invocations finish, undo the settings; idempotent."""
        if self._server is not None:
            self._server.close_all()
            self._server = None
        for runner in self._timers.values():
            runner.stop()
        for listener in self._queues.values():
            listener.stop()
        self._timers, self._queues = {}, {}
        for thread in self._threads:
            thread.join(5)
        self._threads = []
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        self._env.restore()
        self._started = False

    def __enter__(self) -> "DevHost":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- facts -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT of the running HTTP server."""
        if self._server is None:
            raise RuntimeError("the HTTP server is not running")
        return f"http://{self._server.authority}"

    def url_for(self, name: str) -> str:
        """The URL template of an HTTP function (`{base_url}/api/<route>`)."""
        return self._dispatcher.url_of(self.functions[name], self.base_url)

    def banner(self) -> str:
        """The function list the host prints at start."""
        lines = ["Functions:", ""]
        for info in self.functions.values():
            if info.trigger_type == HTTP and self._server is not None:
                methods = ",".join(info.methods or ALL_METHODS)
                lines.append(f"\t{info.name}: [{methods}] {self.url_for(info.name)}")
            else:
                extra = f" ({self.errors[info.name]})" if info.name in self.errors else ""
                lines.append(f"\t{info.name}: {info.trigger_type}{extra}")
            lines.append("")
        return "\n".join(lines).rstrip()

    # -- invoking --------------------------------------------------------------------------
    def invoke(self, info: FunctionInfo, trigger_value, reason: str) -> Invocation:
        """Run one function with its trigger value, logging as the host does."""
        invocation = Invocation(str(uuid.uuid4()), info.name, reason)
        # An HTTP call's start is logged only at DEBUG: its "Executed" line follows within
        # milliseconds, and at hundreds of requests a second each line costs the worker CPU.
        log.log(logging.DEBUG if info.trigger_type == HTTP else logging.INFO,
                "Executing 'Functions.%s' (Reason='%s', Id=%s)", info.name, reason, invocation.id)
        began = time.perf_counter()
        try:
            context = Context(invocation.id, info.name, str(self.root))
            outcome = info.user_function(**info.arguments(trigger_value, context))
            if info.is_async:
                outcome = self._loop.run(outcome)
            invocation.result, invocation.succeeded = outcome, True
        except Exception as error:  # noqa: BLE001 - a failing function is an outcome
            invocation.error = error
        invocation.duration_ms = (time.perf_counter() - began) * 1000
        self.invocations.append(invocation)
        status = "Succeeded" if invocation.succeeded else "Failed"
        log.info("Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)",
                 info.name, status, invocation.id, invocation.duration_ms)
        if invocation.error is not None:
            error = invocation.error
            log.error("Exception while executing function: Functions.%s. Result: Failure\n"
                      "Exception: %s: %s\nStack: %s", info.name, type(error).__name__, error,
                      "".join(traceback.format_exception(type(error), error, error.__traceback__.tb_next)).rstrip())
        for listener in list(self._queues.values()):
            listener.wake()
        return invocation

    def trigger_timer(self, name: str, past_due: bool = False) -> Invocation:
        """Run a timer function now, in this thread (schedule untouched); returns the Invocation."""
        info = self.functions[name]
        if info.trigger_type != TIMER:
            raise ValueError(f"'{name}' is a {info.trigger_type} function, not a timer")
        from .timers import TimerRunner
        runner = self._timers.get(name)
        if runner is None:
            runner = TimerRunner(self, info)
        return runner.fire(datetime.now(runner.schedule.tz), past_due=past_due)

    def run_manually(self, name: str, given: str = "") -> Invocation:
        """Run a non-HTTP function as the admin API does: timers fire, queue functions get a
        message whose body is `given` (not stored in the queue)."""
        info = self.functions[name]
        if info.trigger_type == TIMER:
            return self.trigger_timer(name)
        if info.trigger_type == QUEUE:
            from azure.functions.queue import QueueMessage
            body = given.encode("utf-8") if isinstance(given, str) else bytes(given)
            message = QueueMessage(id=str(uuid.uuid4()), body=body, dequeue_count=1)
            return self.invoke(info, message, "This function was programmatically called via the host APIs.")
        raise ValueError(f"'{name}' cannot be run manually")

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every trigger queue is empty and no message runs; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(listener.pending() == 0 for listener in list(self._queues.values())):
                    return True
            except Exception as error:  # noqa: BLE001 - storage hiccup: retry until the deadline
                log.debug("wait_idle: %s", error)
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
