"""./dev invoice preview|show|pdf|ubl|facturx|release: a client's invoice for a month, computed as the
close computes it (month to date for the current month), the state of its close (steps with their
times, number, PDF, email), its archived PDF or UBL e-invoice, that PDF as Factur-X; or a held
invoice released (emailed exactly once)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from devtools.arguments import tenant_id
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
    ubl = sub.add_parser("ubl", help="the archived UBL e-invoice (EN 16931) of a closed month: to --out, else stdout")
    facturx = sub.add_parser("facturx", help="the archived PDF of a closed month as a Factur-X PDF (EN 16931 XML inside)")
    for command in (preview, show, pdf, ubl, facturx):
        command.add_argument("--tenant", type=tenant_id, required=True, help="client tenant id")
        command.add_argument("--period", help="YYYY-MM (preview: default the current month in the client's zone)")
        command.add_argument("--settings", type=from_caller, help="settings file (default local.settings.json)")
    pdf.add_argument("--out", type=from_caller, required=True, help="file to write")
    ubl.add_argument("--out", type=from_caller, help="file to write (default: standard output)")
    facturx.add_argument("--out", type=from_caller, required=True, help="file to write")
    release = sub.add_parser("release", help="email an invoice that a guardrail held (exactly once)")
    release.add_argument("--number", required=True, help="the invoice number, e.g. INV-2026-00042")
    release.add_argument("--settings", type=from_caller, help="settings file (default local.settings.json)")
    correct = sub.add_parser("correct", help="issue the credit notes and supplementary invoices of a client's "
                             "invoiced months (the last 12, or --period) whose recomputation differs")
    correct.add_argument("--tenant", type=tenant_id, required=True, help="client tenant id")
    correct.add_argument("--period", help="YYYY-MM: only this invoiced month")
    correct.add_argument("--settings", type=from_caller, help="settings file (default local.settings.json)")
    listing = sub.add_parser("list", help="every document of a client: invoices, supplementary invoices, credit notes")
    listing.add_argument("--tenant", type=tenant_id, required=True, help="client tenant id")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    void = sub.add_parser("void", help="void an invoice or supplementary invoice with a full credit note")
    void.add_argument("--reason", required=True, help="why, in plain words (printed on the credit note's record)")
    reissue = sub.add_parser("reissue", help="void an invoice and issue a new one from the ledger as now known")
    reissue.add_argument("--reason", default="re-issued from the ledger as now known", help="why")
    resend = sub.add_parser("resend", help="email the same PDF again (recorded as a re-send, never a new number)")
    resend.add_argument("--to", help="another address (default: the client's billing contacts)")
    explain = sub.add_parser("explain", help="for each line, the runs of days it charged and the ledger records "
                             "that began and ended each run")
    explain.add_argument("--user", help="only this user's lines (id, UPN or display name)")
    for command in (void, reissue, resend, explain):
        command.add_argument("--number", required=True, help="the document's number, e.g. INV-2026-00042")
    for command in (listing, void, reissue, resend, explain):
        command.add_argument("--settings", type=from_caller, help="settings file (default local.settings.json)")
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


def _documents(app, args) -> int:
    """./dev invoice list|void|reissue|resend: the same services as their HTTP routes."""
    import asyncio

    from devtools.local_app import graph_failure
    from shared.errors import ProrataError
    from shared.graph.gateway import GraphError
    from shared.services.documents import UnknownDocument

    service = app.document_service()
    try:
        if args.action == "list":
            entries = service.listing(args.tenant)
            if args.json:
                print(json.dumps([e.to_json() for e in entries], indent=1, ensure_ascii=False))
            else:
                for e in entries:
                    print(f"{e.number:<16} {e.kind:<22} {e.period}  {e.currency} {e.total:>12}  {e.status:<8}"
                          + (f"  refers to {e.refers_to}" if e.refers_to else ""))
            return 0
        if args.action == "explain":
            print("\n".join(service.explain(args.number, args.user)))
            return 0
        if args.action == "resend":
            print(asyncio.run(service.resend(args.number, args.to)))
            return 0
        outcomes = asyncio.run(service.void(args.number, args.reason, reissue=args.action == "reissue"))
    except (GraphError, OSError) as error:
        return graph_failure("invoice", app, error)
    except UnknownDocument as error:  # bad input: a number that names no document
        print(f"invoice: {error}", file=sys.stderr)
        return 2
    except ProrataError as error:
        print(f"invoice: {error}", file=sys.stderr)
        return 1
    for outcome in outcomes:
        print(outcome.sentence)
    return 0


def _correct(app, args) -> int:
    """./dev invoice correct: the same service as POST /api/tenants/{id}/corrections."""
    import asyncio

    from devtools.local_app import graph_failure
    from shared.billing import InputError, Period
    from shared.graph.gateway import GraphError
    from shared.errors import CloseError

    try:
        period = Period.parse(args.period) if args.period else None
    except InputError as error:
        print(f"invoice: --period: {error.problem}", file=sys.stderr)
        return 2
    try:
        outcomes = asyncio.run(app.corrections().correct_tenant(args.tenant, period=period))
    except LookupError as error:
        print(f"invoice: {error}", file=sys.stderr)
        return 1
    except CloseError as error:
        print(f"invoice: {error}", file=sys.stderr)
        return 2
    except (GraphError, OSError) as error:
        return graph_failure("invoice", app, error)
    for outcome in outcomes:
        print(outcome.sentence)
    if not outcomes:
        print("Nothing to correct: every invoiced month in reach equals the ledger as now known.")
    return 0


_SHOWN = ("step", "status", "number", "client_name", "currency", "subtotal", "tax", "total", "users", "lines",
          "issued_on", "due_on", "queued_at", "computed_at", "numbered_at", "rendered_at", "stored_at", "drafted_at",
          "emailed_at", "emailed_to", "blob", "ubl_blob", "ubl_skipped", "pdf_bytes", "render_seconds", "draft_id",
          "run_id", "attempts", "last_error", "failed_step", "failed_at", "held_at", "hold_reason", "released_at")


def _run(app, args) -> int:
    from shared.billing import InputError, Period
    from shared.errors import CloseError

    if args.action == "release":
        return _release(app, args.number)
    if args.action == "correct":
        return _correct(app, args)
    if args.action in ("list", "void", "reissue", "resend", "explain"):
        return _documents(app, args)
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
    if args.action == "ubl":
        return _ubl(service, tenant, period, args.out)
    if args.action == "facturx":
        return _facturx(service, tenant, period, args.out)
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


def _ubl(service, tenant, period, out: Path | None) -> int:
    from shared.services.einvoicing import archived_ubl

    try:
        number, xml = archived_ubl(service.invoices, service.archive, tenant.tenant_id, period)
    except LookupError as error:
        print(f"invoice: {error}", file=sys.stderr)
        return 1
    if out is None:
        sys.stdout.buffer.write(xml)
        sys.stdout.flush()
    else:
        out.write_bytes(xml)
        print(f"Wrote the e-invoice of {number} ({len(xml)} bytes, UBL 2.1 / EN 16931) to {out}.")
    return 0


def _facturx(service, tenant, period, out: Path) -> int:
    from shared.services.einvoicing import EInvoiceRefused
    from shared.storage.invoices import invoice_document

    row = service.invoices.get(tenant.tenant_id, period)
    if row is None or not row.get("blob"):
        print(f"invoice: {period} of {tenant.name} has no stored PDF", file=sys.stderr)
        return 1
    try:
        data = service.einvoicing.facturx_pdf(service.archive.get(row["blob"]), invoice_document(row))
    except EInvoiceRefused as error:
        print(f"invoice: {error}", file=sys.stderr)
        return 1
    out.write_bytes(data)
    print(f"Wrote {row['number']} as Factur-X (EN 16931, {len(data)} bytes) to {out}.")
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
