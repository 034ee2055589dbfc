"""The development host serves tests/integration/fixtures/devhost_app as the Functions host would: HTTP
routes, keys, timers and queue triggers against the session's real Azurite."""
from __future__ import annotations

import base64
import json
import logging
import os
import time
from pathlib import Path

import httpx
import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devtools.host import DevHost

APP_ROOT = Path(__file__).parent / "fixtures" / "devhost_app"
KEYS = "key-one,key-two"


@pytest.fixture(scope="module")
def host(storage_connection_string):
    settings = {"AzureWebJobsStorage": storage_connection_string, "DEV_HOST_FUNCTION_KEYS": KEYS,
                "SAMPLE_TIMER_SCHEDULE": "0 0 0 1 1 *", "SAMPLE_DOOMED_QUEUE": "sample-doomed"}
    with DevHost(APP_ROOT, "sample_function_app", settings) as running:
        yield running


@pytest.fixture
def calls(host):
    """What the sample functions saw, emptied before each test."""
    host.module.CALLS.clear()
    return host.module.CALLS


@pytest.fixture
def client(host):
    with httpx.Client(base_url=host.base_url, timeout=10) as http:
        yield http


def queue(connection_string: str, name: str, encoded: bool = True) -> QueueClient:
    policy = TextBase64EncodePolicy() if encoded else None
    return QueueClient.from_connection_string(connection_string, name, message_encode_policy=policy)


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# -- HTTP ----------------------------------------------------------------------------------

def test_an_http_function_receives_route_parameters_query_headers_and_body(client, host):
    answer = client.post("/api/echo/7/ann?x=1&x=2&y=", content=b"hello", headers={"X-Sample": "s"})
    assert answer.status_code == 201
    assert answer.headers["x-echo"] == "yes"
    assert answer.headers["content-type"] == "application/json"
    seen = answer.json()
    assert seen == {"method": "POST", "url": f"{host.base_url}/api/echo/7/ann?x=1&x=2&y=",
                    "route": {"id": "7", "name": "ann"}, "params": {"x": "1,2", "y": ""},
                    "header": "s", "body": "hello"}


def test_an_optional_route_parameter_may_be_left_out_and_a_constraint_rejects_bad_values(client):
    assert client.get("/api/echo/7").json()["route"] == {"id": "7"}
    assert client.get("/api/echo/seven").status_code == 404


def test_unknown_routes_answer_404_and_methods_not_declared_answer_405(client):
    assert client.get("/api/nowhere").status_code == 404
    assert client.get("/echo/7").status_code == 404
    refused = client.put("/api/echo/7")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, POST"


def test_an_async_function_gets_the_invocation_context(client, host):
    answer = client.get("/api/whoami")
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    name, invocation_id = answer.text.split()
    assert name == "whoami"
    assert invocation_id in {i.id for i in host.invocations}


def test_a_function_level_function_answers_only_with_one_of_the_configured_keys(client):
    assert client.get("/api/secret").status_code == 401
    assert client.get("/api/secret", params={"code": "wrong"}).status_code == 401
    assert client.get("/api/secret", params={"code": "key-two"}).text == "the secret"
    assert client.get("/api/secret", headers={"x-functions-key": "key-one"}).status_code == 200


def test_a_function_that_raises_answers_500_and_the_host_logs_the_traceback(client, caplog):
    caplog.set_level(logging.INFO, logger="devtools.host")
    assert client.get("/api/boom").status_code == 500
    assert "Executed 'Functions.boom' (Failed, Id=" in caplog.text
    assert "RuntimeError: boom on purpose" in caplog.text
    assert 'sample_function_app.py", line' in caplog.text


def test_the_host_lists_its_functions_with_their_triggers_and_urls(host):
    banner = host.banner()
    assert banner.startswith("Functions:\n\n")
    assert f"\techo: [GET,POST] {host.base_url}/api/echo/{{id:int}}/{{name?}}" in banner
    assert "\ttick: timerTrigger" in banner
    assert "\tdoomed: queueTrigger" in banner


