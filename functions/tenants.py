"""Onboarding and offboarding client tenants over HTTP (function key)."""
from __future__ import annotations

import logging

import azure.functions as func

from functions.http_util import Refused, door, json_body, json_response, read_onboarding, route_tenant_id, served
from shared.aio import run_async
from shared.app import get_app

bp = func.Blueprint()
log = logging.getLogger("prorata.tenants")


@bp.route(route="tenants", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@door
def tenants_add(req: func.HttpRequest) -> func.HttpResponse:
    from shared.tenants import AWAITING_CONSENT

    tenant = read_onboarding(json_body(req))
    result = served(lambda: run_async(get_app().onboarding.onboard(tenant)), f"tenant {tenant.tenant_id}")
    # 202: stored, but the client's admin must consent first (the answer carries the URL).
    return json_response(result, 202 if result["status"] == AWAITING_CONSENT else 201)


@bp.route(route="tenants", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def tenants_list(req: func.HttpRequest) -> func.HttpResponse:
    from shared.services.overview import tenants_overview

    return json_response(tenants_overview(get_app()))


@bp.route(route="tenants/{tenant_id}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@door
def tenants_remove(req: func.HttpRequest) -> func.HttpResponse:
    from shared.errors import TenantNotOnboarded

    tenant_id = route_tenant_id(req)
    try:
        return json_response(served(lambda: run_async(get_app().onboarding.offboard(tenant_id)), f"tenant {tenant_id}"))
    except TenantNotOnboarded as error:
        raise Refused(404, str(error)) from None
