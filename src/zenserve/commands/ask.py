"""`zenserve ask`: listing 7-2's client, usable from scripts (exit status, one-line reasons)."""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from zenserve.client import ZenClient
from zenserve.commands.options import add_address_arguments
from zenserve.cost import parse_duration
from zenserve.errors import ZenserveError
from zenserve.net import describe_address
from zenserve.protocol import ERROR_UNKNOWN
from zenserve.service import load_table, pep20_table

HELP = "ask a zen server questions and check its answers"
# Every error answer starts so (protocol.ERROR_*). With -q only "unknown
# aphorism" passes: the server works, it just does not know the question; an
# internal error, busy, too long or injected fault means it did not serve it.
ERROR_PREFIX = b"Error: "


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_address_arguments(parser, "server address", listening=False)
    parser.add_argument("-n", type=int, default=3, metavar="N",
                        help="how many random questions to ask (default 3)")
    parser.add_argument("-q", "--question", action="append", default=[], metavar="TEXT",
                        help="ask this question instead (repeatable; any answer is accepted "
                             "but an error other than 'Error: unknown aphorism.')")
    parser.add_argument("-e", action="store_true",
                        help="send half a question and leave (cause an error, as the book does)")
    parser.add_argument("--timeout", default="5s", metavar="DURATION",
                        help="give up after this long without progress (default 5s)")
    parser.add_argument("--aphorisms", type=Path, metavar="FILE",
                        help="the table the server answers from (default: PEP 20)")


def run(args: argparse.Namespace) -> int:
    timeout = _checked(args)
    table = load_table(args.aphorisms) if args.aphorisms else pep20_table()
    server = describe_address((args.host, args.port))
    try:
        with ZenClient(args.host, args.port, timeout=timeout) as client:
            if args.e:
                client.send(next(iter(table))[:-1])
                return 0
            return _ask_all(client, table, args)
    except TimeoutError:
        return _fail(f"no answer from {server} within {timeout:g}s")
    except OSError as error:
        return _fail(f"{server}: {error.strerror or error}")


def _checked(args: argparse.Namespace) -> float:
    """Refuse what cannot work before connecting; return the timeout in seconds."""
    if args.n < 0:
        raise ZenserveError("-n must be 0 or more")
    timeout = parse_duration(args.timeout)
    if timeout <= 0:
        raise ZenserveError("--timeout must be more than zero")
    for text in args.question:
        # Without its only '?' at the end, a question is never answered (the
        # server waits for the rest) or is several questions with one read.
        if not text.endswith("?") or text.count("?") != 1:
            raise ZenserveError(f"-q {text!r}: a question ends with its only '?'")
    return timeout


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
        if answer.startswith(ERROR_PREFIX) and answer != ERROR_UNKNOWN:
            return _fail(f"the server answered {question!r} with {answer!r}")
    return 0


def _fail(reason: str) -> int:
    print(f"zenserve ask: {reason}", file=sys.stderr)
    return 1
