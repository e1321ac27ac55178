"""`zenserve demo`: start a server, ask it like the book's client, stop it gracefully."""

from __future__ import annotations

import argparse
import subprocess
import sys

from zenserve.process import ServerProcess

HELP = "start a server on a free port, ask it three questions, stop it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="single", help="architecture to demo (default single)")


def run(args: argparse.Namespace) -> int:
    with ServerProcess("--arch", args.arch, "-v") as server:
        print(f"Started a {args.arch!r} server at {server.host}:{server.port}")
        ask = [sys.executable, "-m", "zenserve", "ask", server.host, "-p", str(server.port)]
        status = subprocess.run(ask, timeout=30).returncode
        subprocess.run([*ask, "-e"], timeout=30)
        exit_status = server.stop()
        print(f"Server stopped with exit status {exit_status}")
    return status or exit_status
