"""Run every benchmark script in turn (`make bench`); each records its own RESULTS.md section.

    .venv/bin/python benchmarks/run_all.py            # the full runs
    .venv/bin/python benchmarks/run_all.py --quick    # short runs, marked provisional
    .venv/bin/python benchmarks/run_all.py --only architectures

To add a benchmark, add one line to BENCHMARKS: a script in this folder that
accepts ``--quick`` and writes its own section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from termination import exit_on_sigterm, stop_child

HERE = Path(__file__).resolve().parent

# script name -> what it measures
BENCHMARKS = {
    "architectures.py": "every architecture vs its book listing and the C reference "
                        "(issue 3 speed, issue 7 targets 1 and 2)",
    "instructions.py": "work per request counted, not timed: callgrind instructions and strace "
                       "syscalls, book listing vs zenserve (issue 3 evidence that holds on a "
                       "noisy machine)",
    "profile_hotspots.py": "where the time goes: CPU and syscalls per request, py-spy hot spots "
                           "(issue 7 target 1 evidence)",
    "metrics_cost.py": "zenserve with and without --metrics-port (scraped every second), "
                       "alone and under --workers 2 (issue 3: metrics must cost little)",
    "deploy_cost.py": "what the deployment supervisor costs, and what clients see while it "
                      "switches releases (blue-green every half second)",
    "bench_vs_reference.py": "zenserve bench vs the C reference load generator "
                             "(issue 4, issue 7 target 3)",
    "fastest.py": "issue 7 target 1: the fastest setups vs the C reference, like with like",
    "host_stalls.py": "how often this machine stops a busy process (the floor under target 4)",
    "latency.py": "issue 7 target 4: open-loop latency at half of each event loop's peak",
    "scaling.py": "issue 7 target 6: --workers 2 over --workers 1 under a 100 us cpu cost",
    "idle_memory.py": "resident memory per idle connection at 10,000 connections "
                      "(issue 6 C10K, issue 7 target 5)",
}
# Each script bounds its own runs; this only catches one that hangs regardless.
SCRIPT_TIMEOUT_SECONDS = 3 * 3600


def run_script(command: list[str]) -> int:
    """Run one script; on SIGTERM (or Ctrl-C) stop it cleanly before leaving."""
    child = subprocess.Popen(command)
    try:
        return child.wait(SCRIPT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        stop_child(child)
        return -1
    finally:
        stop_child(child)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run every benchmark script in turn")
    parser.add_argument("--quick", action="store_true", help="short runs, marked provisional")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="only this script (name without .py; repeatable)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    chosen = [script for script in BENCHMARKS
              if not args.only or script.removesuffix(".py") in args.only]
    if not chosen:
        parser.error(f"no benchmark called {', '.join(args.only)}; "
                     f"have: {', '.join(s.removesuffix('.py') for s in BENCHMARKS)}")
    failed = []
    for script in chosen:
        print(f"== {script}: {BENCHMARKS[script]}", flush=True)
        started = time.monotonic()
        command = [sys.executable, str(HERE / script), *(["--quick"] if args.quick else [])]
        status = run_script(command)
        print(f"== {script}: exit {status} after {time.monotonic() - started:.0f} s", flush=True)
        if status != 0:
            failed.append(script)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
