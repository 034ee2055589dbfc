"""The development host keeps a running queue message hidden by renewing a short hold, as the
Functions host does, so that a message whose host died comes back after that short hold (a
minute, not ten) while a message that runs longer than the hold still runs once."""
from __future__ import annotations

import time

from azure.storage.queue import QueueClient, TextBase64EncodePolicy

import devtools.host.queues as queues
from devtools.host import DevHost

SLOW_APP = (
    "import time\nimport azure.functions as func\n"
    "app = func.FunctionApp()\nRUNS = []\n"
    "@app.queue_trigger(arg_name='msg', queue_name='slow-work', connection='AzureWebJobsStorage')\n"
    "def slow(msg: func.QueueMessage) -> None:\n"
    "    RUNS.append(msg.dequeue_count)\n"
    "    time.sleep(2.5)\n")


def test_a_message_running_longer_than_its_hold_runs_once(tmp_path, monkeypatch, storage_connection_string):
    monkeypatch.setattr(queues, "RECEIVE_VISIBILITY", 1)
    monkeypatch.setattr(queues, "RENEW_EVERY", 0.3)
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    settings = {"AzureWebJobsStorage": storage_connection_string}
    with DevHost(tmp_path, "slow_app", settings, enable_timers=False, enable_http=False) as host:
        work = QueueClient.from_connection_string(storage_connection_string, "slow-work",
                                                  message_encode_policy=TextBase64EncodePolicy())
        work.send_message("a long job")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not host.module.RUNS:
            time.sleep(0.05)
        assert host.wait_idle(15)
        time.sleep(1.5)  # a hold that lapsed would have shown the message again by now
        assert host.module.RUNS == [1]
        assert work.get_queue_properties().approximate_message_count == 0
