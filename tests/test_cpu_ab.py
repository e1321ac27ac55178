"""benchmarks/cpu_ab.py: a tiny real A/B run, and its one-line errors (no timing asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "cpu_ab.py"
ROW = re.compile(r"^\| asyncio-callbacks \| 1 \| (before|after) \| (\d+\.\d) \|", re.MULTILINE)


def run_script(*arguments: str, timeout: float = 55) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.slow
def test_a_tiny_run_charges_cpu_to_both_versions() -> None:
    run = run_script("--arch", "asyncio-callbacks", "--rounds", "1", "--seconds", "0.3")
    assert run.returncode == 0, run.stderr
    rows = dict(ROW.findall(run.stdout))
    assert set(rows) == {"before", "after"}, run.stdout
    assert all(float(cpu) > 0 for cpu in rows.values())


def test_an_unknown_revision_is_one_line_and_status_1() -> None:
    run = run_script("--arch", "asyncio-callbacks", "--before", "no-such-revision-here")
    assert run.returncode == 1
    assert run.stderr.startswith("cpu_ab: cannot export src of 'no-such-revision-here'")
    assert "Traceback" not in run.stderr
    assert run.stdout == ""


def test_skipping_every_round_is_a_usage_error() -> None:
    run = run_script("--arch", "asyncio-callbacks", "--rounds", "2", "--skip-rounds", "2")
    assert run.returncode == 2
    assert "--skip-rounds must leave at least one" in run.stderr
