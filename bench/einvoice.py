"""Benchmark: building and validating UBL e-invoices (UBL 2.1 XSD + EN 16931 schematron, as the
close does for every issued invoice), for invoices of growing size.

Prints the one-off load of the schemas and the compiled schematron per process, then for each
size the lines, the XML size, and the seconds to build and to validate (median of --repeat).
Measured on the shared 2-core machine (busy): load 6.8 s; 134 lines: build 0.03 s, validate 0.7 s;
1334 lines: build 0.6 s, validate 4.6 s (the schematron's sums grow faster than the lines).
Run: .venv/bin/python bench/einvoice.py [--users 10 100 1000 3000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.invoicing.einvoice.ubl import to_ubl  # noqa: E402
from shared.invoicing.einvoice.validate import validate  # noqa: E402
from shared.invoicing.parties import Payment  # noqa: E402
from tests.unit.documents import SELLER, crowd, document  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10, 100, 1000, 3000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    payment = Payment(iban="BE71096123456769", bic="GKCCBEBB")
    began = time.perf_counter()
    validate(to_ubl(document(crowd(1)), SELLER, payment))
    print(f"load of the XSD and the compiled EN 16931 schematron (once per process): {time.perf_counter() - began:.2f} s")
    for users in args.users:
        doc = document(crowd(users))
        builds, checks = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            xml = to_ubl(doc, SELLER, payment)
            built = time.perf_counter()
            validate(xml, doc.number)
            builds.append(built - start)
            checks.append(time.perf_counter() - built)
        print(f"{users:>5} users, {len(doc.invoice.lines):>5} lines, {len(xml) / 1024:>7.0f} KiB: "
              f"build {statistics.median(builds):.3f} s, validate {statistics.median(checks):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
