"""./dev tenants add|list|remove|sync: the same services as POST/DELETE /api/tenants."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from devtools.arguments import tenant_id
from devtools.paths import from_caller


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./dev tenants", description="Client tenants of the MSP.")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="onboard a client: plan + billing contacts, baseline sync, subscription")
    add.add_argument("--file", required=True, type=from_caller,
                     help='JSON: {"plan": {...}, "billing_contacts": [...], "address": [...], "locale": "en_US"}')
    sub.add_parser("list", help="list onboarded clients")
    remove = sub.add_parser("remove", help="offboard a client (deletes the subscription, keeps the ledger)")
    remove.add_argument("--tenant", type=tenant_id, required=True)
    sync = sub.add_parser("sync", help="run a delta sync of a client now")
    sync.add_argument("--tenant", type=tenant_id, required=True)
    show = sub.add_parser("show", help="print a client as stored: status, contacts, the plan with its versions")
    show.add_argument("--tenant", type=tenant_id, required=True)
    plan = sub.add_parser("plan", help="change a client's plan from a date: add or delete a plan version")
    plan.add_argument("--tenant", type=tenant_id, required=True)
    change = plan.add_mutually_exclusive_group(required=True)
    change.add_argument("--add-version", type=from_caller, metavar="FILE",
                        help='JSON: {"effective_from": "YYYY-MM-DD", "per_user_price": "49.00", ...}')
    change.add_argument("--remove-version", metavar="YYYY-MM-DD", help="delete the version of that date (not yet in force)")
    charge = sub.add_parser("charge", help="a one-off charge (or, negative, a credit) on a month's invoice")
    charge.add_argument("--tenant", type=tenant_id, required=True)
    charge.add_argument("--period", required=True, help="YYYY-MM: the invoice that carries it (not yet closed)")
    charge.add_argument("--description", required=True, help="the line's text, e.g. 'Server migration project'")
    charge.add_argument("--amount", required=True, help="in the plan's currency, e.g. 1200.00 or -50.00")
    charge.add_argument("--currency", help="optional check: the plan's currency")
    for command in (add, remove, sync, show, plan, charge, *[p for n, p in sub.choices.items() if n == "list"]):
        command.add_argument("--settings", type=from_caller, help="settings file (default local.settings.json)")
    return parser


async def _run(app, args) -> int:
    from devtools.local_app import graph_failure
    from shared.graph.gateway import GraphError
    from shared.errors import TenantNotOnboarded
    from shared.services.overview import overview_line, tenants_overview

    try:
        if args.action == "add":
            from shared.billing import InputError
            from shared.tenants import check_einvoicing
            try:
                check_einvoicing(args.tenant, app.settings)
            except InputError as error:
                print(f"tenants: {args.file}: {error}", file=sys.stderr)
                return 2
            result = await app.onboarding.onboard(args.tenant)
            print(json.dumps(result, indent=1))
            if result.get("consent_url"):
                print(f"tenants: {result['message']}", file=sys.stderr)
        elif args.action == "list":
            for row in tenants_overview(app):
                print(overview_line(row))
        elif args.action == "remove":
            try:
                result = await app.onboarding.offboard(args.tenant)
            except TenantNotOnboarded as error:
                print(f"tenants: {error}", file=sys.stderr)
                return 1
            print(f"Offboarded {result['name']}: {result['subscriptions_deleted']} subscription(s) deleted, ledger kept.")
        else:
            for report in await app.syncing.sync(args.tenant):
                print(report.sentence())
    except (GraphError, OSError) as error:
        return graph_failure("tenants", app, error)
    return 0


def read_onboarding(path: Path):
    """The onboarding file as a Tenant, or None after saying on stderr what is wrong with it."""
    from shared.billing import InputError
    from shared.tenants import parse_onboarding

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        print(f"tenants: {path}: cannot read the onboarding file ({error})", file=sys.stderr)
        return None
    try:
        return parse_onboarding(data, source=str(path))
    except InputError as error:
        print(f"tenants: {error}", file=sys.stderr)
        return None


def _plan(app, args) -> int:
    """./dev tenants show|plan: the same services as GET /api/tenants/{id} and its plan versions."""
    from shared.billing import InputError
    from shared.errors import TenantNotOnboarded
    from shared.services.plans import PlanChangeRefused, VersionNotFound, add_version, remove_version, show_tenant

    try:
        if args.action == "show":
            print(json.dumps(show_tenant(app.tenants, args.tenant), indent=1, ensure_ascii=False))
            return 0
        if args.add_version is not None:
            changed = add_version(app.tenants, app.invoices, args.tenant, args.version)
        else:
            changed = remove_version(app.tenants, args.tenant, args.remove_version, app.now())
    except InputError as error:
        if args.action == "plan" and args.add_version is not None:
            error = error.located(str(args.add_version))
        print(f"tenants: {error}", file=sys.stderr)
        return 2
    except (TenantNotOnboarded, VersionNotFound, PlanChangeRefused) as error:
        print(f"tenants: {error}", file=sys.stderr)
        return 1
    print(changed.sentence)
    return 0


def _charge(app, args) -> int:
    """./dev tenants charge: the same service as POST /api/tenants/{id}/charges."""
    from shared.billing import InputError
    from shared.errors import ProrataError
    from shared.services.charges import add_charge

    data = {"period": args.period, "description": args.description, "amount": args.amount}
    if args.currency:
        data["currency"] = args.currency
    try:
        added = add_charge(tenants=app.tenants, invoices=app.invoices, charges=app.charges, clock=app.now,
                           tenant_id=args.tenant, data=data)
    except InputError as error:
        print(f"tenants: {error}", file=sys.stderr)
        return 2
    except ProrataError as error:
        print(f"tenants: {error}", file=sys.stderr)
        return 1
    print(added["message"])
    return 0


def read_version(path: Path):
    """The plan version file's JSON, or None after saying on stderr what is wrong with it."""
    from shared.billing import InputError
    from shared.billing.limits import load_json

    try:
        return load_json(path.read_bytes(), what="the version file")
    except OSError as error:
        print(f"tenants: {path}: cannot read the file ({error.strerror})", file=sys.stderr)
    except InputError as error:
        print(f"tenants: {error.located(str(path))}", file=sys.stderr)
    return None


def main(argv: list[str]) -> int:
    from devtools.local_app import local_app

    args = _parser().parse_args(argv)
    if args.action == "add":  # a bad file is told before anything starts
        args.tenant = read_onboarding(args.file)
        if args.tenant is None:
            return 2
    if args.action == "plan" and args.add_version is not None:
        args.version = read_version(args.add_version)
        if args.version is None:
            return 2
    if args.action in ("show", "plan"):
        with local_app(args.settings, quiet=True) as app:
            return _plan(app, args)
    if args.action == "charge":
        with local_app(args.settings, quiet=True) as app:
            return _charge(app, args)
    with local_app(args.settings) as app:
        return asyncio.run(_run(app, args))
