"""The benchmark harness itself: its RESULTS.md sections, its verdicts, and one tiny real run.

No timing is asserted here (speed lives in benchmarks/); these check that the
harness keeps other people's sections, judges ratios as the issues state, and
runs end to end against real servers.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from architecture_table import (  # noqa: E402
    GroupResult,
    a_a_spread,
    book_summary,
    missed_book_targets,
)
from race import Point, interleaved, median_present  # noqa: E402
from reference import LoadResult  # noqa: E402
from results_file import run_and_record, section_start, update_section  # noqa: E402
from script_options import RunLength, parse_race_arguments  # noqa: E402

from tests.helpers import wait_for  # noqa: E402
from zenserve.errors import ZenserveError  # noqa: E402


def test_update_section_appends_then_replaces_only_its_own_block(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# results\n\n<!-- BEGIN other -->\nkeep me\n<!-- END other -->\n")
    update_section("mine", "first", results)
    update_section("mine", "second\n", results)
    text = results.read_text()
    assert text.count("<!-- BEGIN mine -->") == 1
    assert "second" in text and "first" not in text
    assert "<!-- BEGIN other -->\nkeep me\n<!-- END other -->" in text
    assert text.index("keep me") < text.index("second")


def test_update_section_creates_the_file(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    update_section("mine", "body", results)
    assert results.read_text().startswith("# ")
    assert "<!-- BEGIN mine -->\nbody\n<!-- END mine -->" in results.read_text()


def group_with(book: dict[int, float | None], mine: dict[int, float | None]) -> GroupResult:
    points = {}
    for label, rates in (("book x.py", book), ("zenserve", mine)):
        for count, rate in rates.items():
            points[label, count] = Point([LoadResult(rate, "" if rate else "timed out")])
    return GroupResult("arch", "book x.py", ("book x.py", "zenserve"), (), points)


def test_book_targets_flag_a_slow_point_and_the_stricter_target_at_10() -> None:
    group = group_with({1: 100.0, 10: 100.0, 100: 100.0}, {1: 99.0, 10: 115.0, 100: 100.0})
    missed = missed_book_targets(group, (1, 10, 100))
    assert missed == ["0.99× book < 1.0× at 1", "1.15× book < 1.2× at 10 (issue 7)"]


def test_book_targets_skip_what_the_book_could_not_do_but_not_what_we_could_not() -> None:
    group = group_with({1: 100.0, 10: 100.0, 100: None}, {1: None, 10: 130.0, 100: 50.0})
    assert missed_book_targets(group, (1, 10, 100)) == ["no rate at 1, the book had one"]


def rounds_group(book: list[float | None], mine: list[float | None],
                 twin: list[float | None] | None = None) -> GroupResult:
    """One architecture raced at 1 connection over several rounds (None: a failed run)."""
    series = {"book x.py": book, "zenserve": mine}
    if twin is not None:
        series["book x.py (A/A copy)"] = twin
    points = {(label, 1): Point([LoadResult(rate, "" if rate else "failed") for rate in rates])
              for label, rates in series.items()}
    return GroupResult("arch", "book x.py", tuple(series), (), points,
                       "book x.py (A/A copy)" if twin is not None else None)


def test_ratios_to_the_book_pair_runs_of_the_same_round() -> None:
    # The machine slows down in round 2 for both: median over median would say 1.2×,
    # each round's pair says zenserve is 10% behind.
    group = rounds_group(book=[100.0, 50.0, 120.0], mine=[90.0, 45.0, 108.0])
    assert group.to_book("zenserve", 1) == pytest.approx(0.9)
    assert group.median("zenserve", 1) / group.median("book x.py", 1) == pytest.approx(0.9)
    skewed = rounds_group(book=[100.0, 200.0, 100.0], mine=[95.0, 190.0, 190.0])
    assert skewed.to_book("zenserve", 1) == pytest.approx(0.95)  # not 190/100
    assert rounds_group(book=[100.0, None], mine=[None, 80.0]).to_book("zenserve", 1) is None


def test_a_shortfall_within_the_a_a_spread_is_a_tie_and_beyond_it_a_miss() -> None:
    tie = rounds_group(book=[100.0, 100.0, 100.0], mine=[98.0, 97.0, 99.0],
                       twin=[96.0, 97.0, 99.0])
    spread = a_a_spread([tie], (1,))
    assert spread[1] == pytest.approx(0.03)
    assert missed_book_targets(tie, (1,), spread) == ["0.98× book at 1: a tie (A/A ±0.03)"]
    miss = rounds_group(book=[100.0, 100.0, 100.0], mine=[90.0, 92.0, 91.0],
                        twin=[99.0, 101.0, 100.0])
    assert missed_book_targets(miss, (1,), a_a_spread([miss], (1,))) == [
        "0.91× book < 1.0× at 1"]
    summary = book_summary([tie, miss], (1,))
    assert summary[0] == "- A/A spread (the book's copy against the book, widest over all " \
                         "groups): ±0.03 at 1"
    assert "level within the A/A spread for arch (0.98× book at 1" in summary[1]
    assert "MISSED by arch (0.91× book < 1.0× at 1)" in summary[1]


def test_a_race_visits_every_count_each_round_and_rotates_who_goes_first() -> None:
    order = list(interleaved(["a", "b", "c"], (1, 10), 2))
    assert order == [(0, 1, "a"), (0, 1, "b"), (0, 1, "c"), (0, 10, "a"), (0, 10, "b"),
                     (0, 10, "c"), (1, 1, "b"), (1, 1, "c"), (1, 1, "a"), (1, 10, "b"),
                     (1, 10, "c"), (1, 10, "a")]


def test_a_median_counts_only_what_was_measured() -> None:
    assert median_present([3.0, None, 1.0, 0.0, 2.0]) == 2.0
    assert median_present([None, 0.0]) is None


def race_arguments(*argv: str) -> argparse.Namespace:
    return parse_race_arguments(list(argv), None, quick=RunLength(1, 1.0),
                                full=RunLength(3, 2.0), arch_default="all",
                                connections=(1, 10))


def test_race_options_default_by_run_length_and_mark_quick_runs_provisional() -> None:
    full, quick = race_arguments(), race_arguments("--quick", "--seconds", "0.5")
    assert (full.rounds, full.seconds, full.provisional, full.no_record) == (3, 2.0, None, False)
    assert (quick.rounds, quick.seconds) == (1, 0.5)
    assert quick.provisional == "--quick run (1 round of 1 s per point)"


@pytest.mark.parametrize("narrowing", [["--arch", "epoll"], ["--connections", "10"]])
def test_a_narrowed_race_is_never_recorded(narrowing: list[str]) -> None:
    assert race_arguments(*narrowing).no_record


def test_an_unknown_architecture_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        race_arguments("--arch", "nope")
    assert "unknown architecture(s) nope" in capsys.readouterr().err


def test_a_section_names_every_reason_it_is_provisional() -> None:
    lines = section_start("## Title", ("--quick run", None, "machine busy"), "Rerun.")
    assert lines[:3] == ["## Title", "", "**PROVISIONAL: --quick run; machine busy.** Rerun."]
    assert lines[4].startswith("- command: `") and lines[5].startswith("- date: ")
    assert section_start("## Title", (None,))[2].startswith("- command: `")


def test_a_failed_measurement_is_one_line_and_status_1(
        capsys: pytest.CaptureFixture[str]) -> None:
    def fails() -> str:
        raise ZenserveError("no C compiler")

    assert run_and_record("demo", "demo", False, fails) == 1
    assert capsys.readouterr().err == "demo: no C compiler\n"
    assert run_and_record("demo", "demo", False, lambda: "| table |") == 0
    assert capsys.readouterr().out == "| table |\n"


@pytest.mark.slow
def test_a_tiny_real_run_prints_the_table() -> None:
    command = [sys.executable, str(BENCHMARKS / "architectures.py"),
               "--arch", "single", "--rounds", "1", "--seconds", "0.2", "--connections", "1", "10"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=55, check=False)
    assert run.returncode == 0, run.stderr
    assert "| single | book srv_single.py |" in run.stdout
    assert "| single | zenserve |" in run.stdout
    assert "| (yardstick) | C reference |" in run.stdout


@pytest.mark.slow
def test_sigterm_stops_a_benchmark_and_every_server_it_started() -> None:
    # Benchmarks start servers in sessions of their own: without the SIGTERM
    # handling, killing the script left them running (and skewing later runs).
    command = [sys.executable, str(BENCHMARKS / "architectures.py"), "--arch", "threaded",
               "--rounds", "3", "--seconds", "5", "--connections", "1", "--no-record"]
    script = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        parent = psutil.Process(script.pid)
        servers: list[psutil.Process] = []
        wait_for(lambda: servers.extend(_listening_descendants(parent)) or servers, timeout=30.0)
        script.send_signal(signal.SIGTERM)
        assert script.wait(timeout=40) == 128 + signal.SIGTERM
        _, alive = psutil.wait_procs(servers, timeout=10)
        assert not alive, f"left running: {[process.cmdline() for process in alive]}"
    finally:
        if script.poll() is None:
            script.kill()
            script.wait(timeout=10)


def _listening_descendants(parent: psutil.Process) -> list[psutil.Process]:
    """The benchmark's descendants that hold a listening TCP socket (its servers)."""
    found = []
    for child in parent.children(recursive=True):
        try:
            sockets = child.net_connections()
        except psutil.Error:  # gone meanwhile
            continue
        if any(sock.status == psutil.CONN_LISTEN for sock in sockets):
            found.append(child)
    return found


def test_host_stalls_counts_gaps_by_threshold_and_the_time_they_lose() -> None:
    from host_stalls import row, spin

    assert all(gap > 0.5 for gap in spin(0.05))  # only gaps past 0.5 ms are kept
    line = row("1", [0.6, 1.5, 2.5, 6.0], seconds=2.0)
    # per second: 4 gaps > 0.5 ms, 3 > 1 ms, 2 > 2 ms, 1 > 5 ms; 10.6 ms lost in 2 s = 0.53%
    assert line == "| 1 | 2.0 | 1.5 | 1.0 | 0.5 | 6.00 | 0.53% |"
