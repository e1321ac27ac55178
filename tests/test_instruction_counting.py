"""benchmarks/callgrind.py and instructions.py: instructions counted per interval, for real.

A server runs under callgrind and answers a counted number of questions in
each interval; the counts must scale with the questions asked (they are
deterministic, which is the point of counting them), and the script's verdict
must call more instructions or more syscalls than the book's "MORE WORK".
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from callgrind import CountedServer, dump_total  # noqa: E402
from contenders import zenserve_contender  # noqa: E402
from instructions import Work, verdicts  # noqa: E402

from tests.helpers import ANSWER, QUESTION, connect, read_answers  # noqa: E402
from zenserve.errors import ZenserveError  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_instructions_counted_in_an_interval_grow_with_the_requests_in_it(tmp_path: Path) -> None:
    counted = []
    with CountedServer(zenserve_contender("single"), tmp_path) as server:
        server.instrument()
        with connect(server.port) as sock:
            sock.settimeout(60)
            for questions in (40, 40, 80):  # the first warms the server up
                with server.interval() as interval:
                    for _ in range(questions):
                        sock.sendall(QUESTION)
                        assert read_answers(sock, 1) == [ANSWER]
                counted.append(interval.instructions)
    _, forty, eighty = counted
    assert forty > 40 * 1_000  # a Python server runs thousands of instructions per request
    assert 1.8 < eighty / forty < 2.2, counted


def test_a_file_that_is_not_a_dump_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cg.1"
    path.write_text("events: Ir\n")
    with pytest.raises(ZenserveError, match="not a callgrind dump"):
        dump_total(path)
    path.write_text("events: Ir\nsummary: 1234\n")
    assert dump_total(path) == 1234


def test_more_instructions_or_more_syscalls_than_the_book_is_more_work() -> None:
    book = Work("book", {1: 1000.0, 10: 1000.0, 100: 1000.0}, {1: 2.0, 10: 2.0, 100: 2.0})
    zen = Work("zenserve", {1: 900.0, 10: 1100.0, 100: 900.0}, {1: 2.0, 10: 2.0, 100: 2.5})
    [line] = verdicts("single", book, zen, (1, 10, 100))
    assert "1: less work (book ÷ zenserve 1.11×" in line
    assert "10: MORE WORK (book ÷ zenserve 0.91×" in line
    assert "100: MORE WORK (book ÷ zenserve 1.11×" in line  # fewer instructions, more syscalls
    assert "syscalls but futex 2.50 vs the book's 2.00" in line
