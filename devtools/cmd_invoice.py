"""./dev invoice preview|show|pdf|release: a client's invoice for a month, computed as the close
computes it (month to date for the current month), the state of its close (steps with their
times, number, PDF, email), its PDF; or a held invoice released (emailed exactly once)."""
from __future__ import annotations

import argparse
import json
import sys

from devtools.paths import from_caller


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        print(f"invoice: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="./dev invoice", description="A client's invoice for a month.")
    sub = parser.add_subparsers(dest="action", required=True, parser_class=_Parser)
    preview = sub.add_parser("preview", help="print the invoice JSON (month to date for the current month)")
    show = sub.add_parser("show", help="print where the close of the month stands: steps, times, number, email")
    pdf = sub.add_parser("pdf", help="write the archived PDF of a closed month to a file")
    for command in (preview, show, pdf):
        command.add_argument("--tenant", required=True, help="client tenant id")
        command.add_argument("--period", help="YYYY-MM (preview: default the current month in the client's zone)")
        command.add_argument("--settings", type=from_caller, help="settings file (default local.settings.json)")
    pdf.add_argument("--out", type=from_caller, required=True, help="file to write")
    release = sub.add_parser("release", help="email an invoice that a guardrail held (exactly once)")
    release.add_argument("--number", required=True, help="the invoice number, e.g. INV-2026-00042")
    release.add_argument("--settings", type=from_caller, help="settings file (default local.settings.json)")
    return parser


def _release(app, number: str) -> int:
    import asyncio

    from shared.errors import CloseError, InvoiceNotFound
    from shared.graph.gateway import GraphError

    try:
        outcome = asyncio.run(app.close_service().release(number))
    except InvoiceNotFound as error:
        print(f"invoice: {error}", file=sys.stderr)
        return 1
    except (CloseError, GraphError) as error:
        print(f"invoice: {number}: {error}", file=sys.stderr)
        return 1
    print(outcome.sentence)
    return 0


_SHOWN = ("step", "status", "number", "client_name", "currency", "subtotal", "tax", "total", "users", "lines",
          "issued_on", "due_on", "queued_at", "computed_at", "numbered_at", "rendered_at", "stored_at", "drafted_at",
          "emailed_at", "emailed_to", "blob", "pdf_bytes", "render_seconds", "draft_id", "run_id", "attempts",
          "last_error", "failed_step", "failed_at", "held_at", "hold_reason", "released_at")


def _run(app, args) -> int:
    from shared.billing import InputError, Period
    from shared.errors import CloseError

    if args.action == "release":
        return _release(app, args.number)
    service = app.close_service()
    tenant = app.tenants.get(args.tenant)
    if tenant is None:
        print(f"invoice: tenant {args.tenant} is not onboarded", file=sys.stderr)
        return 1
    try:
        if args.period:
            period = Period.parse(args.period)
        elif args.action == "preview":
            period = Period.current(tenant.plan.timezone, app.now())
        else:
            print("invoice: --period YYYY-MM is required", file=sys.stderr)
            return 2
    except InputError as error:
        print(f"invoice: --period: {error.problem}", file=sys.stderr)
        return 2
    if args.action == "preview":
        try:
            print(json.dumps(service.preview(args.tenant, period), ensure_ascii=False))
        except CloseError as error:
            print(f"invoice: {error}", file=sys.stderr)
            return 2
        return 0
    row = service.invoices.get(args.tenant, period)
    if row is None:
        print(f"invoice: {period} of {tenant.name} has not been closed (no invoice row)", file=sys.stderr)
        return 1
    if args.action == "show":
        print(json.dumps({name: row.get(name) for name in _SHOWN if row.get(name) is not None}, indent=1,
                         ensure_ascii=False))
        return 0
    if not row.get("blob"):
        print(f"invoice: {period} of {tenant.name} has no stored PDF (step {row.get('step')})", file=sys.stderr)
        return 1
    args.out.write_bytes(service.archive.get(row["blob"]))
    print(f"Wrote {row['number']} ({row.get('pdf_bytes')} bytes) to {args.out}.")
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from devtools.local_app import local_app

    try:
        with local_app(args.settings, quiet=True) as app:
            return _run(app, args)
    except OSError as error:
        print(f"invoice: {error}", file=sys.stderr)
        return 1
