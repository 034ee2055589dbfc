"""./dev quote: the billing core from files, with no Azure at all."""
from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path

from devtools.paths import from_caller
from shared.billing import InputError, Period, compute_invoice, parse_observations_jsonl, parse_plan
from shared.billing.limits import load_json


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line on stderr, exit 2, as for bad input
        print(f"quote: {message}", file=sys.stderr)
        raise SystemExit(2)


def read_plan(path: Path):
    try:
        text = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read the file ({error.strerror})", source=str(path)) from None
    try:
        data = load_json(text, what="the plan")
    except InputError as error:
        raise error.located(str(path)) from None
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
    # A short-lived process holding a few hundred thousand objects that form no cycles: the
    # cyclic collector would only walk them over and over (a quarter of the time), so it stays off.
    gc.disable()
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
    del observations
    write_json(invoice.to_json(), sys.stdout)
    return 0


def write_json(document: dict, out, chunk: int = 2000) -> None:
    """The invoice JSON as json.dump(ensure_ascii=False) writes it, plus a newline: encoded by the
    C encoder (json.dump uses the pure-Python one) a chunk of lines at a time, so the text of a
    50,000-user invoice is never held whole."""
    lines = document["lines"]
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    head, _, tail = dumps({**document, "lines": []}).partition('"lines": []')
    out.write(head + '"lines": [')
    for start in range(0, len(lines), chunk):
        out.write((", " if start else "") + dumps(lines[start:start + chunk])[1:-1])
    out.write("]" + tail + "\n")
