"""./dev ledger import|export: backfill a tenant's history, and show what a month is billed from."""
from __future__ import annotations

import argparse
import sys

from devtools.arguments import tenant_id
from devtools.paths import from_caller
from shared.billing import InputError, Period


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./dev ledger", description="The lifecycle ledger of a client tenant.")
    sub = parser.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", help="backfill history from an observations JSONL file (the quote format)")
    imp.add_argument("--tenant", type=tenant_id, required=True, help="client tenant id")
    imp.add_argument("--observations", required=True, type=from_caller)
    exp = sub.add_parser("export", help="write what a month is billed from, as JSONL in the quote format")
    exp.add_argument("--tenant", type=tenant_id, required=True, help="client tenant id")
    exp.add_argument("--period", required=True, help="YYYY-MM")
    exp.add_argument("--zone", help="time zone of the month (default: the tenant's plan)")
    exp.add_argument("--out", type=from_caller, help="file to write (default: stdout)")
    for command in (imp, exp):
        command.add_argument("--settings", type=from_caller, help="settings file (default local.settings.json)")
    return parser


def main(argv: list[str]) -> int:
    from devtools.cmd_quote import read_observations
    from devtools.local_app import local_app
    from shared.billing.observations import iter_jsonl

    args = _parser().parse_args(argv)
    try:
        period = Period.parse(args.period) if args.action == "export" else None
        observations = read_observations(args.observations) if args.action == "import" else None
    except InputError as error:
        print(f"ledger: {error}", file=sys.stderr)
        return 2
    with local_app(args.settings) as app:
        if args.action == "import":
            written = app.ledger.append(args.tenant, observations, observed_at=app.now(), source="import")
            print(f"Imported {args.observations}: {len(observations)} observation(s), {written} new record(s) "
                  f"for tenant {args.tenant} ({len(observations) - written} already known or unchanged).")
            return 0
        zone = args.zone
        if zone is None:
            tenant = app.tenants.get(args.tenant)
            if tenant is None:
                print(f"ledger: tenant {args.tenant} is not onboarded; give --zone to export its ledger anyway",
                      file=sys.stderr)
                return 2
            zone = tenant.plan.timezone
        month = app.ledger.read_month(args.tenant, period, zone)
        out = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
        try:
            for line in iter_jsonl(month.observations):
                out.write(line + "\n")
        finally:
            if args.out:
                out.close()
        if args.out:
            print(f"Wrote {len(month.opening)} opening state(s) and {len(month.records)} record(s) of {period} "
                  f"to {args.out}.", file=sys.stderr)
        return 0
