"""Helpers for tests that talk to the Graph simulator: a static-token credential, a real
msgraph-sdk client pointed at the simulator, and a tiny webhook receiver."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class StaticTokenCredential:
    """A TokenCredential that always returns the same bearer token (the simulator's
    `sim-token.{tenant_id}`). kiota's AzureIdentityAccessTokenProvider calls `get_token`
    (sync or async both work) and only accepts plain http for localhost / 127.0.0.1."""

    def __init__(self, token: str):
        self.token = token

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken
        return AccessToken(self.token, int(time.time()) + 3600)


def graph_client(base_url: str, tenant_id: str):
    """A real GraphServiceClient whose requests go to the simulator at `base_url`
    (`http://127.0.0.1:PORT/v1.0`) with the token `sim-token.{tenant_id}`."""
    from msgraph import GraphServiceClient

    client = GraphServiceClient(credentials=StaticTokenCredential(f"sim-token.{tenant_id}"),
                                scopes=["https://graph.microsoft.com/.default"])
    client.request_adapter.base_url = base_url
    return client


class WebhookReceiver:
    """A local notification endpoint. `mode` decides how it answers validation requests:
    "echo" (correct: 200 text/plain with the token), "json" (wrong content type), "fail" (500).
    `status_script` is a list of statuses to answer to the next notifications (then 202)."""

    def __init__(self, mode: str = "echo"):
        self.mode = mode
        self.status_script: list[int] = []
        self.validations: list[str] = []
        self.posts: list[dict] = []
        self._cv = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle stalls

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = parse_qs(urlsplit(self.path).query)
                if "validationToken" in query:
                    token = query["validationToken"][0]
                    receiver.validations.append(token)
                    if receiver.mode == "fail":
                        return self._answer(500, b"nope", "text/plain")
                    if receiver.mode == "json":
                        return self._answer(200, json.dumps(token).encode(), "application/json")
                    return self._answer(200, token.encode("utf-8"), "text/plain; charset=utf-8")
                with receiver._cv:
                    status = receiver.status_script.pop(0) if receiver.status_script else 202
                    receiver.posts.append({"path": urlsplit(self.path).path, "status": status,
                                           "body": json.loads(body or b"null")})
                    receiver._cv.notify_all()
                self._answer(status, b"", None)

            def _answer(self, status: int, payload: bytes, content_type: str | None):
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/notify"

    @property
    def lifecycle_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/lifecycle"

    def accepted_items(self, path: str = "/notify") -> list[dict]:
        """Items of the POSTs this receiver answered with 2xx, in arrival order."""
        with self._cv:
            return [item for post in self.posts if post["path"] == path and post["status"] < 300
                    for item in post["body"]["value"]]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
