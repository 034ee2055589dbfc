"""The command line behind ./dev. Each command lives in its own module and is imported only
when it runs, so `./dev quote` never pays for Azure or Graph imports."""
from __future__ import annotations

import importlib
import sys

# name -> (module, one-line help). Each module has main(argv: list[str]) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "host": ("devtools.cmd_host", "development server: serves function_app.py on 127.0.0.1:7071 as func start would"),
    "demo": ("devtools.cmd_demo", "the whole product on local stand-ins: onboard, a month of changes, the close"),
    "test": ("devtools.cmd_test", "run the whole test suite (starts its own Azurite)"),
    "quote": ("devtools.cmd_quote", "price a month from a plan and observations files, no Azure"),
    "ledger": ("devtools.cmd_ledger", "import history into a tenant's ledger, or export what a month is billed from"),
    "tenants": ("devtools.cmd_tenants", "onboard, list, offboard and sync client tenants"),
    "reconcile": ("devtools.cmd_reconcile", "license reconciliation of a client: unbilled, idle and excluded licenses, sync drift"),
    "close": ("devtools.cmd_close", "close a month by hand: invoices computed, numbered, archived and emailed exactly once"),
    "invoice": ("devtools.cmd_invoice", "preview a client's invoice (month to date) or show where its close stands"),
    "graph-sim": ("devtools.cmd_graph_sim", "run the Graph simulator on 127.0.0.1 (local stand-in for Microsoft Graph)"),
    "check-infra": ("devtools.cmd_check_infra", "checkov on infra/bicep (its own .venv-checkov), every skip justified inline"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: ./dev COMMAND [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "./dev COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"help", "-h", "--help"}:
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"dev: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
