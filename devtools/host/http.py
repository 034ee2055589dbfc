"""The HTTP side of the development host: a threaded HTTP/1.1 keep-alive server that routes
`/<routePrefix>/<route>` to HTTP-triggered functions, checks function keys, and turns the
returned `func.HttpResponse` into the response. `POST /admin/functions/<name>` runs a
non-HTTP function as the host's admin API does (`{"input": "..."}`, answers 202)."""
from __future__ import annotations

import json
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

from .index import HTTP, FunctionInfo
from .routes import Route

if TYPE_CHECKING:
    from .core import DevHost

log = logging.getLogger("devtools.host")
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
KEYED_LEVELS = {"function", "admin"}
Reply = tuple[int, list[tuple[str, str]], bytes]


def _joined(pairs, separator: str) -> dict[str, str]:
    """Repeated names joined into one value, as the host hands them to the worker."""
    out: dict[str, str] = {}
    for name, value in pairs:
        out[name] = f"{out[name]}{separator}{value}" if name in out else value
    return out


def response_of(result) -> Reply:
    """Status, headers and body for what an HTTP function returned."""
    if isinstance(result, func.HttpResponse):
        headers = list(result.headers.items())
        if not any(name.lower() == "content-type" for name, _ in headers):
            mimetype = result.mimetype
            headers.append(("Content-Type", f"{mimetype}; charset={result.charset}"
                            if mimetype.startswith("text/") else mimetype))
        return result.status_code, headers, result.get_body() or b""
    if result is None:
        return 204, [], b""
    if isinstance(result, str):
        return 200, [("Content-Type", "text/plain; charset=utf-8")], result.encode()
    if isinstance(result, (bytes, bytearray)):
        return 200, [("Content-Type", "application/octet-stream")], bytes(result)
    return 200, [("Content-Type", "application/json")], json.dumps(result, default=str).encode()


class HttpDispatcher:
    """Routes a request to its function and answers it (pure: no sockets here)."""

    def __init__(self, host: "DevHost", functions: list[FunctionInfo], route_prefix: str,
                 keys: set[str]) -> None:
        self.host, self.keys = host, keys
        self.prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self.routes = sorted(((Route(f.route or f.name), f) for f in functions if f.trigger_type == HTTP),
                             key=lambda pair: pair[0].rank)

    def url_of(self, info: FunctionInfo, base_url: str) -> str:
        route = (info.route or info.name).strip("/")
        return f"{base_url}{self.prefix}/{route}" if route else f"{base_url}{self.prefix}"

    def dispatch(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                 base_url: str) -> Reply:
        url = urlsplit(target)
        path = url.path
        if method == "POST" and path.lower().startswith("/admin/functions/"):
            return self._admin(unquote(path[len("/admin/functions/"):]), body)
        if self.prefix:
            if path.lower() != self.prefix and not path.lower().startswith(self.prefix + "/"):
                return 404, [], b""
            path = path[len(self.prefix):]
        allowed: list[str] = []
        for route, info in self.routes:
            values = route.match(path)
            if values is None:
                continue
            if info.methods and method not in info.methods:
                allowed += info.methods
                continue
            return self._call(info, method, url, values, headers, body, base_url)
        if allowed:
            return 405, [("Allow", ", ".join(sorted(set(allowed))))], b""
        return 404, [], b""

    def _call(self, info, method, url, route_values, headers, body, base_url) -> Reply:
        params = _joined(parse_qsl(url.query, keep_blank_values=True), ",")
        header_map = _joined(headers, ", ")
        if info.auth_level in KEYED_LEVELS:
            given = params.get("code", "").split(",")[0] or \
                next((v for k, v in header_map.items() if k.lower() == "x-functions-key"), "")
            if not given or given not in self.keys:
                return 401, [], b""
        request = func.HttpRequest(method=method, url=base_url + url.geturl(), params=params,
                                   headers=header_map, body=body, route_params=route_values)
        invocation = self.host.invoke(info, request, "This function was programmatically called via the host APIs.")
        if not invocation.succeeded:
            return 500, [], b""
        try:
            return response_of(invocation.result)
        except Exception:  # noqa: BLE001 - a malformed return value is the function's failure
            log.exception("Function 'Functions.%s' returned a value the host cannot send", info.name)
            return 500, [], b""

    def _admin(self, name: str, body: bytes) -> Reply:
        info = self.host.functions.get(name)
        if info is None or info.trigger_type == HTTP:
            return 404, [], b""
        try:
            given = json.loads(body or b"{}").get("input", "")
        except (ValueError, AttributeError):
            return 400, [], b""
        threading.Thread(target=self.host.run_manually, args=(name, given), daemon=True).start()
        return 202, [], b""


class _Handler(BaseHTTPRequestHandler):
    """One keep-alive connection; every method goes to the dispatcher."""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 300
    server: "DevHttpServer"

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format, *args) -> None:  # the host logs invocations itself
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        body = self._body()
        base = f"http://{self.headers.get('Host') or self.server.authority}"
        try:
            status, headers, payload = self.server.dispatcher.dispatch(
                self.command, self.path, list(self.headers.items()), body, base)
        except Exception:  # noqa: BLE001 - a host bug answers 500, the connection lives on
            log.exception("The development host failed on %s %s", self.command, self.path)
            status, headers, payload = 500, [], b""
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {self.date_time_string()}",
                 f"Content-Length: {len(payload)}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in {"content-length", "date"}]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        self.wfile.write(head if self.command == "HEAD" else head + payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class DevHttpServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on 127.0.0.1 that can close its keep-alive connections on shutdown."""
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port: int, dispatcher: HttpDispatcher) -> None:
        self.dispatcher = dispatcher
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)
        self.authority = f"127.0.0.1:{self.server_address[1]}"

    def track(self, connection: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            (self._open.add if is_open else self._open.discard)(connection)

    def close_all(self) -> None:
        """Stop serving and cut the open keep-alive connections."""
        self.shutdown()
        self.server_close()
        with self._open_lock:
            for connection in list(self._open):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
