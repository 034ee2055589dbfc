"""./dev reconcile --tenant T [--csv FILE]: the license reconciliation of a client tenant (or of
every active one with --all), in plain words; the same service as
GET /api/tenants/{id}/reconciliation. Exit 0 whatever the findings; 1 when a tenant could not be
reconciled (not onboarded, Graph unreachable or refusing)."""
from __future__ import annotations

import argparse
import asyncio
import sys

from devtools.arguments import tenant_id
from devtools.paths import from_caller


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./dev reconcile",
        description="Compare a client's licenses in Microsoft Graph (subscribedSkus) with the ledger: licenses "
                    "in use that the plan does not price, idle licenses, users holding licenses but excluded from "
                    "the per-user fee, and drift between Graph and the ledger.")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant", type=tenant_id, help="the client's tenant id")
    which.add_argument("--all", action="store_true", help="every active client tenant")
    parser.add_argument("--csv", type=from_caller, help="also write the findings to this CSV file (a row per finding)")
    parser.add_argument("--settings", type=from_caller, help="settings file (default local.settings.json)")
    return parser


def _print(result) -> None:
    print(result.summary_line())
    for finding in result.findings:
        print(f"  - {finding.detail}")


async def _run(app, args) -> int:
    from devtools.local_app import graph_failure
    from shared.graph.gateway import GraphError
    from shared.billing.reconciliation import findings_csv
    from shared.errors import TenantNotOnboarded

    try:
        reconciler = app.reconciler
        results = await reconciler.reconcile_all() if args.all else [await reconciler.reconcile_tenant(args.tenant)]
    except TenantNotOnboarded as error:
        print(f"reconcile: {error}", file=sys.stderr)
        return 1
    except (GraphError, OSError) as error:
        return graph_failure("reconcile", app, error)
    if not results:
        print("No active client tenant to reconcile.")
    for result in results:
        _print(result)
    if args.csv:
        try:
            args.csv.write_bytes(findings_csv(results))
        except OSError as error:
            print(f"reconcile: cannot write {args.csv} ({error})", file=sys.stderr)
            return 1
        count = sum(len(r.findings) for r in results)
        print(f"Wrote {count} finding(s) to {args.csv}.")
    return 1 if any(r.error for r in results) else 0


def main(argv: list[str]) -> int:
    from devtools.local_app import local_app

    args = _parser().parse_args(argv)
    with local_app(args.settings) as app:
        return asyncio.run(_run(app, args))
