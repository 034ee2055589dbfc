"""The month-end close: the timers that fan out, the `tenant-close` queue function that closes
one client's month, and the invoice preview over HTTP (function key)."""
from __future__ import annotations

import json
import logging

import azure.functions as func

from functions.http_util import door, error_response, json_response, route_tenant_id, served
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
