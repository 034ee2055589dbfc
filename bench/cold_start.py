"""Benchmark: the cold start of the Function App.

Prints the time to import function_app (best of 5 fresh interpreters, as `python -X importtime`
reports it), the heaviest modules it pulls in, and the modules the first webhook request adds.
Target: importing function_app takes at most 0.5 s; msgraph is never imported on the webhook path.
Run: .venv/bin/python bench/cold_start.py
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def importtime() -> tuple[float, list[tuple[float, str]]]:
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import function_app"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    rows = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            rows.append((int(match.group(2)) / 1e6, len(match.group(3)), match.group(4)))
    total = next(seconds for seconds, _, name in rows if name == "function_app")
    top = sorted(((s, n) for s, depth, n in rows if depth <= 3), reverse=True)[:6]
    return total, top


def main() -> None:
    runs = [importtime() for _ in range(5)]
    best, top = min(runs, key=lambda run: run[0])
    print(f"import function_app: best {best:.3f} s, worst {max(r[0] for r in runs):.3f} s of 5 (target <= 0.5 s)")
    print("heaviest imports (cumulative): " + ", ".join(f"{name} {seconds:.3f} s" for seconds, name in top))
    probe = ("import sys, function_app\nbefore = set(sys.modules)\n"
             "import azure.functions as func\nfrom functions.graph_webhook import graph_notifications\n"
             "graph_notifications(func.HttpRequest('POST', 'http://x/api/graph/notifications', "
             "params={'validationToken': 'x'}, body=b''))\n"
             "print('msgraph imported on the webhook path:', any(m.startswith('msgraph') for m in sys.modules))")
    print(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