def test_one_keep_alive_connection_serves_many_requests_quickly(client):
    durations = []
    for _ in range(300):
        began = time.perf_counter()
        assert client.get("/api/echo/1").status_code == 201
        durations.append(time.perf_counter() - began)
    durations.sort()
    assert durations[len(durations) // 2] < 0.010  # median under 10 ms


# -- timers --------------------------------------------------------------------------------

def test_trigger_timer_runs_a_timer_function_now(host, calls):
    invocation = host.trigger_timer("tick")
    assert invocation.succeeded
    assert calls["tick"] == [False]


def test_the_admin_api_runs_a_timer_function(client, calls):
    assert client.post("/admin/functions/tick", json={"input": ""}).status_code == 202
    assert wait_for(lambda: calls["tick"])


def test_a_timer_fires_on_its_schedule_read_from_a_setting(host, calls, caplog):
    caplog.set_level(logging.INFO, logger="devtools.host")
    every_second = DevHost(APP_ROOT, "sample_function_app", {"SAMPLE_TIMER_SCHEDULE": "* * * * * *"},
                           enable_http=False, enable_queues=False)
    with every_second:
        assert wait_for(lambda: len(calls["tick"]) >= 2, timeout=3.5)
    assert "The next 5 occurrences of the 'tick' schedule (Cron: '* * * * * *')" in caplog.text
    assert not any(calls["tick"])  # none past due
    assert os.environ["SAMPLE_TIMER_SCHEDULE"] == "0 0 0 1 1 *"  # the second host's setting undone


# -- queues --------------------------------------------------------------------------------

def test_a_queue_function_gets_a_base64_message_which_is_then_deleted(host, calls, storage_connection_string):
    work = queue(storage_connection_string, "sample-work")
    work.send_message(json.dumps({"n": 1}))
    assert host.wait_idle(10)
    assert calls["work"] == [{"n": 1}]
    assert work.get_queue_properties().approximate_message_count == 0


def test_a_queue_message_reaches_its_function_well_under_a_second(host, calls, storage_connection_string):
    work = queue(storage_connection_string, "sample-work")
    time.sleep(1.0)  # idle: polling has backed off
    sent = time.perf_counter()
    work.send_message(json.dumps({"n": 2}))
    assert wait_for(lambda: calls["work"], timeout=5)
    assert time.perf_counter() - sent < 0.8


def test_a_failing_message_is_tried_five_times_then_moved_to_the_poison_queue(host, calls, storage_connection_string):
    queue(storage_connection_string, "sample-doomed").send_message("lost cause")
    assert host.wait_idle(15)
    assert calls["doomed"] == [1, 2, 3, 4, 5]
    poison = queue(storage_connection_string, "sample-doomed-poison")
    contents = [base64.b64decode(m.content).decode() for m in poison.peek_messages(max_messages=32)]
    assert contents == ["lost cause"]


def test_a_message_that_is_not_base64_goes_to_the_poison_queue_without_running(host, calls, storage_connection_string):
    queue(storage_connection_string, "sample-work", encoded=False).send_message("not base64 !")
    assert host.wait_idle(10)
    assert calls["work"] == []
    poison = queue(storage_connection_string, "sample-work-poison")
    assert [m.content for m in poison.peek_messages(max_messages=32)] == ["not base64 !"]


# -- settings ------------------------------------------------------------------------------

def test_local_settings_become_environment_variables_but_the_environment_wins(tmp_path, monkeypatch):
    (tmp_path / "settings_probe_app.py").write_text(
        "import os\nimport azure.functions as func\n"
        "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
        "@app.route(route='probe')\n"
        "def probe(req):\n"
        "    return func.HttpResponse(os.environ['PROBE_A'] + ' ' + os.environ['PROBE_B'])\n")
    (tmp_path / "local.settings.json").write_text(json.dumps(
        {"IsEncrypted": False, "Values": {"PROBE_A": "from-file", "PROBE_B": "from-file"}}))
    monkeypatch.setenv("PROBE_B", "from-env")
    monkeypatch.delenv("PROBE_A", raising=False)
    with DevHost(tmp_path, "settings_probe_app", enable_timers=False, enable_queues=False) as probe:
        assert httpx.get(f"{probe.base_url}/api/probe").text == "from-file from-env"
    assert "PROBE_A" not in os.environ


def test_route_templates_match_as_the_host_routes_them():
    from devtools.host.routes import Route
    assert Route("tenants/{tenant_id}").match("/Tenants/a%20b") == {"tenant_id": "a b"}
    assert Route("c/{code:alpha:length(3)}").match("/c/ab1") is None
    assert Route("m/{month:range(1,12)}").match("/m/13") is None
    assert Route("p/{page=1}").match("/p") == {"page": "1"}
    assert Route("files/{*path}").match("/files/a/b.pdf") == {"path": "a/b.pdf"}
    assert Route("files/{name}.{ext}").match("/files/a.b.pdf") == {"name": "a.b", "ext": "pdf"}
    ranked = sorted(map(Route, ["a/{x}", "{*all}", "a/b", "a/{x:int}"]), key=lambda r: r.rank)
    assert [r.template for r in ranked] == ["a/b", "a/{x:int}", "a/{x}", "{*all}"]
