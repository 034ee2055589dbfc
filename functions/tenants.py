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
    from shared.billing import InputError
    from shared.tenants import AWAITING_CONSENT, check_einvoicing

    tenant = read_onboarding(json_body(req))
    try:
        check_einvoicing(tenant, get_app().settings)  # an e-invoicing client needs the MSP's legal settings
    except InputError as error:
        raise Refused(400, str(error)) from None
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



@bp.route(route="tenants/{tenant_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@door
def tenants_show(req: func.HttpRequest) -> func.HttpResponse:
    """The client as stored: status, billing contacts, the plan with its versions."""
    from shared.errors import TenantNotOnboarded
    from shared.services.plans import show_tenant

    tenant_id = route_tenant_id(req)
    try:
        return json_response(served(lambda: show_tenant(get_app().tenants, tenant_id), f"tenant {tenant_id}"))
    except TenantNotOnboarded as error:
        raise Refused(404, str(error)) from None


@bp.route(route="tenants/{tenant_id}/plan/versions", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@door
def plan_version_add(req: func.HttpRequest) -> func.HttpResponse:
    """Adds one plan version {"effective_from": "YYYY-MM-DD", ...}: 201 with the plan."""
    from shared.billing import InputError
    from shared.services.plans import PlanChangeRefused, add_version

    app = get_app()
    tenant_id = route_tenant_id(req)
    data = json_body(req)
    try:
        changed = served(lambda: add_version(app.tenants, app.invoices, tenant_id, data), f"tenant {tenant_id}")
    except InputError as error:
        raise Refused(400, f"request body: {error}") from None
    except LookupError as error:  # TenantNotOnboarded
        raise Refused(404, str(error)) from None
    except PlanChangeRefused as error:
        raise Refused(409, str(error)) from None
    return json_response(changed.to_json(), 201)


@bp.route(route="tenants/{tenant_id}/plan/versions/{effective_from}", methods=["DELETE"],
          auth_level=func.AuthLevel.FUNCTION)
@door
def plan_version_remove(req: func.HttpRequest) -> func.HttpResponse:
    """Deletes the version taking effect on that date, if it is not yet in force."""
    from shared.billing import InputError
    from shared.services.plans import PlanChangeRefused, remove_version

    app = get_app()
    tenant_id = route_tenant_id(req)
    day = req.route_params.get("effective_from") or ""
    try:
        changed = served(lambda: remove_version(app.tenants, tenant_id, day, app.now()), f"tenant {tenant_id}")
    except InputError as error:
        raise Refused(400, str(error)) from None
    except LookupError as error:  # TenantNotOnboarded, VersionNotFound
        raise Refused(404, str(error)) from None
    except PlanChangeRefused as error:
        raise Refused(409, str(error)) from None
    return json_response(changed.to_json())


@bp.route(route="tenants/{tenant_id}/charges", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@door
def charges_add(req: func.HttpRequest) -> func.HttpResponse:
    """A one-off charge or credit {"period", "description", "amount"} on that period's invoice: 201;
    409 once that period's close has begun; 400 for another currency than the plan's."""
    from shared.billing import InputError
    from shared.errors import TenantNotOnboarded
    from shared.services.charges import ChargeRefused, add_charge

    app = get_app()
    tenant_id = route_tenant_id(req)
    data = json_body(req)
    try:
        added = served(lambda: add_charge(tenants=app.tenants, invoices=app.invoices, charges=app.charges,
                                          clock=app.now, tenant_id=tenant_id, data=data), f"tenant {tenant_id}")
    except InputError as error:
        raise Refused(400, f"request body: {error}") from None
    except TenantNotOnboarded as error:
        raise Refused(404, str(error)) from None
    except ChargeRefused as error:
        raise Refused(409, str(error)) from None
    return json_response(added, 201)
