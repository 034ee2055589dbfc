"""The tenant sync queue and the timers that keep Graph subscriptions and delta links alive."""
from __future__ import annotations

import json
import logging

import azure.functions as func

from shared.aio import run_async
from shared.app import get_app
from shared.messages import SYNC_QUEUE, SyncRequest

bp = func.Blueprint()
log = logging.getLogger("prorata.sync")


@bp.queue_trigger(arg_name="msg", queue_name=SYNC_QUEUE, connection="AzureWebJobsStorage")
def tenant_sync(msg: func.QueueMessage) -> None:
    get_app().syncing.run_message(json.loads(msg.get_body().decode("utf-8")))


@bp.timer_trigger(arg_name="timer", schedule="%SUBSCRIPTION_RENEW_SCHEDULE%", run_on_startup=False)
def renew_subscriptions(timer: func.TimerRequest) -> None:
    app = get_app()
    outcome = run_async(app.subscription_manager.renew_all())
    for tenant_id in outcome["recreated"] + outcome["created"]:
        app.enqueue(SYNC_QUEUE, SyncRequest(tenant_id, "subscription recreated").to_json())
    log.info("Subscriptions: %d renewed, %d recreated, %d created, %d still valid, %d failed.",
             len(outcome["renewed"]), len(outcome["recreated"]), len(outcome["created"]), len(outcome["kept"]),
             len(outcome["failed"]))


@bp.timer_trigger(arg_name="timer", schedule="%DAILY_SYNC_SCHEDULE%", run_on_startup=False)
def daily_sync(timer: func.TimerRequest) -> None:
    """Delta links last 7 days: every tenant gets a delta at least daily. Clients awaiting
    consent are tried again: each becomes active once its admin has consented."""
    app = get_app()
    tenants = app.tenants.all(active_only=True)
    for tenant in tenants:
        app.enqueue(SYNC_QUEUE, SyncRequest(tenant.tenant_id, "daily").to_json())
    log.info("Daily sync: queued a delta for %d active tenant(s).", len(tenants))
    for result in run_async(app.onboarding.retry_awaiting_consent()):
        log.info("Daily sync: %s (%s) is %s.", result["name"], result["tenant_id"], str(result["status"]).replace("_", " "))
