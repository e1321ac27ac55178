"""`zenserve ask`: listing 7-2's client, usable from scripts (exit status, one-line reasons)."""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from zenserve.client import ZenClient
from zenserve.commands.options import add_address_arguments
from zenserve.service import load_table, pep20_table

HELP = "ask a zen server questions and check its answers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_address_arguments(parser, "server address", listening=False)
    parser.add_argument("-n", type=int, default=3, metavar="N",
                        help="how many random questions to ask (default 3)")
    parser.add_argument("-q", "--question", action="append", default=[], metavar="TEXT",
                        help="ask this question instead (repeatable; any answer is accepted)")
    parser.add_argument("-e", action="store_true",
                        help="send half a question and leave (cause an error, as the book does)")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="give up after S seconds without progress (default 5)")
    parser.add_argument("--aphorisms", type=Path, metavar="FILE",
                        help="the table the server answers from (default: PEP 20)")


def run(args: argparse.Namespace) -> int:
    table = load_table(args.aphorisms) if args.aphorisms else pep20_table()
    try:
        with ZenClient(args.host, args.port, timeout=args.timeout) as client:
            if args.e:
                client.send(next(iter(table))[:-1])
                return 0
            return _ask_all(client, table, args)
    except TimeoutError:
        return _fail(f"no answer from {args.host}:{args.port} within {args.timeout:g}s")
    except OSError as error:
        return _fail(f"{args.host}:{args.port}: {error.strerror or error}")


def _ask_all(client: ZenClient, table: dict[bytes, bytes], args: argparse.Namespace) -> int:
    if args.question:
        questions = [text.encode() for text in args.question]
    elif args.n <= len(table):
        questions = random.sample(list(table), args.n)
    else:
        questions = random.choices(list(table), k=args.n)
    for question in questions:
        answer = client.ask(question)
        print(question.decode(errors="replace"), answer.decode(errors="replace"))
        expected = table.get(question) if not args.question else None
        if expected is not None and answer != expected:
            return _fail(f"wrong answer to {question!r}: {answer!r}, expected {expected!r}")
    return 0


def _fail(reason: str) -> int:
    print(f"zenserve ask: {reason}", file=sys.stderr)
    return 1
