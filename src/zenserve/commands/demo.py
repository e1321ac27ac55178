"""`zenserve demo`: start a server, ask it like the book's client, stop it gracefully."""

from __future__ import annotations

import argparse
import subprocess
import sys

from zenserve.process import ServerProcess
from zenserve.servers import get_architecture

HELP = "start a server on a free port, ask it three questions, stop it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="single", metavar="NAME",
                        help="architecture to demo (default single; see `zenserve architectures`)")


def run(args: argparse.Namespace) -> int:
    get_architecture(args.arch)  # one line for a typo, not the server's error and then ours
    with ServerProcess("--arch", args.arch, "-v") as server:
        print(f"Started a {args.arch!r} server at {server.host}:{server.port}")
        ask = [sys.executable, "-m", "zenserve", "ask", server.host, "-p", str(server.port)]
        status = subprocess.run(ask, timeout=30).returncode
        subprocess.run([*ask, "-e"], timeout=30)
        exit_status = server.stop()
        print(f"Server stopped with exit status {exit_status}")
    return status or exit_status
