"""`zenserve deploy run`: open the listener and the control socket, start the supervisor."""

from __future__ import annotations

import argparse
import logging

from zenserve.deploy.commands import Commands
from zenserve.deploy.control import default_control_path
from zenserve.deploy.reactor import Reactor
from zenserve.deploy.release import load_release
from zenserve.deploy.supervisor import Supervisor
from zenserve.errors import ZenserveError
from zenserve.net import bind_listener, inherited_socket
from zenserve.runner import announce_ready

log = logging.getLogger("zenserve.deploy")


def run_supervisor(args: argparse.Namespace) -> int:
    """Serve ``args.release`` on one port until SIGTERM (exit 0) or SIGINT."""
    release = load_release(args.release)
    if args.traffic != "local":
        raise ZenserveError("--traffic haproxy is not available yet")
    if args.inherit:
        listener, accepting = inherited_socket()
        if not accepting:
            raise ZenserveError("--inherit: the inherited socket is not listening")
    else:
        listener = bind_listener(args.host, args.port, args.backlog)
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
        supervisor.serve_forever()
    finally:
        listener.close()
        reactor.close()
    return 0
