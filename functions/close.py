"""The month-end close: the timers that fan out, the `tenant-close` queue function that closes
one client's month, and the invoice preview over HTTP (function key)."""
from __future__ import annotations

import json
import logging

import azure.functions as func

from functions.http_util import error_response, json_response
from shared.aio import run_async
from shared.app import get_app
from shared.messages import CLOSE_QUEUE, CloseRequest

bp = func.Blueprint()
log = logging.getLogger("prorata.close")

MAX_ATTEMPTS = 5  # host.json extensions.queues.maxDequeueCount: the fifth failure goes to the poison queue


@bp.timer_trigger(arg_name="timer", schedule="%MONTH_END_SCHEDULE%", run_on_startup=False)
def month_end(timer: func.TimerRequest) -> None:
    """06:00 UTC on the 1st: queues every client whose last month has ended in its zone."""
    get_app().close_service().start_month_end("timer")


@bp.timer_trigger(arg_name="timer", schedule="%MONTH_END_CATCHUP_SCHEDULE%", run_on_startup=False)
def month_end_catch_up(timer: func.TimerRequest) -> None:
    """Hourly on the 1st and 2nd: the same rule, for clients whose month ended after 06:00 UTC."""
    get_app().close_service().start_month_end("catch-up")


@bp.queue_trigger(arg_name="msg", queue_name=CLOSE_QUEUE, connection="AzureWebJobsStorage")
def tenant_close(msg: func.QueueMessage) -> None:
    request = CloseRequest.from_json(json.loads(msg.get_body().decode("utf-8")))
    run_async(get_app().close_service().handle(request, attempt=msg.dequeue_count or 1, max_attempts=MAX_ATTEMPTS))


@bp.route(route="tenants/{tenant_id}/invoices/preview", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def invoice_preview(req: func.HttpRequest) -> func.HttpResponse:
    """The invoice JSON of `?period=YYYY-MM` (default: the current month in the client's zone,
    to date), computed as the close computes it."""
    from shared.billing import InputError, Period
    from shared.errors import CloseError, TenantNotOnboarded

    app = get_app()
    tenant_id = req.route_params["tenant_id"]
    tenant = app.tenants.get(tenant_id)
    if tenant is None:
        return error_response(404, f"tenant {tenant_id} is not onboarded")
    text = req.params.get("period")
    try:
        period = Period.parse(text) if text else Period.current(tenant.plan.timezone, app.now())
    except InputError as error:
        return error_response(400, f"query parameter period: {error.problem}")
    try:
        return json_response(app.close_service().preview(tenant_id, period))
    except CloseError as error:
        return error_response(400, f"period {period}: {error}")
    except TenantNotOnboarded as error:
        return error_response(404, str(error))


@bp.route(route="tenants/{tenant_id}/corrections", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def corrections_issue(req: func.HttpRequest) -> func.HttpResponse:
    """Issues the corrections of the client's invoiced months (body {"period": "YYYY-MM"} for one
    month, or empty for every invoiced month of the last 12): 200 with the documents issued."""
    from shared.billing import InputError, Period
    from shared.billing.limits import load_json
    from shared.errors import CloseError
    from shared.graph.gateway import GraphError

    app = get_app()
    try:
        body = load_json(req.get_body() or b"{}", what="the request body")
        if not isinstance(body, dict) or set(body) - {"period"}:
            raise InputError('expected {} or {"period": "YYYY-MM"}')
        period = Period.parse(body["period"]) if body.get("period") is not None else None
        outcomes = run_async(app.corrections().correct_tenant(req.route_params["tenant_id"], period=period))
    except InputError as error:
        return error_response(400, f"request body: {error}")
    except LookupError as error:
        return error_response(404, str(error))
    except CloseError as error:
        return error_response(400, f"period: {error}")
    except GraphError as error:  # recorded on the document; the next run resumes it
        return error_response(503, f"Microsoft Graph refused the email: {error}; it is resumed by the next run")
    return json_response({"issued": [outcome.to_json() for outcome in outcomes]})


@bp.route(route="tenants/{tenant_id}/documents", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def documents_list(req: func.HttpRequest) -> func.HttpResponse:
    """Every document of the client: number, kind, period, total, currency, status, refers_to."""
    from shared.errors import TenantNotOnboarded

    try:
        entries = get_app().document_service().listing(req.route_params["tenant_id"])
    except TenantNotOnboarded as error:
        return error_response(404, str(error))
    return json_response([entry.to_json() for entry in entries])


@bp.route(route="invoices/{number}/{action}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def document_action(req: func.HttpRequest) -> func.HttpResponse:
    """void {"reason"} (a full credit note), reissue {"reason"?} (void plus a new invoice from the
    ledger as now known), resend {"to"?} (the same PDF again, recorded as a re-send)."""
    from shared.billing import InputError
    from shared.billing.limits import check_text, load_json
    from shared.errors import ProrataError
    from shared.graph.gateway import GraphError
    from shared.services.documents import UnknownDocument

    number, action = req.route_params["number"], req.route_params["action"]
    if action not in ("void", "reissue", "resend"):
        return error_response(404, f"no such action {action!r} (void, reissue, resend)")
    service = get_app().document_service()
    try:
        body = load_json(req.get_body() or b"{}", what="the request body")
        if not isinstance(body, dict) or set(body) - {"reason", "to"}:
            raise InputError('expected {"reason": "..."} (void, reissue) or {"to": "address"} (resend)')
        if action == "resend":
            to = check_text(body["to"], "to", limit=254) if body.get("to") is not None else None
            return json_response({"message": run_async(service.resend(number, to))})
        default = "re-issued from the ledger as now known" if action == "reissue" else None
        reason = check_text(body.get("reason", default), "reason", limit=500)
        outcomes = run_async(service.void(number, reason, reissue=action == "reissue"))
    except InputError as error:
        return error_response(400, f"request body: {error}")
    except UnknownDocument as error:
        return error_response(404, str(error))
    except ProrataError as error:
        return error_response(409, str(error))
    except GraphError as error:  # recorded on the document; the next run resumes it
        return error_response(503, f"Microsoft Graph refused the email: {error}; it is resumed by the next run")
    return json_response({"issued": [outcome.to_json() for outcome in outcomes]})
