"""``python -m peers [--quick]`` (from bench/): every peer, one JSON object on stdout."""

from __future__ import annotations

import argparse
import json
import sys

from . import run_all

arguments = argparse.ArgumentParser(description="run every side-by-side peer")
arguments.add_argument("--quick", action="store_true", help="tiny sizes, one run each")
arguments.add_argument("--runs", type=int, help="runs per peer (default: 3, or 1 with --quick)")
options = arguments.parse_args()
results = run_all(
    options.quick,
    lambda line: print(f"[peers] {line}", file=sys.stderr, flush=True),
    options.runs,
)
print(json.dumps(results, indent=2))
