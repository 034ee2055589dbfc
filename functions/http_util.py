"""Small helpers for HTTP answers (JSON bodies, errors that say what is wrong) and for the checks
every door makes before anything reaches storage or Graph."""
from __future__ import annotations

import functools
import json
import logging
from typing import Any, Callable, TypeVar

import azure.functions as func

log = logging.getLogger("prorata.http")
T = TypeVar("T")
MAX_JSON_BODY_BYTES = 64 * 1024  # a request is stored in table properties of at most 64 KB each
MAX_JSON_DEPTH = 20  # no request Prorata reads nests deeper than a few levels


class Refused(Exception):
    """A request answered with a 4xx and a message naming what is wrong."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def json_response(data: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(data, ensure_ascii=False, indent=1), status_code=status,
                             mimetype="application/json", charset="utf-8")


def error_response(status: int, message: str) -> func.HttpResponse:
    return json_response({"error": message}, status)


def door(handler: Callable[[func.HttpRequest], func.HttpResponse]) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Answers a Refused raised by the handler with its status and message."""
    @functools.wraps(handler)
    def answer(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return handler(req)
        except Refused as refused:
            return error_response(refused.status, refused.message)
    return answer


def route_tenant_id(req: func.HttpRequest) -> str:
    """The `{tenant_id}` of the path, refused (400) unless it is a GUID."""
    from shared.tenants import is_tenant_id

    value = req.route_params.get("tenant_id") or ""
    if not is_tenant_id(value):
        raise Refused(400, f"tenant id in the path: expected the client's Entra tenant id (a GUID), got {value[:80]!r}")
    return value


def json_body(req: func.HttpRequest, *, limit: int = MAX_JSON_BODY_BYTES) -> object:
    """The request body as JSON: 413 above `limit` bytes, 400 unless it is UTF-8 JSON nested at
    most MAX_JSON_DEPTH levels."""
    body = req.get_body() or b""
    if len(body) > limit:
        raise Refused(413, f"request body: {len(body)} bytes; at most {limit} are accepted")
    try:
        data = json.loads(body.decode("utf-8"))  # JSON over HTTP is UTF-8 (RFC 8259 section 8.1)
    except UnicodeDecodeError as error:
        raise Refused(400, f"request body: not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise Refused(400, f"request body: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
    except RecursionError:
        raise Refused(400, f"request body: nested more than {MAX_JSON_DEPTH} levels deep") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise Refused(400, f"request body: nested more than {MAX_JSON_DEPTH} levels deep")
    return data


def _depth(data: object) -> int:
    deepest, level = 0, [(data, 1)]
    while level:
        value, depth = level.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        level.extend((child, depth + 1) for child in children)
    return deepest


def read_onboarding(data: object) -> Any:
    """An onboarding request (shared.tenants.Tenant), refused with 400 naming the field."""
    from shared.billing import InputError
    from shared.tenants import parse_onboarding

    try:
        return parse_onboarding(data, source="request body")
    except InputError as error:
        raise Refused(400, str(error)) from None
    except (ValueError, ArithmeticError, LookupError, TypeError, OSError, RecursionError) as error:
        # A value the plan's checks let through but cannot be used (e.g. a time zone name that
        # is no file): still the request's fault, never a 500.
        log.warning("Refused an onboarding request: %s: %s", type(error).__name__, error)
        raise Refused(400, f"request body: a value cannot be used ({type(error).__name__}: {str(error)[:200]})") from None


def served(work: Callable[[], T], subject: str) -> T:
    """work(), with Graph's and storage's refusals turned into answers (refused_by_a_service)."""
    try:
        return work()
    except Exception as error:
        refused = refused_by_a_service(error, subject)
        if refused is None:
            raise
        raise refused from None


def refused_by_a_service(error: Exception, subject: str) -> Refused | None:
    """What a door answers when Graph or storage refuse: 502 for Graph, 400 for a value that
    storage refuses as too large; None for anything else (a real fault, raised as it is)."""
    from azure.core.exceptions import HttpResponseError

    from shared.graph.gateway import GraphError

    if isinstance(error, GraphError):
        log.warning("%s: Microsoft Graph refused: %s", subject, error)
        return Refused(502, f"{subject}: Microsoft Graph refused: {error}")
    if isinstance(error, HttpResponseError) and error.status_code in (400, 413):
        log.warning("%s: storage refused a value: %s", subject, getattr(error, "error_code", None) or error)
        return Refused(400, f"{subject}: a value is too large to store (at most 64 KB per field)")
    return None
