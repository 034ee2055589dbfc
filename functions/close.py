"""The month-end close: the timers that fan out, the `tenant-close` queue function that closes
one client's month, and the invoice preview over HTTP (function key)."""
from __future__ import annotations

import json
import logging

import azure.functions as func

from functions.http_util import Refused, door, error_response, json_body, json_response, route_tenant_id, served
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
@door
def invoice_preview(req: func.HttpRequest) -> func.HttpResponse:
    """The invoice JSON of `?period=YYYY-MM` (default: the current month in the client's zone,
    to date), computed as the close computes it."""
    from shared.billing import InputError, Period
    from shared.errors import CloseError, TenantNotOnboarded

    app = get_app()
    tenant_id = route_tenant_id(req)
    tenant = app.tenants.get(tenant_id)
    if tenant is None:
        return error_response(404, f"tenant {tenant_id} is not onboarded")
    text = req.params.get("period")
    try:
        period = Period.parse(text) if text else Period.current(tenant.plan.timezone, app.now())
        period.start(tenant.plan.timezone), period.end(tenant.plan.timezone)
    except InputError as error:
        return error_response(400, f"query parameter period: {error.problem}")
    except (OverflowError, ValueError):
        return error_response(400, f"query parameter period: {text[:20]!r} is out of range")
    try:
        return json_response(app.close_service().preview(tenant_id, period))
    except CloseError as error:
        return error_response(400, f"period {period}: {error}")
    except TenantNotOnboarded as error:
        return error_response(404, str(error))


@bp.route(route="invoices/{number}/release", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@door
def invoice_release(req: func.HttpRequest) -> func.HttpResponse:
    """Emails an invoice that a guardrail held, exactly once (200 with the close's sentence;
    404 for an unknown number, 409 for an invoice that is not held)."""
    from shared.errors import CloseError, InvoiceNotFound

    number = req.route_params.get("number") or ""
    if not 0 < len(number) <= 64 or not number.isprintable():
        return error_response(400, f"invoice number in the path: expected e.g. INV-2026-00042, got {number[:80]!r}")
    try:
        outcome = served(lambda: run_async(get_app().close_service().release(number)), f"invoice {number}")
    except InvoiceNotFound as error:
        return error_response(404, str(error))
    except CloseError as error:
        return error_response(409, f"invoice {number}: {error}")
    return json_response({"number": number, "outcome": str(outcome.kind), "sentence": outcome.sentence})


@bp.route(route="tenants/{tenant_id}/invoices/{period}/ubl", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@door
def invoice_ubl(req: func.HttpRequest) -> func.HttpResponse:
    """The archived UBL e-invoice (EN 16931, Peppol BIS Billing 3.0) of a closed month."""
    from shared.billing import InputError, Period
    from shared.services.einvoicing import archived_ubl

    app = get_app()
    tenant_id = route_tenant_id(req)
    if app.tenants.get(tenant_id) is None:
        return error_response(404, f"tenant {tenant_id} is not onboarded")
    text = req.route_params.get("period") or ""
    try:
        period = Period.parse(text)
    except InputError as error:
        return error_response(400, f"period in the path: {error.problem}")
    service = app.close_service()
    try:
        number, xml = served(lambda: archived_ubl(service.invoices, service.archive, tenant_id, period),
                             f"tenant {tenant_id}")
    except LookupError as error:
        return error_response(404, str(error))
    return func.HttpResponse(xml, status_code=200, mimetype="application/xml",
                             headers={"Content-Disposition": f'attachment; filename="{number}.xml"'})


@bp.route(route="tenants/{tenant_id}/corrections", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@door
def corrections_issue(req: func.HttpRequest) -> func.HttpResponse:
    """Issues the corrections of the client's invoiced months (body {"period": "YYYY-MM"} for one
    month, or empty for every invoiced month of the last 12): 200 with the documents issued."""
    from shared.billing import InputError, Period
    from shared.errors import CloseError, TenantNotOnboarded

    tenant_id = route_tenant_id(req)
    body = json_body(req) if req.get_body() else {}
    try:
        if not isinstance(body, dict) or set(body) - {"period"}:
            raise InputError('expected {} or {"period": "YYYY-MM"}')
        period = Period.parse(body["period"]) if body.get("period") is not None else None
    except InputError as error:
        raise Refused(400, f"request body: {error}") from None
    try:
        outcomes = served(lambda: run_async(get_app().corrections().correct_tenant(tenant_id, period=period)),
                          f"tenant {tenant_id}")
    except TenantNotOnboarded as error:
        raise Refused(404, str(error)) from None
    except CloseError as error:
        raise Refused(400, f"period: {error}") from None
    return json_response({"issued": [outcome.to_json() for outcome in outcomes]})


@bp.route(route="tenants/{tenant_id}/documents", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@door
def documents_list(req: func.HttpRequest) -> func.HttpResponse:
    """Every document of the client: number, kind, period, total, currency, status, refers_to."""
    from shared.errors import TenantNotOnboarded

    tenant_id = route_tenant_id(req)
    try:
        entries = served(lambda: get_app().document_service().listing(tenant_id), f"tenant {tenant_id}")
    except TenantNotOnboarded as error:
        raise Refused(404, str(error)) from None
    return json_response([entry.to_json() for entry in entries])


@bp.route(route="invoices/{number}/void", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@door
def invoice_void(req: func.HttpRequest) -> func.HttpResponse:
    """{"reason": "..."}: a full credit note of the invoice (or supplementary invoice)."""
    return _document_action(req, "void")


@bp.route(route="invoices/{number}/reissue", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@door
def invoice_reissue(req: func.HttpRequest) -> func.HttpResponse:
    """{"reason"?}: the void plus a new invoice of the month from the ledger as now known."""
    return _document_action(req, "reissue")


@bp.route(route="invoices/{number}/resend", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@door
def invoice_resend(req: func.HttpRequest) -> func.HttpResponse:
    """{"to"?}: the same archived PDF emailed again, recorded as a re-send (never a new number)."""
    return _document_action(req, "resend")


def _document_action(req: func.HttpRequest, action: str) -> func.HttpResponse:
    from shared.billing import InputError
    from shared.billing.limits import check_text
    from shared.errors import ProrataError
    from shared.services.documents import UnknownDocument

    number = req.route_params.get("number") or ""
    if not 0 < len(number) <= 64 or not number.isprintable():
        raise Refused(400, f"number in the path: expected e.g. INV-2026-00042, got {number[:80]!r}")
    body = json_body(req) if req.get_body() else {}
    try:
        if not isinstance(body, dict) or set(body) - {"reason", "to"}:
            raise InputError('expected {"reason": "..."} (void, reissue) or {"to": "address"} (resend)')
        to = check_text(body["to"], "to", limit=254) if action == "resend" and body.get("to") is not None else None
        default = "re-issued from the ledger as now known" if action == "reissue" else None
        reason = "" if action == "resend" else check_text(body.get("reason", default), "reason", limit=500)
    except InputError as error:
        raise Refused(400, f"request body: {error}") from None
    service = get_app().document_service()
    try:
        if action == "resend":
            return json_response({"message": served(lambda: run_async(service.resend(number, to)), number)})
        outcomes = served(lambda: run_async(service.void(number, reason, reissue=action == "reissue")), number)
    except UnknownDocument as error:
        raise Refused(404, str(error)) from None
    except ProrataError as error:
        raise Refused(409, str(error)) from None
    return json_response({"issued": [outcome.to_json() for outcome in outcomes]})
