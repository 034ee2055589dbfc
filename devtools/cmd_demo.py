"""./dev demo: the whole product on local stand-ins, with no Azure account."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devtools.paths import from_caller
from shared.billing import InputError, Period

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./dev demo", description=(
        "Starts Azurite, the Graph simulator and the development Functions host; onboards three sample "
        "clients; plays a past month of joiners, leavers and license changes through Graph notifications; "
        "closes the month through the month-end timer; and says where the PDFs, the CSV and the emails are."))
    parser.add_argument("--period", help="the month to play and close, YYYY-MM (default: last month)")
    parser.add_argument("--out", type=from_caller, default=ROOT / "out" / "demo",
                        help="where the results go: a new or empty folder, or one an earlier demo made (emptied)")
    parser.add_argument("--verbose", action="store_true", help="show the host's and the functions' logs")
    parser.add_argument("--guardrails", action="store_true",
                        help="then play the next month, in which one client's staff triples: its invoice is held, "
                             "the others emailed; then release it (emailed exactly once)")
    args = parser.parse_args(argv)
    try:
        period = Period.parse(args.period) if args.period else None
    except InputError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2
    from devtools.demo.runner import OutNotEmpty, run

    try:
        return run(args.out, period, args.verbose, guardrails=args.guardrails)
    except OutNotEmpty as error:
        print(f"demo: --out: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("demo: interrupted; local stand-ins stopped.", file=sys.stderr)
        return 130
    except Exception as error:  # the demo ends with one plain sentence, not a traceback
        print(f"demo: stopped: {error}", file=sys.stderr)
        print("demo: run ./dev demo --verbose to see the functions' logs.", file=sys.stderr)
        return 1
