"""The service: PEP 20 table, users' tables and callables, cost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from zenserve.cost import Cost, CostKind, parse_duration
from zenserve.errors import ZenserveError
from zenserve.protocol import ERROR_INTERNAL, ERROR_UNKNOWN
from zenserve.service import Service, load_table, pep20_table

BOOK_PAIRS = {
    b"Beautiful is better than?": b"Ugly.",
    b"Explicit is better than?": b"Implicit.",
    b"Simple is better than?": b"Complex.",
}


def test_pep20_table_has_every_better_than_line_including_the_books() -> None:
    table = pep20_table()
    assert BOOK_PAIRS.items() <= table.items()
    assert table[b"Flat is better than?"] == b"Nested."
    assert table[b"Now is better than?"] == b"Never."
    assert len(table) == 7


def test_default_service_answers_and_rejects_unknown() -> None:
    service = Service()
    assert service.answer(b"Beautiful is better than?") == b"Ugly."
    assert service.answer(b"\x00\xff?") == ERROR_UNKNOWN


def test_table_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "t.toml"
    toml.write_text('"Tea is better than?" = "Coffee."\n')
    assert load_table(toml) == {b"Tea is better than?": b"Coffee."}
    json_file = tmp_path / "t.json"
    json_file.write_text('{"aphorisms": {"A?": "B."}}')
    assert load_table(json_file) == {b"A?": b"B."}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('"A" = "B."', "must end with its only '?'"),
        ('"A?" = "B"', "must end with its only '.'"),
        ('"A?" = "B.C."', "must end with its only '.'"),
        ('"A?" = 3', "must map text to text"),
        ("not toml at all [", r"not valid TOML \(a table file is TOML, or JSON if its name"),
        ("", "non-empty table"),
    ],
)
def test_bad_table_files_get_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ZenserveError, match=message):
        load_table(path)


@pytest.mark.parametrize("name", ["bin.toml", "bin.json", "bin.yaml"])
def test_a_table_file_that_is_not_utf8_gets_one_clear_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xff\xfe")  # was a UnicodeDecodeError traceback
    with pytest.raises(ZenserveError, match=r"not UTF-8 text \(byte 0\); a table file is TOML"):
        load_table(path)


def test_a_table_file_names_the_format_it_was_read_as(tmp_path: Path) -> None:
    """Only *.json is JSON; a .yaml file is read as TOML, and the error says so."""
    yaml = tmp_path / "table.yaml"
    yaml.write_text("A?: B.\n")
    with pytest.raises(ZenserveError, match=r"table.yaml: not valid TOML \(a table file is TOML,"
                                            r" or JSON if its name ends in .json\)"):
        load_table(yaml)
    json_file = tmp_path / "table.json"
    json_file.write_text('"A?" = "B."\n')
    with pytest.raises(ZenserveError, match=r"table\.json: not valid JSON"):
        load_table(json_file)


def test_missing_table_file(tmp_path: Path) -> None:
    with pytest.raises(ZenserveError, match="cannot read"):
        load_table(tmp_path / "absent.toml")


def test_failing_callable_gives_internal_error_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(question: bytes) -> bytes:
        if question == b"boom?":
            raise RuntimeError("kaboom")
        return b"fine."

    service = Service(handler=handler)
    assert service.answer(b"boom?") == ERROR_INTERNAL
    assert service.answer(b"boom?") == ERROR_INTERNAL
    assert service.answer(b"ok?") == b"fine."
    failures = [r for r in caplog.records if "RuntimeError" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None


def test_callable_returning_a_malformed_answer_is_an_internal_error() -> None:
    assert Service(handler=lambda q: b"no dot").answer(b"x?") == ERROR_INTERNAL
    assert Service(handler=lambda q: b"1.5.").answer(b"x?") == ERROR_INTERNAL


def test_zero_cost_is_the_bare_lookup() -> None:
    service = Service()
    assert service.answer is service.lookup


def test_block_cost_takes_at_least_its_time() -> None:
    service = Service(cost=Cost(0.02, CostKind.BLOCK))
    started = time.perf_counter()
    service.answer(b"Beautiful is better than?")
    assert time.perf_counter() - started >= 0.02


def test_cpu_cost_is_cpu_time_even_when_other_threads_take_the_gil() -> None:
    # Three threads spinning for the GIL leave the burning thread about a quarter
    # of the wall time: a cost burnt by the wall clock would use ~5 ms of CPU here.
    cost = Cost(0.02, CostKind.CPU)
    stop = threading.Event()
    deadline = time.monotonic() + 10.0  # bounded even if the test body fails

    def spin() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            sum(range(100))

    rivals = [threading.Thread(target=spin) for _ in range(3)]
    try:
        for rival in rivals:
            rival.start()
        started = time.thread_time()
        cost.spend()
        used = time.thread_time() - started
    finally:
        stop.set()
        for rival in rivals:
            rival.join(timeout=15)
    assert used >= cost.seconds


def test_io_cost_is_exposed_for_event_loops() -> None:
    assert Service(cost=Cost(0.005, CostKind.IO)).io_delay == 0.005
    assert Service(cost=Cost(0.005, CostKind.CPU)).io_delay == 0.0


@pytest.mark.parametrize(
    ("text", "seconds"), [("2ms", 0.002), ("100us", 0.0001), ("0.5s", 0.5), ("1", 1.0)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_rejects_nonsense() -> None:
    with pytest.raises(ZenserveError, match="bad duration"):
        parse_duration("fast")
