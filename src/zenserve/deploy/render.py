"""`zenserve deploy render haproxy|systemd|kubernetes`: working files for a release.

- ``haproxy``: haproxy.cfg in ``mode tcp`` with a health check that asks the
  release's question and expects its answer (``tcp-check send``/``expect``),
  a Runtime API socket at ``level admin`` for ``deploy run --traffic haproxy``,
  and one server line per server of each release (the first release serves,
  the others wait at weight 0 for a rollout).
- ``systemd``: a socket unit that owns the port across restarts and a service
  unit running the supervisor on it (``--inherit``), SIGHUP to reload.
- ``kubernetes``: see ``zenserve.deploy.kubernetes``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

from zenserve.cost import parse_duration
from zenserve.deploy import kubernetes
from zenserve.deploy.release import Release, load_release
from zenserve.errors import ZenserveError

TARGETS = ("haproxy", "systemd", "kubernetes")
# Characters that mean something in a regular expression, escaped in the check.
_REGEX_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\])")


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", choices=TARGETS, help="what to write")
    parser.add_argument("releases", nargs="+", type=Path, metavar="RELEASE",
                        help="release files: the stable one first, then the candidate")
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                        help="directory to write into (default: here)")
    parser.add_argument("--bind", default="127.0.0.1:1060", metavar="HOST:PORT",
                        help="where clients connect (default 127.0.0.1:1060)")
    parser.add_argument("--stats-socket", default="/run/haproxy/admin.sock", metavar="PATH",
                        help="haproxy: the Runtime API socket (default /run/haproxy/admin.sock)")
    parser.add_argument("--check-interval", default="2s", metavar="DURATION",
                        help="haproxy: time between health checks of each server (default 2s)")
    parser.add_argument("--zenserve", default="/usr/local/bin/zenserve", metavar="PATH",
                        help="systemd: the zenserve executable")
    parser.add_argument("--user", default="zenserve", help="systemd: the user to run as")
    parser.add_argument("--control", default="/run/zenserve/control.sock", metavar="PATH",
                        help="systemd: the supervisor's control socket")
    parser.add_argument("--image", default="zenserve:latest",
                        help="kubernetes: the container image with zenserve installed")
    parser.add_argument("--replicas", type=pod_count(1), default=3, metavar="N",
                        help="kubernetes: stable pods, 1 or more (default 3)")
    parser.add_argument("--canary-replicas", type=pod_count(0), default=1, metavar="N",
                        help="kubernetes: canary pods of the second release, 0 or more "
                             "(default 1)")


def pod_count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of pods, at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            count = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if count < minimum:
            raise argparse.ArgumentTypeError(f"{count}: must be {minimum} or more")
        return count

    return parse


def render_files(args: argparse.Namespace) -> list[Path]:
    """Write the files for ``args.target``; the paths written."""
    releases = [load_release(path) for path in args.releases]
    _, port = _split_bind(args.bind)
    if args.target == "haproxy":
        files = {"haproxy.cfg": haproxy_config(releases, args.bind, args.stats_socket,
                                               parse_duration(args.check_interval))}
    elif args.target == "systemd":
        files = systemd_units(releases[0], args.bind, args.zenserve, args.user, args.control)
    else:
        files = {"zenserve.yaml": kubernetes.manifests(releases, args.image, port,
                                                       args.replicas, args.canary_replicas)}
    if args.out.exists() and not args.out.is_dir():
        raise ZenserveError(f"--out {args.out} is not a directory")
    written = []
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = args.out / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as error:
        raise ZenserveError(f"cannot write into {args.out}: {error.strerror}") from None
    return written


def haproxy_config(releases: list[Release], bind: str, stats_socket: str,
                   check_interval: float) -> str:
    """haproxy.cfg: every release's servers in one backend, the first release serving."""
    targets = []
    for release in releases:
        if release.haproxy is None or not release.haproxy.addresses:
            raise ZenserveError(f"{release.path}: render haproxy needs a [haproxy] table with "
                                "servers and their addresses")
        targets.append(release.haproxy)
    backends = {target.backend for target in targets}
    if len(backends) != 1:
        raise ZenserveError(f"render haproxy: the releases name different backends: "
                            f"{', '.join(sorted(backends))}")
    question, answers = _health_exchange(releases)
    servers = []
    for index, target in enumerate(targets):
        weight = 100 if index == 0 else 0
        servers += [f"    server {name} {address} check weight {weight}\n"
                    for name, address in zip(target.servers, target.addresses, strict=True)]
    timeout = releases[0].limits.idle_timeout + 5
    return (
        f"# Rendered by `zenserve deploy render haproxy` from "
        f"{', '.join(release.path.name for release in releases)}.\n"
        f"# Drive it with: zenserve deploy run {releases[0].path.name} --traffic haproxy "
        f"--haproxy-socket {stats_socket}\n"
        "global\n"
        f"    stats socket {stats_socket} mode 600 level admin\n"
        "    stats timeout 30s\n\n"
        "defaults\n"
        "    mode tcp\n"
        "    timeout connect 2s\n"
        f"    timeout client {timeout:g}s\n"
        f"    timeout server {timeout:g}s\n\n"
        "frontend clients\n"
        f"    bind {bind}\n"
        f"    default_backend {targets[0].backend}\n\n"
        f"backend {targets[0].backend}\n"
        "    balance roundrobin\n"
        "    # A real question, and the answer it must get: a server that is up but\n"
        "    # answers wrongly is not sent clients.\n"
        "    option tcp-check\n"
        "    tcp-check connect\n"
        f"    tcp-check send '{question}'\n"
        f"    tcp-check expect rstring '^({'|'.join(answers)})'\n"
        f"    default-server inter {int(check_interval * 1000)}ms fall 3 rise 2\n"
        + "".join(servers)
    )


