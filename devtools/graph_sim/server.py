"""HTTP front of the simulator: `/v1.0/...` behaves as Microsoft Graph, `/api/v2.0/...` serves
upload-session URLs (pre-authenticated, as Outlook's are), `/_sim/...` is the control API
(JSON in, JSON out, no auth) that never shares a prefix with Graph."""
from __future__ import annotations

import json
import re
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from .clock import graph_datetime, parse_graph_datetime
from .state import REQUEST_BODY_LIMIT, ControlError, ControlNotFound, GraphError, ci_get

if TYPE_CHECKING:
    from .simulator import GraphSimulator

MAX_BODY = 200 * 1024 * 1024  # anything bigger is refused before it is read
_TOKEN = re.compile(r"^Bearer\s+sim-token\.(?P<tenant>\S+)$", re.I)


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, sim: "GraphSimulator"):
        self.sim = sim
        super().__init__(address, SimHandler)


class _Reply(Exception):
    """Raised inside a handler to answer at once."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


class SimHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GraphSimulator/1.0"
    server: SimHTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body leave in separate writes: without this, Nagle's algorithm and delayed
        # ACKs add ~40 ms to every keep-alive request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # quiet: requests go to sim.requests instead of stderr
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # ------------------------------------------------------------------ plumbing
    @property
    def sim(self) -> "GraphSimulator":
        return self.server.sim

    def _root(self) -> str:
        return self.sim.root_url

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    self.close_connection = True
                    raise _Reply(413, _error_body(413, "RequestEntityTooLarge", "The request body is too large."))
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise _Reply(413, _error_body(413, "RequestEntityTooLarge", "The request body is too large."))
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        if body is None:
            payload, content_type = b"", None
        elif isinstance(body, (bytes, bytearray)):
            payload, content_type = bytes(body), "application/octet-stream"
        else:
            payload, content_type = json.dumps(body).encode("utf-8"), "application/json; charset=utf-8"
        self.send_response(status)
        request_id = str(uuid.uuid4())
        self.send_header("request-id", request_id)
        self.send_header("client-request-id", self.headers.get("client-request-id") or request_id)
        if content_type and status != 204:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if status != 204 and payload:
            self.wfile.write(payload)

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        split = urlsplit(self.path)
        path = split.path
        query = _query(split.query)
        status = 500
        tenant = None
        self._operations: list[str] = []  # the Graph operations (doc page names) this request ran
        try:
            try:
                body = self._read_body()
                if path == "/v1.0" or path.startswith("/v1.0/"):
                    tenant, status, out, headers = self._graph(method, path[5:], query, body)
                elif path.startswith("/_sim/") or path == "/_sim":
                    status, out, headers = self._control(method, path[5:], query, body)
                elif path.startswith("/api/v2.0/"):
                    status, out, headers = self._upload(method, path, query, body)
                else:
                    raise GraphError(404, "ResourceNotFound", f"Resource not found for the segment '{path.strip('/').split('/')[0]}'.")
            except GraphError as err:
                status, out, headers = err.status, _error_body(err.status, err.code, err.message), err.headers
            except _Reply as reply:
                status, out, headers = reply.status, reply.body, reply.headers
            # recorded before answering, so a client that got its answer finds its request here
            self.sim._record_request(method, self.path, status, tenant, started, operations=self._operations)
            self._send(status, out, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:  # a bug in the simulator: say so, loudly
            self.sim._record_request(method, self.path, 500, tenant, started, error=repr(err))
            try:
                self._send(500, _error_body(500, "generalException", f"graph simulator bug: {type(err).__name__}: {err}"))
            except OSError:
                pass
            raise

    # ------------------------------------------------------------------ Graph
    def _graph(self, method: str, rest: str, query: dict[str, str], body: bytes):
        sim = self.sim
        auth = self.headers.get("Authorization") or ""
        m = _TOKEN.match(auth.strip())
        if not auth:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        if not m or not sim.state.knows_tenant(m.group("tenant")):
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Access token validation failure. Invalid audience or unknown tenant.")
        tenant = m.group("tenant")
        if len(body) > REQUEST_BODY_LIMIT:
            raise GraphError(413, "RequestEntityTooLarge", "The maximum request length supported is 4MB.")
        segments = [unquote(s) for s in rest.split("/") if s != ""]
        if [s.lower() for s in segments] == ["$batch"]:
            if method != "POST":
                raise GraphError(405, "Request_BadRequest", "$batch takes a POST.")
            _raise_throttled(sim.state.take_throttle("/$batch"))
            return tenant, 200, self._batch(tenant, self._json(body)), {}
        status, out, headers = self._one(tenant, method, segments, query, body, self.headers)
        return tenant, status, out, headers

    def _one(self, tenant: str, method: str, segments: list[str], query: dict[str, str], body: bytes, headers):
        _raise_throttled(self.sim.state.take_throttle("/" + "/".join(segments)))
        return self._graph_route(tenant, method, segments, query, body, headers)

    def _batch(self, tenant: str, payload: Any) -> dict:
        """JSON batching: up to 20 requests run in order; each answer (a 429 too) goes inside
        the 200 envelope, as Graph does."""
        requests = ci_get(payload, "requests")
        if not isinstance(requests, list) or not requests:
            raise GraphError(400, "BadRequest", "A batch needs a non-empty 'requests' array.")
        if len(requests) > 20:
            raise GraphError(400, "BadRequest", "Number of batch request steps exceeds the maximum of 20.")
        ids = [str(ci_get(r, "id")) for r in requests]
        if len(set(ids)) != len(ids) or any(i in ("", "None") for i in ids):
            raise GraphError(400, "BadRequest", "Every batch request needs a unique 'id'.")
        responses = []
        for rid, item in zip(ids, requests):
            method = str(ci_get(item, "method") or "GET").upper()
            split = urlsplit(str(ci_get(item, "url") or ""))
            path = split.path.lstrip("/")
            if path.lower().startswith("v1.0/"):
                path = path[5:]
            segments = [unquote(s) for s in path.split("/") if s != ""]
            item_body = ci_get(item, "body")
            raw = b"" if item_body is None else json.dumps(item_body).encode("utf-8")
            headers = {str(k).lower(): str(v) for k, v in (ci_get(item, "headers") or {}).items()}
            try:
                if [s.lower() for s in segments] == ["$batch"]:
                    raise GraphError(400, "BadRequest", "A batch cannot contain another batch.")
                status, out, extra = self._one(tenant, method, segments, _query(split.query), raw, headers)
            except GraphError as err:
                status, out, extra = err.status, _error_body(err.status, err.code, err.message), err.headers
            answer: dict[str, Any] = {"id": rid, "status": status, "headers": dict(extra)}
            if out is not None:
                answer["headers"]["Content-Type"] = "application/json"
                answer["body"] = out
            responses.append(answer)
        return {"responses": responses}

    def _json(self, body: bytes) -> Any:
        if not body:
            raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.") from None

    def _graph_route(self, tenant: str, method: str, seg: list[str], query: dict[str, str], body: bytes, headers):
        state = self.sim.state
        base = self.sim.base_url
        low = [s.lower() for s in seg]
        n = len(seg)

        def only(*allowed: str) -> None:
            if method not in allowed:
                raise GraphError(405, "Request_BadRequest", f"The HTTP method '{method}' is not allowed on this resource.")

        def need(operation: str, mailbox: str | None = None) -> None:
            # 403 unless the token holds a permission the operation's doc page lists (permissions.py)
            state.authorize(tenant, operation, mailbox)
            self._operations.append(operation)

        if low[:1] == ["users"]:
            if n == 1:
                only("GET")
                need("user-list")
                _refuse_options(query, ("$expand", "$orderby", "$search", "$count"))
                return 200, state.list_users(tenant, base=base, select_text=query.get("$select"),
                                             top=query.get("$top"), skiptoken=query.get("$skiptoken"),
                                             filter_text=query.get("$filter")), {}
            if n == 2 and low[1] in ("delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()"):
                only("GET")
                need("user-delta")
                _refuse_options(query, ("$filter", "$expand", "$orderby", "$search", "$count", "$top"))
                page_size = _max_page_size(headers.get("Prefer") or headers.get("prefer"))
                out = state.users_delta(tenant, base=base, select_text=query.get("$select"),
                                        skiptoken=query.get("$skiptoken"), deltatoken=query.get("$deltatoken"),
                                        page_size=page_size)
                applied = {"Preference-Applied": f"odata.maxpagesize={page_size}"} if page_size else {}
                return 200, out, applied
            mailbox = seg[1]
            if n == 2:
                only("GET")
                need("user-get")
                return 200, state.get_user(tenant, mailbox, base=base, select_text=query.get("$select")), {}
            if n == 3 and low[2] in ("sendmail", "microsoft.graph.sendmail"):
                only("POST")
                need("user-sendmail", mailbox)
                state.send_mail(tenant, mailbox, self._json(body))
                return 202, None, {}
            if low[2:3] == ["messages"]:
                if n == 3:
                    only("POST")
                    need("user-post-messages", mailbox)
                    return 201, state.create_draft(tenant, mailbox, self._json(body), base=base), {}
                message_id = seg[3]
                if n == 4:
                    only("GET")
                    need("message-get", mailbox)
                    return 200, state.get_draft(tenant, mailbox, message_id, base=base), {}
                if n == 5 and low[4] in ("send", "microsoft.graph.send"):
                    only("POST")
                    need("message-send", mailbox)
                    state.send_draft(tenant, mailbox, message_id)
                    return 202, None, {}
                if n == 5 and low[4] == "attachments":
                    only("POST")
                    need("message-post-attachments", mailbox)
                    return 201, state.add_draft_attachment(tenant, mailbox, message_id, self._json(body), base=base), {}
                if n == 6 and low[4] == "attachments" and low[5] in ("createuploadsession", "microsoft.graph.createuploadsession"):
                    only("POST")
                    need("attachment-createuploadsession", mailbox)
                    return 201, state.create_upload_session(tenant, mailbox, message_id, self._json(body), root=self._root()), {}
        if low == ["subscribedskus"]:
            only("GET")
            need("subscribedsku-list")
            return 200, state.subscribed_skus(tenant, base=base), {}
        if low[:1] == ["subscriptions"]:
            if n == 1:
                only("GET", "POST")
                if method == "GET":
                    need("subscription-list")
                    return 200, state.list_subscriptions(tenant, base=base), {}
                need("subscription-post-subscriptions")
                return 201, self.sim._create_subscription(tenant, self._json(body)), {}
            sub_id = seg[1]
            if n == 2:
                only("GET", "PATCH", "DELETE")
                if method == "GET":
                    need("subscription-get")
                    return 200, state.get_subscription(tenant, sub_id, base=base), {}
                if method == "PATCH":
                    need("subscription-update")
                    return 200, state.renew_subscription(tenant, sub_id, self._json(body), base=base), {}
                need("subscription-delete")
                state.delete_subscription(tenant, sub_id)
                return 204, None, {}
            if n == 3 and low[2] in ("reauthorize", "microsoft.graph.reauthorize"):
                only("POST")
                need("subscription-reauthorize")
                state.reauthorize_subscription(tenant, sub_id)
                return 204, None, {}
        shown = "/".join(seg) or "(root)"
        raise GraphError(404, "ResourceNotFound",
                         f"Resource not found for the segment '{shown}' (the Graph simulator does not serve it).")

    # ------------------------------------------------------------------ upload URLs
    def _upload(self, method: str, path: str, query: dict[str, str], body: bytes):
        m = re.search(r"/AttachmentSessions\('([^']+)'\)$", unquote(path))
        if not m:
            raise GraphError(404, "ErrorItemNotFound", "The upload session was not found.")
        session_id = m.group(1)
        token = query.get("authtoken")
        if method == "PUT":
            # attachment-createuploadsession: "Don't specify an Authorization request header in the
            # PUT operation" (the URL carries its own token); Content-Type application/octet-stream
            # is required beside Content-Range.
            if self.headers.get("Authorization"):
                raise GraphError(401, "InvalidAuthenticationToken",
                                 "Do not send an Authorization header to an upload URL: its authtoken authorizes it.")
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type != "application/octet-stream":
                raise GraphError(400, "ErrorInvalidRequest",
                                 f"An upload range needs Content-Type application/octet-stream, not {content_type or '(none)'}.")
            status, headers, out = self.sim.state.upload_chunk(session_id, token, self.headers.get("Content-Range"),
                                                               body, root=self._root())
            return status, out, headers
        if method == "DELETE":
            self.sim.state.cancel_upload(session_id, token)
            return 204, None, {}
        raise GraphError(405, "ErrorInvalidRequest", f"{method} is not allowed on an upload session.")

    # ------------------------------------------------------------------ control API
    def _control(self, method: str, rest: str, query: dict[str, str], body: bytes):
        args: dict = {}
        if body:
            try:
                args = json.loads(body)
            except ValueError:
                return 400, {"error": "the control API takes a JSON object"}, {}
            if not isinstance(args, dict):
                return 400, {"error": "the control API takes a JSON object"}, {}
        path = "/" + rest.strip("/")
        for verb, pattern, handler in CONTROL_ROUTES:
            if verb != method:
                continue
            m = re.fullmatch(pattern, path)
            if m:
                try:
                    result = handler(self.sim, *[unquote(g) for g in m.groups()], args=args, query=query)
                except ControlNotFound as err:
                    return 404, {"error": str(err).strip("'\"")}, {}
                except (ControlError, TypeError, ValueError, KeyError) as err:
                    return 400, {"error": f"{type(err).__name__}: {err}"}, {}
                return 200, result if result is not None else {"ok": True}, {}
        return 404, {"error": f"no control endpoint {method} /_sim{path}", "endpoints": control_endpoints()}, {}


def _query(text: str) -> dict[str, str]:
    """Query options by lower-cased name (`$deltaToken` and `$deltatoken` alike)."""
    out: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        out[name.lower()] = value
    return out


def _raise_throttled(rule: dict | None) -> None:
    if rule is None:
        return
    if rule["status"] == 429:
        code, text = "TooManyRequests", "Too many requests. Please retry after the time given in Retry-After."
    else:
        code, text = "serviceNotAvailable", "The service is temporarily unavailable. Please retry after the time given in Retry-After."
    raise GraphError(rule["status"], code, text, {"Retry-After": str(rule["retry_after"])})


def _refuse_options(query: dict[str, str], names: tuple[str, ...]) -> None:
    """Query options the simulator does not implement are refused, never silently ignored."""
    used = [name for name in names if name in query]
    if used:
        raise GraphError(400, "Request_UnsupportedQuery",
                         f"The Graph simulator does not support {', '.join(used)} here.")


def _max_page_size(prefer: str | None) -> int | None:
    if not prefer:
        return None
    m = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer, re.I)
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


def _error_body(status: int, code: str, message: str) -> dict:
    now = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat()
    request_id = str(uuid.uuid4())
    return {"error": {"code": code, "message": message,
                      "innerError": {"date": now, "request-id": request_id, "client-request-id": request_id}}}


# ---------------------------------------------------------------------- control routes
def _when(args: dict, key: str = "now") -> datetime:
    return parse_graph_datetime(args[key])


def _user_action(action: str) -> Callable:
    def run(sim, tenant_id, user_id, *, args, query):
        if action == "assign_license":
            return {"changed": sim.assign_license(tenant_id, user_id, args["sku"])}
        if action == "remove_license":
            return {"changed": sim.remove_license(tenant_id, user_id, args["sku"])}
        if action == "disable":
            return {"changed": sim.disable_user(tenant_id, user_id)}
        if action == "enable":
            return {"changed": sim.enable_user(tenant_id, user_id)}
        if action == "soft_delete":
            return sim.soft_delete_user(tenant_id, user_id)
        if action == "restore":
            return sim.restore_user(tenant_id, user_id)
        if action == "hard_delete":
            return sim.hard_delete_user(tenant_id, user_id)
        if action == "update":
            return {"changed": sim.update_user(tenant_id, user_id, **args)}
        raise ControlError(f"unknown action {action}")
    return run


def _create_user(sim, tenant_id, *, args, query):
    kwargs = dict(args)
    if kwargs.get("created"):
        kwargs["created"] = parse_graph_datetime(kwargs["created"])
    return {"id": sim.create_user(tenant_id, **kwargs)}


def _clock(sim, *, args, query):
    if "now" in args:
        sim.set_now(_when(args), freeze=bool(args.get("freeze", True)))
    if "advance_seconds" in args:
        sim.advance(timedelta(seconds=float(args["advance_seconds"])))
    return {"now": graph_datetime(sim.now(), fraction=True)}


CONTROL_ROUTES: list[tuple[str, str, Callable]] = [
    ("GET", r"/health", lambda sim, *, args, query: {"ok": True, "baseUrl": sim.base_url}),
    ("GET", r"/clock", lambda sim, *, args, query: {"now": graph_datetime(sim.now(), fraction=True)}),
    ("POST", r"/clock", _clock),
    ("POST", r"/reset", lambda sim, *, args, query: sim.reset()),
    ("GET", r"/tenants", lambda sim, *, args, query: sim.tenants()),
    ("POST", r"/tenants", lambda sim, *, args, query: sim.add_tenant(args["tenant_id"], args.get("name"), args.get("domain"), roles=args.get("roles", ()))),
    ("POST", r"/tenants/([^/]+)/grant", lambda sim, t, *, args, query: {"roles": sim.grant(t, *args["roles"])}),
    ("POST", r"/tenants/([^/]+)/revoke", lambda sim, t, *, args, query: {"roles": sim.revoke(t, *args["roles"])}),
    ("POST", r"/tenants/([^/]+)/grant_mailbox", lambda sim, t, *, args, query: {"roles": sim.grant_mailbox(t, args["mailbox"], *args["roles"])}),
    ("GET", r"/tenants/([^/]+)/skus", lambda sim, t, *, args, query: sim.skus(t)),
    ("POST", r"/tenants/([^/]+)/skus", lambda sim, t, *, args, query: {"skuId": sim.add_sku(t, args["sku_part_number"], prepaid=args.get("prepaid", 0), sku_id=args.get("sku_id"), applies_to=args.get("applies_to", "User"), capability_status=args.get("capability_status", "Enabled"))}),
    ("POST", r"/tenants/([^/]+)/skus/([^/]+)/prepaid", lambda sim, t, s, *, args, query: sim.set_prepaid_units(t, s, **args)),
    ("GET", r"/tenants/([^/]+)/users", lambda sim, t, *, args, query: sim.users(t)),
    ("POST", r"/tenants/([^/]+)/users", _create_user),
    *[("POST", rf"/tenants/([^/]+)/users/([^/]+)/{action}", _user_action(action))
      for action in ("assign_license", "remove_license", "disable", "enable", "soft_delete", "restore",
                     "hard_delete", "update")],
    ("POST", r"/tenants/([^/]+)/drop_notifications", lambda sim, t, *, args, query: sim.drop_next_notifications(t, int(args.get("count", 1)))),
    ("POST", r"/tenants/([^/]+)/invalidate_delta_tokens", lambda sim, t, *, args, query: sim.invalidate_delta_tokens(t, args.get("form", "syncStateNotFound"))),
    ("POST", r"/tenants/([^/]+)/replay_delta", lambda sim, t, *, args, query: sim.replay_next_delta(t)),
    ("POST", r"/delta_page_size", lambda sim, *, args, query: sim.set_delta_page_size(int(args["size"]))),
    ("POST", r"/throttle", lambda sim, *, args, query: sim.throttle(**args)),
    ("GET", r"/subscriptions", lambda sim, *, args, query: sim.subscriptions(query.get("tenant_id"))),
    ("POST", r"/subscriptions/([^/]+)/lifecycle", lambda sim, s, *, args, query: sim.send_lifecycle(s, args["event"], unusual=bool(args.get("unusual", False)))),
    ("POST", r"/replication_delay", lambda sim, *, args, query: sim.set_replication_delay(float(args["seconds"]))),
    ("POST", r"/tenants/([^/]+)/skus/([^/]+)/status", lambda sim, t, s, *, args, query: sim.set_sku_status(t, s, args["capability_status"])),
    ("POST", r"/notifications/batching", lambda sim, *, args, query: sim.set_notification_batching(**args)),
    ("POST", r"/notifications/wait", lambda sim, *, args, query: {"idle": sim.wait_deliveries(float(args.get("timeout", 10)))}),
    ("GET", r"/delivery_log", lambda sim, *, args, query: sim.delivery_log),
    ("GET", r"/requests", lambda sim, *, args, query: sim.requests),
    ("GET", r"/outbox", lambda sim, *, args, query: sim.outbox_json(include_bytes=query.get("bytes") in ("1", "true"), tenant_id=query.get("tenant_id"))),
    ("POST", r"/outbox/export", lambda sim, *, args, query: {"folders": sim.export_outbox(args["folder"])}),
    ("DELETE", r"/outbox", lambda sim, *, args, query: sim.clear_outbox()),
]


_PLACEHOLDERS = {"tenants": "tenant_id", "users": "user_id", "skus": "sku", "subscriptions": "subscription_id"}


def control_endpoints() -> list[str]:
    """The control routes, readable: `POST /_sim/tenants/{tenant_id}/users`..."""
    def readable(pattern: str) -> str:
        return re.sub(r"(\w+)/\(\[\^/\]\+\)", lambda m: f"{m.group(1)}/{{{_PLACEHOLDERS[m.group(1)]}}}", pattern)
    return [f"{verb} /_sim{readable(pattern)}" for verb, pattern, _ in CONTROL_ROUTES]
