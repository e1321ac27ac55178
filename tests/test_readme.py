"""The README documents what the tools really print and write."""

from __future__ import annotations

import os
import re
from pathlib import Path

from zenserve import load
from zenserve.deploy.control import default_control_path
from zenserve.deploy.launch import CONTROL_PREFIX
from zenserve.load import BenchOptions
from zenserve.process import ServerProcess
from zenserve.protocol import ERROR_UNKNOWN

README = Path(__file__).resolve().parent.parent / "README.md"


def documented_bench_keys() -> set[str]:
    """Every `key` in the first column of the README's `--json FILE` table."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("`--json FILE` (schema `zenserve.bench/1`"):]
    table = table[:table.index("\n\n", table.index("| key |"))]
    first_columns = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return {key for column in first_columns for key in re.findall(r"`([a-z_0-9]+)`", column)}


def test_every_key_of_bench_json_is_in_the_readme() -> None:
    with ServerProcess("--arch", "single") as server:
        result = load.run(BenchOptions(port=server.port, connections=1, duration=0.3,
                                       warmup=0.0, processes=1))
    written = set(result.to_json()) - {"schema"}  # the schema is named in the heading
    assert written - documented_bench_keys() == set()


def test_the_readme_names_the_control_socket_deploy_run_prints() -> None:
    """`deploy run -p 0` prints its control socket; the README says so, with the path's form."""
    text = README.read_text(encoding="utf-8")
    assert f"`{CONTROL_PREFIX}PATH`" in text
    name = default_control_path(1060).name
    assert name.replace(f"-{os.getuid()}-", "-UID-").replace("1060", "PORT") in text


def test_the_readme_says_which_error_answers_ask_q_accepts() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert (f"`-q QUESTION` asks your own question and accepts any answer, even "
            f"`{ERROR_UNKNOWN.decode()}`") in text
    assert "any other `Error: ...` answer (internal error, server busy, request too long, "\
           "injected fault) exits 1" in text
