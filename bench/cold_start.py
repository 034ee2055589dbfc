"""Benchmark: the cold start of the Function App.

Prints the time to import function_app (fresh interpreters, as `python -X importtime` reports
it) against its floor, `import azure.functions` timed alternately in the same run (min and
median of the ratio over the runs), the heaviest modules it pulls in, and whether the first
webhook request imports msgraph, xhtml2pdf or jinja2.
Targets: import function_app <= 1.3x import azure.functions; none of the three on the webhook path.
Run: .venv/bin/python bench/cold_start.py [--runs 7]
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def importtime(module: str = "function_app") -> tuple[float, list[tuple[float, str]]]:
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    rows = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            rows.append((int(match.group(2)) / 1e6, len(match.group(3)), match.group(4)))
    total = next(seconds for seconds, _, name in rows if name == module)
    top = sorted(((s, n) for s, depth, n in rows if depth <= 3), reverse=True)[:6]
    return total, top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    runs, floors = [], []
    for _ in range(args.runs):  # alternately, so that load from elsewhere hits both alike
        floors.append(importtime("azure.functions")[0])
        runs.append(importtime())
    ratios = [run[0] / floor for run, floor in zip(runs, floors)]
    best, top = min(runs, key=lambda run: run[0])
    print(f"import function_app: best {best:.3f} s, median {statistics.median(r[0] for r in runs):.3f} s; "
          f"import azure.functions (floor): best {min(floors):.3f} s")
    print(f"function_app / azure.functions: min {min(ratios):.2f}x median {statistics.median(ratios):.2f}x "
          f"over {args.runs} runs; best / best {best / min(floors):.2f}x (target <= 1.3x)")
    print("heaviest imports (cumulative): " + ", ".join(f"{name} {seconds:.3f} s" for seconds, name in top))
    probe = ("import sys, function_app\nbefore = set(sys.modules)\n"
             "import azure.functions as func\nfrom functions.graph_webhook import graph_notifications\n"
             "graph_notifications(func.HttpRequest('POST', 'http://x/api/graph/notifications', "
             "params={'validationToken': 'x'}, body=b''))\n"
             "for name in ('msgraph', 'xhtml2pdf', 'jinja2'):\n"
             "    print(name, 'imported on the webhook path:', any(m.split('.')[0] == name for m in sys.modules))")
    print(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
