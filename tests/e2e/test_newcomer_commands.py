"""What a newcomer meets first with ./dev: relative paths mean their own folder, the demo never
deletes a folder it did not make, the Graph simulator holds the MSP's mailbox, and ./dev host
says where its storage is and can keep it on disk on ports of one's choice."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devtools.azurite import free_ports, port_answers

ROOT = Path(__file__).resolve().parents[2]
MSP = "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"
MAILBOX = "billing@northwind-msp.example"


def dev(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PRORATA_CALLER_CWD"}
    return subprocess.run([str(ROOT / "dev"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_quote_reads_relative_paths_from_the_folder_it_is_called_in(tmp_path):
    shutil.copy(ROOT / "examples" / "plan.json", tmp_path / "my-plan.json")
    shutil.copy(ROOT / "examples" / "observations.jsonl", tmp_path / "seen.jsonl")
    result = dev("quote", "--plan", "my-plan.json", "--observations", "seen.jsonl", "--period", "2026-10", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["period"] == "2026-10"
    missing = dev("quote", "--plan", "examples/plan.json", "--observations", "seen.jsonl", "--period", "2026-10",
                  cwd=tmp_path)
    assert missing.returncode == 2 and str(tmp_path / "examples" / "plan.json") in missing.stderr


def test_the_demo_refuses_an_out_folder_it_did_not_make_and_deletes_nothing(tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.txt").write_text("years of work")
    result = dev("demo", "--out", "thesis", cwd=tmp_path)
    assert result.returncode == 2
    assert "not empty and was not made by ./dev demo" in result.stderr and "Traceback" not in result.stderr
    assert (mine / "chapter1.txt").read_text() == "years of work"


def wait_for_line(process: subprocess.Popen, wanted: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if wanted in line:
            return lines
    raise AssertionError(f"{wanted!r} never printed: {''.join(lines)}")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def test_the_graph_simulator_holds_the_msp_tenant_and_its_invoicing_mailbox(tmp_path):
    port = free_ports(1)[0]
    process = subprocess.Popen([sys.executable, "-m", "devtools.cli", "graph-sim", "--port", str(port)], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        wait_for_line(process, "Graph simulator:")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1.0/users/{MAILBOX}",
                                         headers={"Authorization": f"Bearer sim-token.{MSP}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["userPrincipalName"] == MAILBOX
    finally:
        stop(process)


def test_dev_host_runs_azurite_on_chosen_ports_keeps_its_storage_on_disk_and_says_so(tmp_path):
    http_port, *storage_ports = free_ports(4)
    process = subprocess.Popen(
        [str(ROOT / "dev"), "host", "--port", str(http_port), "--no-timers", "--no-queues",
         "--azurite-ports", ",".join(map(str, storage_ports)), "--data", "kept"],
        cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "AzureWebJobsStorage"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = wait_for_line(process, "Listening on")
        said = "".join(lines)
        assert f"blob {storage_ports[0]}, queue {storage_ports[1]}, table {storage_ports[2]}" in said
        assert f"on disk in {tmp_path / 'kept'}" in said
        assert all(port_answers(port) for port in storage_ports)
    finally:
        stop(process)
    assert any((tmp_path / "kept").iterdir())
