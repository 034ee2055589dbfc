"""./dev close: the month-end close by hand, with the same steps and exactly-once guarantees as
the `tenant-close` queue function (a close that stopped half-way resumes where it stopped; a
closed month is not invoiced or emailed again). Prints one sentence per client and the run's
summary; `--report RUN_ID` prints a run's summary (or its progress) again."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from devtools.arguments import tenant_id
from devtools.paths import from_caller


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        print(f"close: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="./dev close", description=(
        "Close a month by hand: compute, number, render, archive and email each client's invoice, exactly "
        "once. Without --tenant: the clients the month-end timer closes for the month (onboarded before it "
        "ended, not offboarded before it began). A client whose month has not ended yet in its own time zone "
        "is skipped."))
    parser.add_argument("--period", help="the month to close, YYYY-MM")
    parser.add_argument("--tenant", type=tenant_id, action="append", default=[], help="a client tenant id (repeatable)")
    parser.add_argument("--report", metavar="RUN_ID", help="print the summary (or progress) of a run and exit")
    parser.add_argument("--runs", action="store_true", help="with --period: list the period's runs and exit")
    parser.add_argument("--concurrency", type=int, default=2, help="clients closed at once (default 2)")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")
    parser.add_argument("--backdated", action="store_true",
                        help="with --tenant: also bill a month that ended before the client was onboarded "
                             "(a back-dated start, e.g. after ./dev ledger import)")
    parser.add_argument("--settings", type=from_caller, help="settings file (default local.settings.json)")
    return parser


def _print_summary(summary: dict, as_json: bool) -> None:
    from shared.services.close import summary_text

    if as_json:
        print(json.dumps(summary, indent=1, ensure_ascii=False))
    elif "emailed" in summary:
        print(summary_text(summary))
    else:
        print(f"Run {summary['run_id']} ({summary.get('trigger')}) of {summary.get('period')}, started "
              f"{summary.get('started')}: {summary['finished']} of {summary['tenants']} client(s) finished; "
              f"still going: {', '.join(summary['pending']) or 'none'}.")


async def _close(app, args) -> int:
    from shared.billing import InputError, Period
    from shared.services.close import FAILED_OUTCOME

    service = app.close_service()
    if args.report:
        report = service.run_report(args.report)
        if report is None:
            print(f"close: there is no run {args.report}", file=sys.stderr)
            return 1
        _print_summary(report, args.json)
        return 0
    try:
        period = Period.parse(args.period)
    except InputError as error:
        print(f"close: --period: {error.problem}", file=sys.stderr)
        return 2
    if args.runs:
        for header in service.runs.runs_of_period(period):
            queued = int(header.get("tenants_queued", 0))
            state = "finished" if header.get("finished_at") else \
                f"{queued - len(service.runs.unfinished(header['PartitionKey']))}/{queued} done"
            print(f"{header['PartitionKey']}  {header.get('trigger'):<8}  started {header.get('started')}  {state}")
        return 0
    run_id, outcomes, skipped = await service.close_by_hand(period, args.tenant or None,
                                                            concurrency=max(1, args.concurrency),
                                                            backdated=args.backdated)
    for reason in skipped:
        print(f"Skipped {reason}.")
    if run_id is None:
        print(f"Nothing to close for {period}.")
        return 1 if args.tenant else 0
    summary = service.finish_run(run_id) or service.run_report(run_id)
    _print_summary(summary, args.json)
    return 1 if any(o.kind == FAILED_OUTCOME for o in outcomes) or (args.tenant and skipped) else 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not args.report and not args.period:
        _parser().error("--period YYYY-MM is required (or --report RUN_ID)")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    # The run's summary is printed at the end (as text or JSON), not also as it is logged.
    handler.addFilter(lambda record: "(month-end close of " not in record.getMessage())
    close_log = logging.getLogger("prorata.close")
    close_log.addHandler(handler)
    close_log.setLevel(logging.INFO)
    close_log.propagate = False
    try:
        from devtools.local_app import local_app

        with local_app(args.settings) as app:
            return asyncio.run(_close(app, args))
    except OSError as error:
        print(f"close: {error}", file=sys.stderr)
        return 1
    finally:
        close_log.removeHandler(handler)
        close_log.propagate = True
