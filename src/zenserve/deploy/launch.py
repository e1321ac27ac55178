"""`zenserve deploy run`: open the listener and the control socket, start the supervisor."""

from __future__ import annotations

import argparse
import socket
import sys

from zenserve.deploy.commands import Commands
from zenserve.deploy.control import default_control_path
from zenserve.deploy.haproxy import RuntimeApi
from zenserve.deploy.haproxy_site import HaproxySupervisor
from zenserve.deploy.reactor import Reactor
from zenserve.deploy.release import Release, load_release
from zenserve.deploy.supervisor import Supervisor
from zenserve.errors import ZenserveError
from zenserve.net import bind_listener, inherited_socket
from zenserve.runner import announce_ready

# What `deploy run --traffic haproxy` prints once the stable servers are UP.
HAPROXY_READY_PREFIX = "Driving "
# The line after the readiness line: where `deploy status/release/...` reach
# this supervisor (named after the port it bound, so `-p 0` is found too).
CONTROL_PREFIX = "Control at "


def run_supervisor(args: argparse.Namespace) -> int:
    """Serve ``args.release`` until SIGTERM (exit 0) or SIGINT."""
    release = load_release(args.release)
    if args.traffic == "haproxy":
        return _run_through_haproxy(args, release)
    if release.haproxy is not None:
        raise ZenserveError(f"{release.path}: a release with a [haproxy] table needs "
                            "--traffic haproxy")
    listener = _listener(args)
    reactor = Reactor()
    try:
        port = listener.getsockname()[1]
        commands = Commands(args.control or default_control_path(port), reactor)
        supervisor = Supervisor(listener, release, reactor, commands)
        try:
            supervisor.start(announce_ready)
        except BaseException:
            commands.close()
            raise
        _announce_control(commands)
        supervisor.serve_forever()
    finally:
        listener.close()
        reactor.close()
    return 0


def _listener(args: argparse.Namespace) -> socket.socket:
    if not args.inherit:
        return bind_listener(args.host, args.port, args.backlog)
    listener, accepting = inherited_socket()
    if not accepting:
        raise ZenserveError("--inherit: the inherited socket is not listening")
    return listener


def _run_through_haproxy(args: argparse.Namespace, release: Release) -> int:
    if args.haproxy_socket is None:
        raise ZenserveError("--traffic haproxy needs --haproxy-socket PATH (HAProxy's "
                            "stats socket at level admin)")
    reactor = Reactor()
    commands = Commands(args.control or default_control_path(args.port), reactor)
    try:
        supervisor = HaproxySupervisor(RuntimeApi(args.haproxy_socket), release, reactor,
                                       commands)
        supervisor.start(_announce_driving)
    except BaseException:
        commands.close()
        reactor.close()
        raise
    _announce_control(commands)
    try:
        supervisor.serve_forever()
    finally:
        reactor.close()
    return 0


def _announce_control(commands: Commands) -> None:
    """After the readiness line, not before: readers that stop at it are not disturbed."""
    sys.stdout.write(f"{CONTROL_PREFIX}{commands.control_path}\n")
    sys.stdout.flush()


def _announce_driving(address: str) -> None:
    sys.stdout.write(f"{HAPROXY_READY_PREFIX}{address}\n")
    sys.stdout.flush()
