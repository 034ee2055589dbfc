"""Graph change and lifecycle notifications: check, store on a queue, answer 202 at once.

This path imports neither msgraph nor anything slow: Graph wants an answer within 3 s.
"""
from __future__ import annotations

import logging
import time

import azure.functions as func

from shared.app import get_app
from shared.heap import freeze_once
from shared.services.notifications import NotAcceptable, TooManyItems, parse_collection, screen

bp = func.Blueprint()
log = logging.getLogger("prorata.webhook")


def _validation(req: func.HttpRequest) -> func.HttpResponse | None:
    """The handshake: echo the (URL-decoded) token as plain text, never as HTML."""
    token = req.params.get("validationToken")
    if token is None:
        return None
    return func.HttpResponse(token, status_code=200, mimetype="text/plain", charset="utf-8")


def _text(status: int, message: str) -> func.HttpResponse:
    return func.HttpResponse(message, status_code=status, mimetype="text/plain", charset="utf-8")


def _receive(req: func.HttpRequest, *, lifecycle: bool) -> func.HttpResponse:
    handshake = _validation(req)
    if handshake is not None:
        return handshake
    app = get_app()
    # Graph wants an answer within 3 s; past this deadline the answer is 503 and Graph delivers again.
    deadline = time.monotonic() + app.settings.integer("WEBHOOK_DEADLINE_MILLISECONDS") / 1000
    body = req.get_body() or b""
    limit = app.settings.integer("WEBHOOK_MAX_BODY_BYTES")
    if len(body) > limit:
        log.warning("Refused a notification body of %d bytes (limit %d).", len(body), limit)
        return _text(413, f"body larger than {limit} bytes")
    try:
        items = parse_collection(body, max_items=app.settings.integer("WEBHOOK_MAX_ITEMS"))
    except TooManyItems as error:
        log.warning("Refused a notification body: %s.", error)
        return _text(413, str(error))
    except NotAcceptable as error:
        return _text(400, str(error))
    received_at = app.now().timestamp()
    # subscriptions all in memory: checked in this thread; else on a lookup thread, so that a
    # storage read that hangs still lets this call answer 503 at its deadline
    in_memory = app.subscription_cache.answered({str(item.get("subscriptionId") or "") for item in items})
    checking = None
    try:
        if in_memory is not None:
            screened = screen(items, in_memory, received_at=received_at, lifecycle=lifecycle)
        else:
            checking = app.webhook_lookups.submit(screen, items, app.subscription_cache.for_request(),
                                                  received_at=received_at, lifecycle=lifecycle)
            screened = checking.result(timeout=max(0.0, deadline - time.monotonic()))
        if screened.dropped:
            log.warning("Dropped notifications that are not genuine: %s.", screened.dropped_summary())
        app.notification_writer.submit(list(screened.sync_requests.values()),
                                       timeout=max(0.0, deadline - time.monotonic()))
    except Exception as error:
        if checking is not None:
            checking.cancel()
        # Not stored: answer 5xx so that Graph delivers it again.
        why = "storage did not answer in time" if isinstance(error, TimeoutError) else repr(error)
        log.error("Could not store %d notification(s) (%s); answered 503, Graph will retry.", len(items), why)
        return _text(503, "could not store the notifications")
    log.info("Accepted %d notification(s) for %d tenant(s), dropped %d.", len(items) - len(screened.dropped),
             len(screened.sync_requests), len(screened.dropped))
    freeze_once("notification")
    return func.HttpResponse(status_code=202)


@bp.route(route="graph/notifications", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def graph_notifications(req: func.HttpRequest) -> func.HttpResponse:
    return _receive(req, lifecycle=False)


@bp.route(route="graph/lifecycle", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def graph_lifecycle(req: func.HttpRequest) -> func.HttpResponse:
    return _receive(req, lifecycle=True)


