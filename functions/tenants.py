"""Onboarding and offboarding client tenants over HTTP (function key)."""
from __future__ import annotations

import json
import logging

import azure.functions as func

from functions.http_util import error_response, json_response
from shared.aio import run_async
from shared.app import get_app

bp = func.Blueprint()
log = logging.getLogger("prorata.tenants")


@bp.route(route="tenants", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def tenants_add(req: func.HttpRequest) -> func.HttpResponse:
    from shared.billing import InputError
    from shared.tenants import parse_onboarding

    try:
        tenant = parse_onboarding(json.loads(req.get_body() or b"null"), source="request body")
    except json.JSONDecodeError as error:
        return error_response(400, f"request body: not valid JSON ({error.msg})")
    except InputError as error:
        return error_response(400, str(error))
    return json_response(run_async(get_app().onboarding.onboard(tenant)), 201)


@bp.route(route="tenants", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def tenants_list(req: func.HttpRequest) -> func.HttpResponse:
    return json_response([tenant.summary() for tenant in get_app().tenants.all()])


@bp.route(route="tenants/{tenant_id}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
def tenants_remove(req: func.HttpRequest) -> func.HttpResponse:
    from shared.errors import TenantNotOnboarded

    try:
        return json_response(run_async(get_app().onboarding.offboard(req.route_params["tenant_id"])))
    except TenantNotOnboarded as error:
        return error_response(404, str(error))
