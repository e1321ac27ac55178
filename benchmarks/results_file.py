"""benchmarks/RESULTS.md: each script owns one section between HTML comment markers.

Several scripts (and engineers) write to the same file, so a script replaces
only the text between its own ``<!-- BEGIN name -->`` and ``<!-- END name -->``
markers and appends the section when it is not there yet; everything else in
the file is left exactly as it was.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from termination import exit_on_sigterm

from zenserve.errors import ZenserveError

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "# zenserve benchmark results\n"
PROJECT_ROOT = RESULTS_PATH.parent.parent


def markers(name: str) -> tuple[str, str]:
    """The comment lines that delimit section ``name``."""
    return f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"


def update_section(name: str, body: str, path: Path = RESULTS_PATH) -> None:
    """Replace section ``name`` of ``path`` with ``body`` (appending it if absent)."""
    begin, end = markers(name)
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else TITLE
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if start >= 0 and stop >= 0:
        text = text[:start] + block + text[stop + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    # Written whole to a side file and renamed, so a reader never sees half a file.
    partial = path.with_suffix(".md.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# The load average when this module was imported: the start of the run.
LOAD_AT_START = os.getloadavg()


def machine_lines() -> list[str]:
    """Date, machine and interpreter, one markdown bullet each."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    start, end = (", ".join(f"{value:.2f}" for value in load)
                  for load in (LOAD_AT_START, os.getloadavg()))
    return [
        f"- date: {now}",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, "
        f"kernel {platform.release()}; load average {start} at the start of the run, "
        f"{end} at its end (other work on the machine skews the numbers)",
        f"- Python {platform.python_version()} ({sys.executable})",
    ]


def command_line() -> str:
    """This script's command line as someone at the project root would type it."""
    python = Path(sys.executable)
    script = Path(sys.argv[0]).resolve()
    words = []
    for path in (python, script):
        try:
            words.append(str(path.relative_to(PROJECT_ROOT)))
        except ValueError:
            words.append(str(path))
    return shlex.join([*words, *sys.argv[1:]])


def section_start(title: str, reasons: Iterable[str | None], advice: str = "Not final numbers.",
                  command_note: str = "") -> list[str]:
    """A section's heading, its PROVISIONAL line (when any reason is given), command and machine."""
    lines = [title, ""]
    given = [reason for reason in reasons if reason]
    if given:
        lines += [f"**PROVISIONAL: {'; '.join(given)}.** {advice}".rstrip(), ""]
    return [*lines, f"- command: `{command_line()}`{command_note}", *machine_lines()]


def runs_without_a_rate(failures: list[str]) -> list[str]:
    """The closing list of the runs that failed (nothing when every run had a rate)."""
    return ["", "Runs without a rate:", "", *failures] if failures else []


def run_and_record(script: str, section: str, record: bool, produce: Callable[[], str]) -> int:
    """Print the section ``produce`` measures and writes; with ``record`` it goes to RESULTS.md too.

    A ZenserveError (a server that would not start, no C compiler...) is one
    line on stderr and exit status 1, not a traceback. SIGTERM cleans up as
    Ctrl-C does (servers stopped, nothing recorded).
    """
    exit_on_sigterm()
    try:
        text = produce()
    except ZenserveError as error:
        print(f"{script}: {error}", file=sys.stderr)
        return 1
    print(text)
    if record:
        update_section(section, text)
    return 0
