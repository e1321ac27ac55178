"""`zenserve deploy render`: files that the real tools accept, and that say the right things."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zenserve.cli import build_parser

RELEASE = """
version = "{version}"
architecture = "threaded"
workers = 2
threads = 8
[service]
aphorisms = "aphorisms.toml"
cost = "2ms"
[limits]
graceful_timeout = "4s"
[haproxy]
backend = "zen"
servers = ["{version}a", "{version}b"]
addresses = ["10.0.0.{host}:1060", "10.0.0.{other}:1060"]
"""


@pytest.fixture()
def releases(tmp_path: Path) -> list[Path]:
    (tmp_path / "aphorisms.toml").write_text('"Is tea (really) better than?" = '
                                             '"Yes [surely] + more (v2)."\n'
                                             '"Tea is better than?" = "Coffee."\n')
    paths = []
    for version, host in (("v1", 11), ("v2", 21)):
        path = tmp_path / f"{version}.toml"
        path.write_text(RELEASE.format(version=version, host=host, other=host + 1))
        paths.append(path)
    return paths


def render(target: str, releases: list[Path], out: Path, *extra: str) -> list[Path]:
    result = subprocess.run(
        [sys.executable, "-m", "zenserve", "deploy", "render", target, *map(str, releases),
         "--out", str(out), *extra], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [Path(line) for line in result.stdout.splitlines()]


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed "
                    "(.ci/run installs it)")
def test_haproxy_accepts_the_rendered_config(releases: list[Path], tmp_path: Path) -> None:
    [config] = render("haproxy", releases, tmp_path / "out", "--stats-socket",
                      str(tmp_path / "admin.sock"), "--bind", "127.0.0.1:11060")
    text = config.read_text()
    check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "    mode tcp\n" in text
    assert "    tcp-check send 'Is tea (really) better than?'\n" in text
    # The expected answer, every regular-expression character escaped.
    [pattern] = re.findall(r"tcp-check expect rstring '(.*)'", text)
    assert pattern == r"^(Yes \[surely\] \+ more \(v2\)\.)"
    assert re.match(pattern, "Yes [surely] + more (v2).")
    assert not re.match(pattern, "Yes [surely] + more (v2)!")
    assert "server v1a 10.0.0.11:1060 check weight 100" in text
    assert "server v2b 10.0.0.22:1060 check weight 0" in text
    assert f"stats socket {tmp_path / 'admin.sock'} mode 600 level admin" in text


def test_systemd_units_hand_the_socket_to_the_supervisor(
        releases: list[Path], tmp_path: Path) -> None:
    zenserve = Path(sys.executable).with_name("zenserve")
    paths = render("systemd", releases[:1], tmp_path / "out", "--zenserve", str(zenserve),
                   "--user", "root")
    units = {}
    for path in paths:
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(path.read_text())
        units[path.name] = parser
    assert units["zenserve.socket"]["Socket"]["ListenStream"] == "127.0.0.1:1060"
    service = units["zenserve.service"]["Service"]
    assert service["ExecStart"].split() == [
        str(zenserve), "deploy", "run", str(releases[0]), "--inherit", "--control",
        "/run/zenserve/control.sock"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM" and service["TimeoutStopSec"] == "14"
    # The command line systemd runs is one zenserve itself accepts.
    build_parser().parse_args(service["ExecStart"].split()[1:])
    analyzer = shutil.which("systemd-analyze")
    if analyzer:  # where systemd is installed, it must find nothing to say
        verify = subprocess.run([analyzer, "verify", "--man=no", *map(str, paths)],
                                capture_output=True, text=True, timeout=60,
                                cwd=paths[0].parent)
        assert (verify.returncode, verify.stderr) == (0, "")


def test_kubernetes_canary_is_two_deployments_behind_one_service(
        releases: list[Path], tmp_path: Path) -> None:
    [manifest] = render("kubernetes", releases, tmp_path / "out", "--image", "zen:1",
                        "--bind", "0.0.0.0:1060", "--replicas", "4", "--canary-replicas", "1")
    documents = list(yaml.safe_load_all(manifest.read_text()))
    kinds = [(document["kind"], document["metadata"]["name"]) for document in documents]
    assert kinds == [("ConfigMap", "zenserve-v1"), ("Deployment", "zenserve-stable"),
                     ("ConfigMap", "zenserve-v2"), ("Deployment", "zenserve-canary"),
                     ("Service", "zenserve")]
    service = documents[-1]
    assert service["spec"]["ports"] == [{"name": "zen", "port": 1060, "targetPort": "zen"}]
    table = documents[0]["data"]["aphorisms.toml"]
    assert table == (tmp_path / "aphorisms.toml").read_text()
    for document, replicas in ((documents[1], 4), (documents[3], 1)):
        spec = document["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["replicas"] == replicas
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        assert service["spec"]["selector"].items() <= labels.items()
        pod = spec["template"]["spec"]
        [container] = pod["containers"]
        assert container["image"] == "zen:1"
        # Both the server's arguments and the readiness probe's are valid zenserve commands.
        served = build_parser().parse_args(container["args"])
        assert (served.arch, served.workers, served.threads) == ("threaded", 2, 8)
        probe = container["readinessProbe"]["exec"]["command"]
        assert probe[:2] == ["zenserve", "ask"]
        asked = build_parser().parse_args(probe[1:])
        assert str(asked.aphorisms) == "/etc/zenserve/aphorisms.toml"
        assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
        assert pod["terminationGracePeriodSeconds"] >= 5 + 4


def test_a_release_without_addresses_cannot_become_haproxy_config(tmp_path: Path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text('version = "v1"\narchitecture = "epoll"\n')
    result = subprocess.run(
        [sys.executable, "-m", "zenserve", "deploy", "render", "haproxy", str(path), "--out",
         str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "plain.toml: render haproxy needs a [haproxy] table with servers and their addresses")


@pytest.mark.parametrize(("option", "value", "reason"), [
    ("--replicas", "-3", "-3: must be 1 or more"),  # was accepted and written out
    ("--replicas", "0", "0: must be 1 or more"),
    ("--canary-replicas", "-1", "-1: must be 0 or more"),
    ("--canary-replicas", "x", "'x' is not a whole number"),
])
def test_kubernetes_pod_counts_are_checked(releases: list[Path], tmp_path: Path,
                                           option: str, value: str, reason: str) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "zenserve", "deploy", "render", "kubernetes",
         *map(str, releases), "--out", str(out), option, value],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"zenserve deploy render: error: argument {option}: {reason}")
    assert not out.exists()


def test_render_help_names_values_not_variables() -> None:
    """No argparse fallback metavars (OUT, REPLICAS, CANARY_REPLICAS) in the help."""
    result = subprocess.run([sys.executable, "-m", "zenserve", "deploy", "render", "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    for option, shown in (("--out", "DIR"), ("--replicas", "N"), ("--canary-replicas", "N")):
        assert f"[{option} {shown}]" in result.stdout


@pytest.mark.parametrize("unwritable", ["a-file", "/proc", "/proc/new"])
def test_an_out_that_cannot_hold_files_is_one_line(releases: list[Path], tmp_path: Path,
                                                   unwritable: str) -> None:
    out = tmp_path / unwritable if unwritable == "a-file" else Path(unwritable)
    if unwritable == "a-file":
        out.write_text("keep me\n")
    result = subprocess.run(
        [sys.executable, "-m", "zenserve", "deploy", "render", "kubernetes",
         *map(str, releases), "--out", str(out)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()  # was a FileExistsError/FileNotFoundError traceback
    assert line.startswith("zenserve deploy: error: ")
    assert (f"--out {out} is not a directory" if unwritable == "a-file"
            else f"cannot write into {out}: ") in line
    if unwritable == "a-file":
        assert out.read_text() == "keep me\n"
