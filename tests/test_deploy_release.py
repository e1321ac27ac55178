"""Release files: every key checked, one-line errors naming the key, stable fingerprints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zenserve.deploy.release import Strategy, load_release
from zenserve.errors import ZenserveError

FULL_RELEASE = """
version = "v2"
architecture = "asyncio-callbacks"
workers = 2
[service]
aphorisms = "table.toml"
cost = "1ms"
cost_kind = "io"
fault_rate = 0.05
[limits]
idle_timeout = "30s"
graceful_timeout = "3s"
[strategy]
kind = "canary"
steps = [10, 25, 50, 100]
pause = "10s"
max_error_ratio = 0.01
max_p99 = "50ms"
min_requests = 200
hold_timeout = "2m"
[health]
interval = "500ms"
"""


def write(directory: Path, text: str) -> Path:
    (directory / "table.toml").write_text('"Tea is better than?" = "Coffee."\n')
    path = directory / "release.toml"
    path.write_text(text)
    return path


def test_a_full_release_is_read(tmp_path: Path) -> None:
    release = load_release(write(tmp_path, FULL_RELEASE))
    assert release.version == "v2" and release.workers == 2
    assert release.service.aphorisms == (tmp_path / "table.toml").resolve()
    assert release.service.cost.seconds == pytest.approx(0.001)
    assert release.service.fault_rate == 0.05
    assert release.limits.idle_timeout == 30.0 and release.limits.graceful_timeout == 3.0
    assert release.strategy == Strategy("canary", (10, 25, 50, 100), 10.0, 0.01, 0.05, 200, 120.0)
    # The health check asks the table's own question by default.
    assert (release.health.question, release.health.answer) == ("Tea is better than?", "Coffee.")
    assert release.health.interval == 0.5


def test_defaults_need_only_a_version_and_an_architecture(tmp_path: Path) -> None:
    release = load_release(write(tmp_path, 'version = "v1"\narchitecture = "epoll"\n'))
    assert release.workers == 1 and release.strategy.kind == "rolling"
    assert release.health.answer == "Ugly."  # PEP 20's first question


@pytest.mark.parametrize(("text", "message"), [
    ('version = "v1"\narchitecture = "epoll"\nwrokers = 2\n', "release.toml: wrokers: unknown key"),
    ('version = "v1"\narchitecture = "epoll"\n[strategy]\nkind = "big-bang"\n',
     "[strategy] kind: 'big-bang' is not one of: rolling, blue-green, canary"),
    ('version = "v1"\narchitecture = "epoll"\n[strategy]\nsteps = [50, 10]\n',
     "[strategy] steps: expected increasing percentages between 1 and 100"),
    ('version = "v1"\narchitecture = "epoll"\n[strategy]\npause = "soon"\n',
     "[strategy] pause: bad duration 'soon'"),
    ('version = "v1"\narchitecture = "epoll"\n[service]\nfault_rate = 1.5\n',
     "[service] fault_rate: must be between 0 and 1, got 1.5"),
    ('version = "v1"\narchitecture = "epoll"\n[service]\ncolour = "blue"\n',
     "[service] colour: unknown key"),
    ('version = "v1"\narchitecture = "epoll"\nworkers = "two"\n',
     "workers: expected a whole number, got 'two'"),
    ('architecture = "epoll"\n', "version: missing (required)"),
    ('version = "v 1"\narchitecture = "epoll"\n', "version: 'v 1': use letters, digits"),
    ('version = "v1"\narchitecture = "nope"\n', "architecture: unknown architecture 'nope'"),
    ('version = "v1"\narchitecture = "uvloop"\n', "cannot be deployed by the supervisor"),
    ('version = "v1"\narchitecture = "epoll"\n[health]\nquestion = "Why"\n',
     "[health] question: 'Why' must end with its only '?'"),
    ('version = "v1"\narchitecture = "epoll"\n[service]\naphorisms = "missing.toml"\n',
     "cannot read aphorisms file"),
    ('version = "v1"\narchitecture = "epoll"\nstrategy = "canary"\n',
     "strategy: expected a table, got 'canary'"),
    ("version = \n", "not valid TOML"),
])
def test_a_bad_release_is_rejected_with_one_line_naming_it(
        tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ZenserveError) as caught:
        load_release(write(tmp_path, text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_release_or_table_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    release = tmp_path / "release.toml"
    release.write_bytes(b"\xff\xfe")  # was a UnicodeDecodeError traceback
    with pytest.raises(ZenserveError, match=r"not UTF-8 text \(byte 0\); a release is TOML"):
        load_release(release)
    (tmp_path / "bin.toml").write_bytes(b'"A?" = "\xff."\n')
    with pytest.raises(ZenserveError, match=r"bin.toml: not UTF-8 text \(byte 8\)"):
        load_release(write(tmp_path, 'version = "v1"\narchitecture = "epoll"\n'
                                     '[service]\naphorisms = "bin.toml"\n'))


def test_the_fingerprint_follows_the_content_not_the_strategy(tmp_path: Path) -> None:
    first = load_release(write(tmp_path, FULL_RELEASE))
    again = load_release(write(tmp_path, FULL_RELEASE.replace('kind = "canary"',
                                                              'kind = "rolling"')))
    assert first.fingerprint == again.fingerprint
    (tmp_path / "table.toml").write_text('"Tea is better than?" = "Milk."\n')
    changed = load_release(tmp_path / "release.toml")
    assert changed.fingerprint != first.fingerprint


def test_the_cli_prints_the_error_on_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'version = "v1"\narchitecture = "epoll"\nworkers = 0\n')
    result = subprocess.run([sys.executable, "-m", "zenserve", "deploy", "run", str(path),
                             "-p", "0", "--control", str(tmp_path / "c.sock")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("workers: must be between 1 and 64, got 0")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_worker_refuses_a_table_changed_since_the_release_was_read(tmp_path: Path) -> None:
    from zenserve.deploy.worker import build_service

    release = load_release(write(tmp_path, FULL_RELEASE))
    assert build_service(release.service, release.table_digest).lookup(
        b"Tea is better than?") == b"Coffee."
    (tmp_path / "table.toml").write_text('"Tea is better than?" = "Milk."\n')
    with pytest.raises(ZenserveError, match="changed since the release was read"):
        build_service(release.service, release.table_digest)
