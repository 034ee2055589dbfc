"""./dev quote: the billing core from files, with no Azure at all."""
from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path

from devtools.paths import from_caller
from shared.billing import InputError, Period, compute_invoice, parse_observations_jsonl, parse_plan


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line on stderr, exit 2, as for bad input
        print(f"quote: {message}", file=sys.stderr)
        raise SystemExit(2)


def read_plan(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read the file ({error.strerror})", source=str(path)) from None
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON ({error.msg} at column {error.colno})",
                         source=str(path), line=error.lineno) from None
    return parse_plan(data, source=str(path))


def read_observations(path: Path):
    try:
        with path.open(encoding="utf-8") as handle:
            return parse_observations_jsonl(handle, source=str(path))
    except OSError as error:
        raise InputError(f"cannot read the file ({error.strerror})", source=str(path)) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=str(path)) from None


def main(argv: list[str]) -> int:
    parser = _Parser(prog="./dev quote", description="Prints the invoice JSON for one client and month, "
                     "computed by the same core as the month-end close.")
    parser.add_argument("--plan", required=True, type=from_caller, help="plan JSON file")
    parser.add_argument("--observations", required=True, type=from_caller, help="observations JSONL file")
    parser.add_argument("--period", required=True, help="billing month, YYYY-MM")
    args = parser.parse_args(argv)
    try:
        period = Period.parse(args.period)
        plan = read_plan(args.plan)
        observations = read_observations(args.observations)
    except InputError as error:
        if error.source is None and error.field == "period":
            error = error.located("--period")
        print(f"quote: {error}", file=sys.stderr)
        return 2
    invoice = compute_invoice(plan, observations, period)
    json.dump(invoice.to_json(), sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0
