"""The command line as a user meets it: bad input gets one clear line and a non-zero status."""

from __future__ import annotations

import pytest

from zenserve.cli import main


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
