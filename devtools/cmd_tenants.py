"""./dev tenants add|list|remove|sync: the same services as POST/DELETE /api/tenants."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from devtools.paths import from_caller


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./dev tenants", description="Client tenants of the MSP.")
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="onboard a client: plan + billing contacts, baseline sync, subscription")
    add.add_argument("--file", required=True, type=from_caller,
                     help='JSON: {"plan": {...}, "billing_contacts": [...], "address": [...], "locale": "en_US"}')
    sub.add_parser("list", help="list onboarded clients")
    remove = sub.add_parser("remove", help="offboard a client (deletes the subscription, keeps the ledger)")
    remove.add_argument("--tenant", required=True)
    sync = sub.add_parser("sync", help="run a delta sync of a client now")
    sync.add_argument("--tenant", required=True)
    for command in (add, remove, sync, *[p for n, p in sub.choices.items() if n == "list"]):
        command.add_argument("--settings", type=from_caller, help="settings file (default local.settings.json)")
    return parser


async def _run(app, args) -> int:
    from devtools.local_app import graph_failure
    from shared.graph.gateway import GraphError
    from shared.errors import TenantNotOnboarded
    from shared.services.overview import overview_line, tenants_overview

    try:
        if args.action == "add":
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


def main(argv: list[str]) -> int:
    from devtools.local_app import local_app

    args = _parser().parse_args(argv)
    if args.action == "add":  # a bad file is told before anything starts
        args.tenant = read_onboarding(args.file)
        if args.tenant is None:
            return 2
    with local_app(args.settings) as app:
        return asyncio.run(_run(app, args))
