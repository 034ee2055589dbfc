"""License reconciliation of one client tenant over HTTP (function key):
GET /api/tenants/{tenant_id}/reconciliation answers the findings as JSON (`?format=csv` for the CSV)."""
from __future__ import annotations

import logging

import azure.functions as func

from functions.http_util import door, error_response, json_response, route_tenant_id
from shared.aio import run_async
from shared.app import get_app

bp = func.Blueprint()
log = logging.getLogger("prorata.reconcile")


@bp.route(route="tenants/{tenant_id}/reconciliation", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@door
def tenant_reconciliation(req: func.HttpRequest) -> func.HttpResponse:
    from shared.graph.gateway import GraphError
    from shared.billing.reconciliation import findings_csv
    from shared.errors import TenantNotOnboarded

    tenant_id = route_tenant_id(req)
    wanted = (req.params.get("format") or "json").lower()
    if wanted not in ("json", "csv"):
        return error_response(400, f"query parameter format: expected json or csv, got {wanted[:40]!r}")
    try:
        result = run_async(get_app().reconciler.reconcile_tenant(tenant_id))
    except TenantNotOnboarded as error:
        return error_response(404, str(error))
    except GraphError as error:
        log.warning("Tenant %s: reconciliation failed, Microsoft Graph refused: %s", tenant_id, error)
        return error_response(502, f"Microsoft Graph refused: {error}")
    if wanted == "csv":
        return func.HttpResponse(findings_csv([result]), status_code=200, mimetype="text/csv", charset="utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="reconciliation-{tenant_id}.csv"'})
    return json_response(result.to_json())
