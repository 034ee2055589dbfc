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


@bp.route(route="tenants/{tenant_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def tenants_show(req: func.HttpRequest) -> func.HttpResponse:
    """The client as stored: status, billing contacts, the plan with its versions."""
    from shared.services.plans import show_tenant

    try:
        return json_response(show_tenant(get_app().tenants, req.route_params["tenant_id"]))
    except LookupError as error:  # TenantNotOnboarded, VersionNotFound
        return error_response(404, str(error))


@bp.route(route="tenants/{tenant_id}/plan/versions", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def plan_version_add(req: func.HttpRequest) -> func.HttpResponse:
    """Adds one plan version {"effective_from": "YYYY-MM-DD", ...}: 201 with the plan."""
    from shared.billing import InputError
    from shared.billing.limits import load_json
    from shared.services.plans import PlanChangeRefused, add_version

    app = get_app()
    try:
        data = load_json(req.get_body() or b"null", what="the request body")
        changed = add_version(app.tenants, app.invoiced_months, req.route_params["tenant_id"], data)
    except InputError as error:
        return error_response(400, f"request body: {error}")
    except LookupError as error:  # TenantNotOnboarded, VersionNotFound
        return error_response(404, str(error))
    except PlanChangeRefused as error:
        return error_response(409, str(error))
    return json_response(changed.to_json(), 201)


@bp.route(route="tenants/{tenant_id}/plan/versions/{effective_from}", methods=["DELETE"],
          auth_level=func.AuthLevel.FUNCTION)
def plan_version_remove(req: func.HttpRequest) -> func.HttpResponse:
    """Deletes the version taking effect on that date, if it is not yet in force."""
    from shared.billing import InputError
    from shared.services.plans import PlanChangeRefused, remove_version

    app = get_app()
    try:
        changed = remove_version(app.tenants, req.route_params["tenant_id"], req.route_params["effective_from"],
                                 app.now())
    except InputError as error:
        return error_response(400, str(error))
    except LookupError as error:  # TenantNotOnboarded, VersionNotFound
        return error_response(404, str(error))
    except PlanChangeRefused as error:
        return error_response(409, str(error))
    return json_response(changed.to_json())


@bp.route(route="tenants/{tenant_id}/charges", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def charges_add(req: func.HttpRequest) -> func.HttpResponse:
    """A one-off charge or credit {"period", "description", "amount"} on that period's invoice: 201;
    409 once that period's close has begun; 400 for another currency than the plan's."""
    from shared.billing import InputError
    from shared.billing.limits import load_json
    from shared.errors import TenantNotOnboarded
    from shared.services.charges import ChargeRefused, add_charge

    app = get_app()
    try:
        data = load_json(req.get_body() or b"null", what="the request body")
        added = add_charge(tenants=app.tenants, invoices=app.invoices, charges=app.charges, clock=app.now,
                           tenant_id=req.route_params["tenant_id"], data=data)
    except InputError as error:
        return error_response(400, f"request body: {error}")
    except TenantNotOnboarded as error:
        return error_response(404, str(error))
    except ChargeRefused as error:
        return error_response(409, str(error))
    return json_response(added, 201)
