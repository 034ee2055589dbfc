"""./dev host's worker processes, laid out as Flex Consumption scales an app.

Flex Consumption scales "per function": the HTTP triggers of an app scale together as one group,
and every other function (a queue trigger, a timer) on its own instances, so a webhook never
shares a process, a GIL or a core with the syncs its notifications start
(https://learn.microsoft.com/azure/azure-functions/flex-consumption-plan#per-function-scaling).
The development host mirrors that with one worker process for the HTTP functions and one per
queue-triggered function. Timers share one more worker: they fire a few times a day and only
enqueue work. `./dev host --single-process` keeps everything in one process instead.

On Flex the workers would also have CPUs of their own; here they share this machine's. The
workers without HTTP functions run at a lower CPU priority (BACKGROUND_NICENESS), so that a burst
of syncs takes only the CPU the HTTP worker leaves, as on separate instances, instead of delaying
the webhook's answers; they still get every idle cycle.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .index import HTTP, QUEUE, TIMER, FunctionInfo

log = logging.getLogger("devtools.host")
REPO_ROOT = Path(__file__).resolve().parents[2]
BACKGROUND_NICENESS = 10  # added to the niceness of the workers that serve no HTTP function


@dataclass(frozen=True)
class WorkerGroup:
    """The functions one worker process serves, and which of their triggers it runs."""
    name: str
    functions: tuple[str, ...]
    http: bool = False
    timers: bool = False
    queues: bool = False


def worker_groups(functions: Sequence[FunctionInfo], *, http: bool = True, timers: bool = True,
                  queues: bool = True) -> list[WorkerGroup]:
    """HTTP functions together, each queue function alone, the timers together."""
    groups: list[WorkerGroup] = []
    by_kind = {kind: [f.name for f in functions if f.trigger_type == kind] for kind in (HTTP, TIMER, QUEUE)}
    if http and by_kind[HTTP]:
        groups.append(WorkerGroup("http", tuple(by_kind[HTTP]), http=True))
    if queues:
        groups += [WorkerGroup(name, (name,), queues=True) for name in by_kind[QUEUE]]
    if timers and by_kind[TIMER]:
        groups.append(WorkerGroup("timers", tuple(by_kind[TIMER]), timers=True))
    return groups


class Workers:
    """Starts one `./dev host --worker` process per group, watches them, and stops them."""

    def __init__(self, groups: Sequence[WorkerGroup], common_args: Sequence[str]) -> None:
        self.groups = list(groups)
        self.common_args = list(common_args)
        self.processes: dict[str, subprocess.Popen] = {}

    def command(self, group: WorkerGroup) -> list[str]:
        args = [sys.executable, "-m", "devtools.cli", "host", *self.common_args,
                "--worker", group.name, "--only", ",".join(group.functions)]
        args += [] if group.http else ["--no-http"]
        args += [] if group.timers else ["--no-timers"]
        args += [] if group.queues else ["--no-queues"]
        return args

    def start(self) -> None:
        path = os.environ.get("PYTHONPATH", "")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), path) if p)}
        for group in self.groups:
            process = self.processes[group.name] = subprocess.Popen(self.command(group), env=env)
            if not group.http:
                try:
                    os.setpriority(os.PRIO_PROCESS, process.pid, os.getpriority(os.PRIO_PROCESS, 0) + BACKGROUND_NICENESS)
                except OSError as error:  # not allowed here: the worker runs at the host's priority
                    log.debug("Worker '%s' keeps its priority: %s", group.name, error)
            log.info("Worker '%s' (pid %d): %s", group.name, process.pid, ", ".join(group.functions))

    def exited(self) -> tuple[str, int] | None:
        """(worker, exit code) of a worker that has stopped, or None while all run."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                return name, process.returncode
        return None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to each worker (each finishes its running invocations), then wait; a worker
        still running at the deadline is killed."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, process in self.processes.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("Worker '%s' (pid %d) did not stop in time: killed", name, process.pid)
                process.kill()
                process.wait()
        self.processes = {}
