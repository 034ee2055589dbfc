"""Benchmark: seconds to render an invoice PDF (jinja2 + xhtml2pdf) of 20 and of 200 lines.

Prints the median of a few runs of each against the targets on a 2-core machine:
20 lines at most 0.1 s, 200 lines at most 0.5 s. The one-off import of xhtml2pdf (about half a
second, paid once per worker process) is measured and printed separately.
Floor, timed alternately in the same run: xhtml2pdf laying out the same HTML once with the page
count written in as a number (what one layout pass costs); the ratio (min / median) shows what
"Page N of M" and the HTML cost on top of it.
Wall-clock time is what the targets are about; the process's CPU time is printed too, because
other work on the machine inflates the former. Run: .venv/bin/python bench/pdf.py [--runs 5] [--out /tmp]   (--out also writes the PDFs)
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.billing import Observation, Period, compute_invoice, parse_plan  # noqa: E402
from shared.invoicing import Brand, InvoiceDocument, render_pdf  # noqa: E402

TARGETS = {20: 0.1, 200: 0.5}
FIRST = ["Ann", "Bob", "Chloé", "Dmitri", "Erin", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kate", "Liam"]
LAST = ["Lee", "O'Brien", "Nakamura", "Schmidt", "García", "Okafor", "Smith", "Novak", "Rossi", "Khan"]
SKUS = ["SPB", "E3", "EMS"]


def sample_document(lines: int, *, locale: str = "en_US", currency: str = "USD") -> InvoiceDocument:
    """An invoice of exactly `lines` lines: users with the per-user fee and zero to two SKUs,
    some of them joining or leaving during the month."""
    plan = parse_plan({"tenant_id": "t-bench", "name": "Contoso Pharmaceuticals Ltd", "currency": currency,
                       "timezone": "America/New_York", "per_user_price": "45.00",
                       "sku_prices": {"SPB": "22.00", "E3": "36.00", "EMS": "10.60"}, "tax_rate": "0.0825"})
    period = Period(2026, 10)
    start = datetime(2026, 9, 1, tzinfo=timezone.utc)
    observations, made, u = [], 0, 0
    while made < lines:
        skus = tuple(SKUS[: min(u % 3, lines - made - 1)])
        name = f"{FIRST[u % len(FIRST)]} {LAST[(u // len(FIRST)) % len(LAST)]}"
        upn = f"{name.split()[0].lower()}.{u}@contoso.com"
        at = start if u % 4 else datetime(2026, 10, 1 + u % 27, 15, tzinfo=timezone.utc)
        observations.append(Observation(at=at, user_id=f"u-{u}", user_principal_name=upn, display_name=name,
                                        user_type="Member", account_enabled=True, skus=skus, deleted=False))
        made += 1 + len(skus)
        u += 1
    invoice = compute_invoice(plan, observations, period)
    assert len(invoice.lines) == lines, len(invoice.lines)
    return InvoiceDocument(invoice=invoice, number="INV-2026-00042", issued_on=date(2026, 11, 1),
                           due_on=date(2026, 11, 1) + timedelta(days=30), client_name=plan.name,
                           client_address=("100 Main Street", "Springfield, IL 62701", "USA"), locale=locale)


BRAND = Brand(name="Northwind IT Services", address=("12 Harbour Road", "Bristol BS1 4QA", "United Kingdom"))


def time_renders(document, brand, runs: int) -> tuple[bytes, list[float], list[float], list[float]]:
    """Renders the document `runs` times, each followed by its floor: the PDF, and the wall-clock
    and CPU seconds of each render, and the floor's wall-clock seconds."""
    from xhtml2pdf import pisa

    from shared.invoicing.render import _resource_policy, render_html

    times, cpu, floors = [], [], []
    for _ in range(runs):
        began, began_cpu = time.perf_counter(), time.process_time()
        pdf = render_pdf(document, brand)
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
        pages = pdf.count(b"/Type /Page\n") or pdf.count(b"/Type /Page")
        html = render_html(document, brand).replace("<pdf:pagecount />", str(pages))
        began = time.perf_counter()
        pisa.CreatePDF(html, dest=io.BytesIO(), encoding="utf-8", resource_policy=_resource_policy(brand.logo_url))
        floors.append(time.perf_counter() - began)
    return pdf, times, cpu, floors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", help="directory to write the PDFs into")
    args = parser.parse_args()

    began = time.perf_counter()
    import xhtml2pdf.pisa  # noqa: F401  (the one-off import, outside the timed renders)
    print(f"import xhtml2pdf: {time.perf_counter() - began:.2f} s (once per process)")
    render_pdf(sample_document(5), BRAND)  # warm-up: templates, fonts, Babel data

    ok = True
    for lines, target in TARGETS.items():
        pdf, times, cpu, floors = time_renders(sample_document(lines), BRAND, args.runs)
        median = statistics.median(times)
        ratios = [t / f for t, f in zip(times, floors)]
        ok &= median <= target
        print(f"{lines:>4} lines: {median:.3f} s median of {args.runs} (min {min(times):.3f}, "
              f"max {max(times):.3f}; CPU {statistics.median(cpu):.3f}); target {target} s: "
              f"{'OK' if median <= target else 'MISSED'}; {len(pdf) // 1024} KiB; over one bare layout pass: "
              f"min {min(ratios):.2f}x median {statistics.median(ratios):.2f}x")
        if args.out:
            Path(args.out, f"invoice-{lines}.pdf").write_bytes(pdf)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
