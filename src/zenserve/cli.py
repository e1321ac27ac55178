"""`zenserve` command line: parse arguments, then hand over to one command module."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType

from zenserve import __version__
from zenserve.errors import ZenserveError

# Subcommand name -> module under zenserve.commands. Each module defines
# HELP, add_arguments(parser) and run(args) -> exit status.
COMMANDS = {
    "serve": "serve",
    "ask": "ask",
    "architectures": "architectures",
    "demo": "demo",
    "bench": "bench",
    "compare": "compare",
    "deploy": "deploy",
    "soak": "soak",
}


def _command_module(name: str) -> ModuleType:
    return importlib.import_module(f"zenserve.commands.{COMMANDS[name]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zenserve",
        description="The zen protocol of chapter 7, served by every architecture.",
    )
    parser.add_argument("--version", action="version", version=f"zenserve {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = _command_module(name)
        subparser = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(subparser)
    return parser


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(process)d %(levelname)s %(message)s",
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(getattr(args, "verbose", False))
    try:
        status: int = _command_module(args.command).run(args)
    except ZenserveError as error:
        print(f"zenserve {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status
