"""./dev host as Flex Consumption scales an app: the HTTP functions in one worker process, each
queue-triggered function in its own; --single-process keeps them all in one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from devtools.azurite import free_ports, port_answers

ROOT = Path(__file__).resolve().parents[2]
APP_ROOT = Path(__file__).resolve().parent / "fixtures" / "workers_app"


def run_host(tmp_path, connection_string: str, *extra: str):
    port = free_ports(1)[0]
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": {"AzureWebJobsStorage": connection_string}}))
    process = subprocess.Popen([sys.executable, "-m", "devtools.cli", "host", "--root", str(APP_ROOT),
                                "--app", "workers_function_app", "--settings", str(settings), "--port", str(port),
                                "--no-timers", *extra], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not port_answers(port):
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read()
        time.sleep(0.1)
    return process, port


def reports(connection_string: str, count: int, timeout: float = 30) -> dict[str, dict]:
    queue = QueueClient.from_connection_string(connection_string, "reports",
                                               message_decode_policy=TextBase64DecodePolicy())
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        try:
            for message in queue.receive_messages(max_messages=32):
                body = json.loads(message.content)
                seen[body["function"]] = body
                queue.delete_message(message)
        except Exception:  # noqa: BLE001 - the queue is made by the first report
            pass
        time.sleep(0.1)
    return seen


@pytest.mark.parametrize("mode", ["workers", "single process"])
def test_http_and_each_queue_function_run_in_their_own_processes_unless_single_process_is_asked(
        tmp_path, storage_connection_string, mode):
    extra = ["--single-process"] if mode == "single process" else []
    process, port = run_host(tmp_path, storage_connection_string, *extra)
    try:
        http = httpx.post(f"http://127.0.0.1:{port}/api/start", timeout=30).json()
        ran_in = reports(storage_connection_string, 2)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert set(ran_in) == {"work_a", "work_b"}, output
    if mode == "workers":
        assert len({http["pid"], ran_in["work_a"]["pid"], ran_in["work_b"]["pid"]}) == 3
        assert "[http] " in output and "[work_a] " in output and "Stopping the host" in output
        # on Flex each would have CPUs of its own: here the queue workers yield to the HTTP worker
        assert ran_in["work_a"]["nice"] > http["nice"] and ran_in["work_b"]["nice"] > http["nice"]
    else:
        assert http["pid"] == ran_in["work_a"]["pid"] == ran_in["work_b"]["pid"]
