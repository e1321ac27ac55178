"""`zenserve deploy`: zero-downtime releases (run, release, apply, status, promote, abort)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from zenserve.commands.options import port_number
from zenserve.config import DEFAULT_BACKLOG, DEFAULT_HOST, DEFAULT_PORT
from zenserve.deploy.control import ControlClient, Message, default_control_path
from zenserve.deploy.release import STRATEGY_KINDS
from zenserve.errors import ZenserveError

HELP = "zero-downtime releases: blue-green, canary, rolling, with automatic rollback"

# `deploy apply` and `deploy release --wait` exit statuses, for CD pipelines.
EXIT_PROMOTED = 0  # promoted, or already stable
EXIT_ROLLED_BACK = 1
EXIT_ERROR = 2  # a bad release, no supervisor, another rollout in progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="start a supervisor serving RELEASE on one port")
    run.add_argument("release", type=Path, help="the release file (TOML) to serve first")
    run.add_argument("host", nargs="?", default=DEFAULT_HOST,
                     help=f"address to listen on (default {DEFAULT_HOST})")
    run.add_argument("--inherit", action="store_true",
                     help="serve the socket systemd passed (LISTEN_FDS) or fd 0")
    run.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG, metavar="N",
                     help=f"listen backlog (default {DEFAULT_BACKLOG})")
    run.add_argument("--traffic", choices=("local", "haproxy"), default="local",
                     help="local: route on this host (default); haproxy: drive HAProxy")
    run.add_argument("--haproxy-socket", type=Path, metavar="PATH",
                     help="HAProxy's Runtime API socket (with --traffic haproxy)")
    run.add_argument("-v", "--verbose", action="store_true", help="log every worker event")
    _add_control_arguments(run)

    release = actions.add_parser("release", help="roll out a new release")
    release.add_argument("release", type=Path, help="the new release file (TOML)")
    release.add_argument("--strategy", choices=STRATEGY_KINDS,
                         help="override the release's [strategy] kind")
    release.add_argument("--wait", action="store_true",
                         help="follow the rollout; exit 0 when promoted, 1 when rolled back")
    _add_control_arguments(release)

    apply = actions.add_parser("apply", help="make RELEASE stable (idempotent; for CD)")
    apply.add_argument("release", type=Path, help="the release file (TOML)")
    _add_control_arguments(apply)

    status = actions.add_parser("status", help="generations, weights, success ratio, p99")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    _add_control_arguments(status)

    for name, text in (("promote", "skip the remaining steps: make the candidate stable"),
                       ("abort", "stop the rollout and roll back to the stable release")):
        _add_control_arguments(actions.add_parser(name, help=text))

    from zenserve.deploy.render import add_render_arguments

    add_render_arguments(actions.add_parser(
        "render", help="write haproxy.cfg, systemd units or Kubernetes manifests"))


def _add_control_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--port", type=port_number, default=DEFAULT_PORT,
                        help=f"the supervisor's port, which names its control socket "
                             f"(default {DEFAULT_PORT})")
    parser.add_argument("--control", type=Path, metavar="PATH",
                        help="the control socket (default derived from the port)")


def run(args: argparse.Namespace) -> int:
    action: int = globals()[f"_run_{args.action}"](args)
    return action


def _client(args: argparse.Namespace, timeout: float = 10.0) -> ControlClient:
    return ControlClient(args.control or default_control_path(args.port), timeout)


def _checked(answer: Message) -> Message:
    if "error" in answer:
        raise ZenserveError(answer["error"])
    return answer


def _run_run(args: argparse.Namespace) -> int:
    from zenserve.deploy.launch import run_supervisor

    return run_supervisor(args)


def _run_release(args: argparse.Namespace) -> int:
    client = _client(args)
    answer = _checked(client.request({"command": "release", "path": str(args.release.resolve()),
                                      "strategy": args.strategy}))
    print(f"deployment {answer['deployment']}: {answer['version']} by {answer['strategy']}")
    return _follow(client, answer["deployment"]) if args.wait else 0


def _run_apply(args: argparse.Namespace) -> int:
    client = _client(args)
    answer = _checked(client.request({"command": "apply", "path": str(args.release.resolve())}))
    if answer.get("result") == "unchanged":
        print(f"{answer['version']} is already stable: nothing to do")
        return EXIT_PROMOTED
    attached = " (already in progress)" if answer.get("attached") else ""
    print(f"deployment {answer['deployment']}: {answer['version']}{attached}")
    return _follow(client, answer["deployment"])


def _follow(client: ControlClient, deployment: int) -> int:
    """Print the rollout's events until its result; the exit status says which."""
    result: Message = {}
    for message in client.stream({"command": "wait", "deployment": deployment}, None):
        if "event" in message:
            stamp = time.strftime("%H:%M:%S", time.localtime(message["time"]))
            print(f"{stamp} {message['event']}", flush=True)
        else:
            result = _checked(message)
    if not result:
        raise ZenserveError("the supervisor closed the connection before the rollout finished")
    reason = f": {result['reason']}" if result.get("reason") else ""
    print(f"{result['version']} {result['result']}{reason}")
    return EXIT_PROMOTED if result["result"] == "promoted" else EXIT_ROLLED_BACK


def _run_render(args: argparse.Namespace) -> int:
    from zenserve.deploy.render import render_files

    for path in render_files(args):
        print(path)
    return 0


def _run_status(args: argparse.Namespace) -> int:
    from zenserve.deploy.status import render

    status = _checked(_client(args).request({"command": "status"}))
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0


def _run_promote(args: argparse.Namespace) -> int:
    answer = _checked(_client(args).request({"command": "promote"}))
    print(f"deployment {answer['deployment']}: {answer['version']} {answer['result']}")
    return 0


def _run_abort(args: argparse.Namespace) -> int:
    answer = _checked(_client(args).request({"command": "abort"}))
    print(f"deployment {answer['deployment']}: {answer['version']} {answer['result']}")
    return 0
