"""Graph change and lifecycle notifications: check, store on a queue, answer 202 at once.

This path imports neither msgraph nor anything slow: Graph wants an answer within 3 s.
"""
from __future__ import annotations

import logging

import azure.functions as func

from shared.app import get_app
from shared.services.notifications import NotAcceptable, parse_collection, screen

bp = func.Blueprint()
log = logging.getLogger("prorata.webhook")


def _validation(req: func.HttpRequest) -> func.HttpResponse | None:
    """The handshake: echo the (URL-decoded) token as plain text, never as HTML."""
    token = req.params.get("validationToken")
    if token is None:
        return None
    return func.HttpResponse(token, status_code=200, mimetype="text/plain", charset="utf-8")


def _receive(req: func.HttpRequest, *, lifecycle: bool) -> func.HttpResponse:
    handshake = _validation(req)
    if handshake is not None:
        return handshake
    app = get_app()
    body = req.get_body() or b""
    limit = app.settings.integer("WEBHOOK_MAX_BODY_BYTES")
    if len(body) > limit:
        log.warning("Refused a notification body of %d bytes (limit %d).", len(body), limit)
        return func.HttpResponse(f"body larger than {limit} bytes", status_code=413, mimetype="text/plain")
    try:
        items = parse_collection(body)
    except NotAcceptable as error:
        return func.HttpResponse(str(error), status_code=400, mimetype="text/plain")
    try:
        screened = screen(items, app.subscription_cache, received_at=app.now().timestamp(), lifecycle=lifecycle)
        for reason in screened.dropped:
            log.warning("Dropped a notification that is not genuine: %s.", reason)
        app.notification_writer.submit(list(screened.sync_requests.values()))
    except Exception:
        # Not stored: answer 5xx so that Graph delivers it again.
        log.exception("Could not store %d notification(s); Graph will retry.", len(items))
        return func.HttpResponse("could not store the notifications", status_code=503, mimetype="text/plain")
    log.info("Accepted %d notification(s) for %d tenant(s), dropped %d.", len(items) - len(screened.dropped),
             len(screened.sync_requests), len(screened.dropped))
    return func.HttpResponse(status_code=202)


@bp.route(route="graph/notifications", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def graph_notifications(req: func.HttpRequest) -> func.HttpResponse:
    return _receive(req, lifecycle=False)


@bp.route(route="graph/lifecycle", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def graph_lifecycle(req: func.HttpRequest) -> func.HttpResponse:
    return _receive(req, lifecycle=True)