def _health_exchange(releases: list[Release]) -> tuple[str, list[str]]:
    questions = {release.health.question for release in releases}
    if len(questions) != 1:
        raise ZenserveError("render haproxy: the releases ask different health questions; "
                            "one backend has one check")
    answers = []
    for release in releases:
        if release.health.answer is None:
            raise ZenserveError(f"{release.path}: render haproxy needs [health] answer: the "
                                "check must know the right answer")
        answers.append(release.health.answer)
    question = questions.pop()
    if "'" in question or any("'" in answer for answer in answers):
        raise ZenserveError("render haproxy: a health question or answer with a single quote "
                            "cannot be written in haproxy.cfg")
    return question, [_REGEX_SPECIAL.sub(r"\\\1", answer) for answer in dict.fromkeys(answers)]


def systemd_units(release: Release, bind: str, zenserve: str, user: str,
                  control: str) -> dict[str, str]:
    """zenserve.socket (systemd keeps the port open across restarts) and zenserve.service."""
    stop_seconds = int(release.limits.graceful_timeout) + 10
    socket_unit = (
        "[Unit]\n"
        f"Description=zenserve: the zen protocol on {bind}\n\n"
        "[Socket]\n"
        f"ListenStream={bind}\n"
        "Backlog=1024\n"
        "NoDelay=true\n\n"
        "[Install]\n"
        "WantedBy=sockets.target\n"
    )
    service_unit = (
        "[Unit]\n"
        f"Description=zenserve deploy supervisor (first release {release.version})\n"
        "Requires=zenserve.socket\n"
        "After=network.target zenserve.socket\n\n"
        "[Service]\n"
        "Type=simple\n"
        "# The supervisor adopts the socket systemd passes (LISTEN_FDS) and never closes\n"
        "# it while serving; releases go through its control socket.\n"
        f"ExecStart={zenserve} deploy run {release.path} --inherit --control {control}\n"
        "ExecReload=/bin/kill -HUP $MAINPID\n"
        "KillSignal=SIGTERM\n"
        "KillMode=mixed\n"
        f"TimeoutStopSec={stop_seconds}\n"
        "Restart=on-failure\n"
        "RestartSec=1\n"
        f"User={user}\n"
        "RuntimeDirectory=zenserve\n"
        "RuntimeDirectoryMode=0700\n"
        "NoNewPrivileges=true\n"
        "ProtectSystem=strict\n"
        "ProtectHome=true\n"
        "PrivateTmp=true\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )
    return {"zenserve.socket": socket_unit, "zenserve.service": service_unit}


def _split_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ZenserveError(f"--bind {bind!r}: use HOST:PORT, e.g. 127.0.0.1:1060")
    return host.strip("[]"), int(port)
