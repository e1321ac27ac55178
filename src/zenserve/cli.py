"""`zenserve` command line: parse arguments, then hand over to one command module."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from types import ModuleType

from zenserve import __version__
from zenserve.errors import ZenserveError

# Subcommand name -> module under zenserve.commands. Each module defines
# HELP, add_arguments(parser) and run(args) -> exit status. Only the chosen
# command's module is imported, so `zenserve ask` (a readiness probe) starts
# fast and a broken optional part cannot break the other commands.
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


def _chosen_command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word that is one)."""
    return next((word for word in argv if word in COMMANDS), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the chosen command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="zenserve",
        description="The zen protocol of chapter 7, served by every architecture.",
    )
    parser.add_argument("--version", action="version", version=f"zenserve {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = None if argv is None else _chosen_command(argv)
    for name in COMMANDS:
        if chosen is not None and name != chosen:
            subparsers.add_parser(name)  # listed, not loaded: it is not the one being run
            continue
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
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(words).parse_args(words)
    configure_logging(getattr(args, "verbose", False))
    try:
        status: int = _command_module(args.command).run(args)
    except ZenserveError as error:
        print(f"zenserve {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `zenserve ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status
