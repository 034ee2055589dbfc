"""Cold start: importing the app is cheap, and the webhook path never imports msgraph."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys, time
started = time.perf_counter()
import function_app
imported = time.perf_counter() - started
import azure.functions as func
from functions.graph_webhook import graph_notifications
handshake = graph_notifications(func.HttpRequest("POST", "http://x/api/graph/notifications",
                                                 params={"validationToken": "abc"}, body=b""))
body = json.dumps({"value": [{"subscriptionId": "nope", "clientState": "x", "tenantId": "t"}]}).encode()
delivery = graph_notifications(func.HttpRequest("POST", "http://x/api/graph/notifications", body=body))
print(json.dumps({"import_seconds": imported, "handshake": handshake.status_code, "delivery": delivery.status_code,
                  "heavy": sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in
                                   ("msgraph", "kiota_abstractions", "xhtml2pdf", "reportlab", "jinja2", "httpx")})}))
"""


def test_importing_the_app_is_cheap_and_the_webhook_never_imports_msgraph(azurite):
    env = {**os.environ, "AzureWebJobsStorage": azurite.connection_string, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["handshake"] == 200 and seen["delivery"] == 202
    assert seen["heavy"] == []
