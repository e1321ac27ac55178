"""The command line as a user meets it: bad input gets one clear line and a non-zero status."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from zenserve.cli import main
from zenserve.config import MAX_WORKERS
from zenserve.process import ServerProcess


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The last line argparse prints for ``argv``, which must be refused with status 2."""
    with pytest.raises(SystemExit) as stopped:
        main(list(argv))
    assert stopped.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("argv", [
    ("serve", "-p", "99999"),  # getaddrinfo would wrap it to 34463 and listen there
    ("serve", "-p", "-1"),
    ("deploy", "status", "-p", "65536"),
    ("ask", "-p", "0"),  # nothing listens on port 0: a client cannot connect to it
    ("bench", "-p", "70000"),
    ("soak", "-p", "0"),
])
def test_a_port_out_of_range_is_refused_before_anything_runs(
        capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    line = usage_error(capsys, *argv)
    assert "-p/--port" in line and "is not a TCP port" in line


def test_a_port_that_is_not_a_number_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert "'x' is not a port number" in usage_error(capsys, "serve", "-p", "x")


def test_client_help_does_not_offer_port_zero(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("ask", "bench"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "0 picks a free one" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "0 picks a free one" in capsys.readouterr().out


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line a ZenserveError prints for ``argv``, which must end with status 2."""
    assert main(list(argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    return captured.err


@pytest.mark.parametrize(("argv", "named"), [
    (("-n", "-2"), "-n"),  # was a ValueError traceback from random.sample
    (("--timeout", "0"), "--timeout"),  # was "Operation now in progress"
    (("--timeout=-1",), "bad duration"),  # was a ValueError traceback from settimeout
    (("-q", "no question mark"), "'?'"),  # was a 5 s wait for an answer that never comes
    (("-q", "Two? In one?"), "'?'"),  # two questions, one answer read: out of step
])
def test_ask_refuses_what_cannot_work_before_connecting(
        capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], named: str) -> None:
    # Port 1: nothing listens there, so getting past the checks would fail differently.
    line = one_line_error(capsys, "ask", "-p", "1", *argv)
    assert line.startswith("zenserve ask: error:") and named in line


def test_ask_timeout_takes_a_duration_like_every_other_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    for timeout in ("2", "300ms"):  # plain seconds still work, for existing probes
        assert main(["ask", "-p", "1", "--timeout", timeout]) == 1  # refused: past the checks
        assert "Connection refused" in capsys.readouterr().err


def test_demo_names_an_unknown_architecture_in_one_line(
        capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--arch", "nosuch"]) == 2
    errors = capfd.readouterr().err  # the file descriptor: a server child would write there too
    assert errors.count("\n") == 1 and "unknown architecture 'nosuch'" in errors


@pytest.mark.timeout(30)
def test_compare_refuses_an_out_directory_it_cannot_write_before_measuring(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # /proc exists and is a directory, and refuses new files even to root; the
    # report used to fail there with a traceback after the whole run.
    line = one_line_error(capsys, "compare", "--tiny", "--architectures", "single",
                          "--out", "/proc")
    assert "cannot write into /proc" in line
    a_file = tmp_path / "report"
    a_file.write_text("")
    line = one_line_error(capsys, "compare", "--tiny", "--architectures", "single",
                          "--out", str(a_file))
    assert f"{a_file} is not a directory" in line


@pytest.mark.parametrize("argv", [("serve",), ("deploy", "run"), ("ask",), ("bench",),
                                  ("soak",), ("demo",), ("compare",)])
def test_help_names_values_not_variables(capsys: pytest.CaptureFixture[str],
                                         argv: tuple[str, ...]) -> None:
    """No option shows argparse's fallback metavar, its name in capitals (MAX_REQUEST_BYTES)."""
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    usage = capsys.readouterr().out
    assert re.findall(r"--[a-z-]+ [A-Z]+_[A-Z_]+\b", usage) == []
    assert "BACKLOG" not in usage


@pytest.mark.parametrize("option", ["--json", "--hgrm"])
def test_bench_refuses_an_output_it_cannot_write_before_the_run(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str) -> None:
    # Nothing listens on port 1: reaching the run would fail with "cannot reach".
    for unwritable in ("/proc/result", str(tmp_path)):  # /proc refuses files; a directory
        line = one_line_error(capsys, "bench", "-p", "1", "-d", "1s", option, unwritable)
        assert f"cannot write {unwritable}" in line
    unused = tmp_path / "result"
    assert "cannot reach" in one_line_error(capsys, "bench", "-p", "1", option, str(unused))
    assert not unused.exists()  # the check leaves no empty file behind


def test_a_host_copied_from_the_listening_line_is_understood(
        capsys: pytest.CaptureFixture[str]) -> None:
    # `Listening at [::1]:1060` brackets an IPv6 host; ask and serve take it as printed,
    # and ask names an IPv6 server the same way in its reasons.
    assert main(["ask", "[::1]", "-p", "1"]) == 1
    assert capsys.readouterr().err == "zenserve ask: [::1]:1: Connection refused\n"


@pytest.mark.parametrize("workers", ["65", "100000"])
def test_serve_caps_workers_where_a_release_does(workers: str) -> None:
    # 100000 used to open an eventfd per slot until EMFILE, then a traceback. A
    # child process, so a server accepting the count would not run inside pytest.
    result = subprocess.run(
        [sys.executable, "-m", "zenserve", "serve", "-p", "0", "--workers", workers],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"zenserve serve: error: --workers must be at most {MAX_WORKERS}\n"


@pytest.mark.parametrize("command", [("serve", "-p", "0"), ("ask", "-p", "1"),
                                     ("bench", "-p", "1")])
def test_a_table_file_that_is_not_utf8_is_one_line(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, command: tuple[str, ...]) -> None:
    table = tmp_path / "bin.toml"
    table.write_bytes(b"\xff\xfe")  # was a UnicodeDecodeError traceback
    line = one_line_error(capsys, *command, "--aphorisms", str(table))
    assert line == (f"zenserve {command[0]}: error: {table}: not UTF-8 text (byte 0); "
                    "a table file is TOML, or JSON if its name ends in .json\n")


def test_ask_q_fails_on_an_error_answer_but_an_unknown_question(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A probe with -q: the server not serving the question is a failure; not knowing it is not."""
    with ServerProcess("--service", "tests.services.faulty:answer", "--max-request-bytes",
                       "40", stderr=subprocess.DEVNULL) as server:
        port = str(server.port)
        assert main(["ask", "-p", port, "-q", "Who knows?"]) == 0
        assert capsys.readouterr().out == "Who knows? Error: unknown aphorism.\n"
        for question, error in (("Raise now?", "Error: internal error."),
                                ("Why" * 20 + "?", "Error: request too long.")):
            # Was exit 0: a readiness probe passed while every answer was an error.
            assert main(["ask", "-p", port, "-q", question]) == 1
            assert capsys.readouterr().err == (
                f"zenserve ask: the server answered {question.encode()!r} with "
                f"{error.encode()!r}\n")
