"""Question -> answer: the PEP 20 table, a user's table, or a user's callable.

A ``Service`` is what every architecture calls; it applies the simulated cost
and turns a failing user callable into ``Error: internal error.`` so one bad
request never takes a server down.
"""

from __future__ import annotations

import codecs
import contextlib
import importlib
import io
import json
import logging
import random
import re
import sys
import threading
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

from zenserve.cost import FREE, Cost, CostKind
from zenserve.errors import ZenserveError
from zenserve.protocol import (
    ERROR_FAULT,
    ERROR_INTERNAL,
    ERROR_UNKNOWN,
    is_valid_answer,
    is_valid_question,
)

log = logging.getLogger("zenserve.service")

Handler = Callable[[bytes], bytes]

# Distinct handler failures logged with a traceback; past this, a hostile stream
# of varied failures could fill memory and the log, so later ones go unlogged.
_MAX_DISTINCT_FAILURES = 100

# "Beautiful is better than ugly." -> b"Beautiful is better than?" : b"Ugly."
_BETTER_THAN = re.compile(r"^(\w+ is better than) (\w+)\.$")


_IMPORT_THIS_LOCK = threading.Lock()


def _zen_of_python() -> str:
    """PEP 20's text, from the ``this`` module, imported once and silently."""
    with _IMPORT_THIS_LOCK:
        if "this" not in sys.modules:
            # `import this` prints the Zen. redirect_stdout swaps the process-wide
            # sys.stdout, so two threads doing it at once can leave it swapped for
            # good (seen under `zenserve soak`): import once, under a lock.
            with contextlib.redirect_stdout(io.StringIO()):
                import this  # noqa: F401
    return codecs.decode(sys.modules["this"].s, "rot13")


def pep20_table() -> dict[bytes, bytes]:
    """Every "X is better than Y." line of PEP 20, as ``X is better than?`` -> ``Y.``."""
    zen = _zen_of_python()
    table: dict[bytes, bytes] = {}
    for line in zen.splitlines():
        match = _BETTER_THAN.match(line.strip())
        if match:
            question, answer = match.groups()
            table[f"{question}?".encode()] = f"{answer.capitalize()}.".encode()
    return table


def load_table(path: Path) -> dict[bytes, bytes]:
    """Read a question -> answer table from a TOML or JSON file, checking every entry."""
    # The name chooses the parser: *.json is JSON, any other name TOML.
    kind = "JSON" if path.suffix == ".json" else "TOML"
    accepted = "a table file is TOML, or JSON if its name ends in .json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ZenserveError(f"cannot read aphorisms file {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ZenserveError(f"{path}: not UTF-8 text (byte {error.start}); {accepted}") from None
    try:
        data = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ZenserveError(f"{path}: not valid {kind} ({accepted}): {error}") from None
    if isinstance(data, dict) and set(data) == {"aphorisms"}:
        data = data["aphorisms"]
    return validate_table(data, str(path))


def validate_table(data: object, origin: str) -> dict[bytes, bytes]:
    """Check a parsed table; every key is one question, every value one answer."""
    if not isinstance(data, Mapping) or not data:
        raise ZenserveError(f"{origin}: expected a non-empty table of question = answer")
    table: dict[bytes, bytes] = {}
    for question, answer in data.items():
        if not isinstance(question, str) or not isinstance(answer, str):
            raise ZenserveError(f"{origin}: entry {question!r} must map text to text")
        question_bytes, answer_bytes = question.encode(), answer.encode()
        if not is_valid_question(question_bytes):
            raise ZenserveError(
                f"{origin}: question {question!r} must end with its only '?'"
                " and not start with whitespace"
            )
        if not is_valid_answer(answer_bytes):
            raise ZenserveError(f"{origin}: answer {answer!r} must end with its only '.'")
        table[question_bytes] = answer_bytes
    return table


def import_handler(spec: str) -> Handler:
    """Resolve ``package.module:function`` to a callable taking and returning bytes."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ZenserveError(f"bad service {spec!r}: use package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ZenserveError(f"cannot import service module {module_name!r}: {error}") from None
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise ZenserveError(f"service {spec!r}: {attribute!r} is not a callable in {module_name}")
    return handler  # type: ignore[no-any-return]


class Service:
    """Answers questions. ``answer`` includes the cost; ``lookup`` is the free part.

    Event loops with an ``io`` cost await ``io_delay`` seconds and then call
    ``lookup``; everything else calls ``answer``.
    """

    def __init__(
        self,
        table: Mapping[bytes, bytes] | None = None,
        handler: Handler | None = None,
        cost: Cost = FREE,
        fault_rate: float = 0.0,
    ) -> None:
        if handler is not None and table is not None:
            raise ValueError("give a table or a handler, not both")
        self.table: dict[bytes, bytes] = dict(table) if table is not None else {}
        if handler is None and not self.table:
            self.table = pep20_table()
        self.cost = cost
        self.fault_rate = fault_rate
        self._handler = handler
        self._failures_logged: set[str] = set()
        self.lookup: Handler = self._build_lookup()
        self.io_delay = cost.seconds if cost.kind is CostKind.IO and not cost.is_free else 0.0
        self.answer: Handler = self.lookup if cost.is_free else self._answer_with_cost
        # Built once per request limit and shared by every connection (see ready_answers).
        self._ready_answers: dict[int, dict[bytes, bytes]] = {}

    def ready_answers(self, max_question_bytes: int) -> Mapping[bytes, bytes]:
        """Questions of at most ``max_question_bytes`` whose answer needs no call at all.

        That is the whole table when answering is a plain lookup (no cost, no
        injected faults, no user callable), and nothing otherwise. Conversations
        answer a whole known question straight from it, skipping framing.
        """
        if self._handler is not None or self.fault_rate > 0.0 or not self.cost.is_free:
            return {}
        ready = self._ready_answers.get(max_question_bytes)
        if ready is None:  # two threads may both build it: the same table either way
            # An answer that reads as an error is counted as one: it keeps the long way.
            ready = {question: answer for question, answer in self.table.items()
                     if len(question) <= max_question_bytes and is_valid_question(question)
                     and answer not in (ERROR_UNKNOWN, ERROR_INTERNAL)}
            self._ready_answers[max_question_bytes] = ready
        return ready

    @property
    def calls_user_code(self) -> bool:
        """True when answering calls a user's callable (which may block or switch greenlets)."""
        return self._handler is not None

    @property
    def questions(self) -> list[bytes]:
        """The questions this service knows (empty for a callable service)."""
        return list(self.table)

    def _build_lookup(self) -> Handler:
        if self._handler is not None:
            lookup: Handler = self._call_handler
        else:
            get = self.table.get

            def lookup(question: bytes) -> bytes:
                return get(question, ERROR_UNKNOWN)

        if self.fault_rate > 0.0:
            return self._with_faults(lookup)
        return lookup

    def _with_faults(self, lookup: Handler) -> Handler:
        rate, draw = self.fault_rate, random.random

        def faulty(question: bytes) -> bytes:
            return ERROR_FAULT if draw() < rate else lookup(question)

        return faulty

    def _answer_with_cost(self, question: bytes) -> bytes:
        self.cost.spend()
        return self.lookup(question)

    def _call_handler(self, question: bytes) -> bytes:
        assert self._handler is not None
        try:
            answer = self._handler(question)
        except Exception as error:
            self._log_failure_once(f"raised {type(error).__name__}", error)
            return ERROR_INTERNAL
        if not isinstance(answer, bytes) or not is_valid_answer(answer):
            self._log_failure_once(f"returned {answer!r}, not bytes ending with its only '.'")
            return ERROR_INTERNAL
        return answer

    def _log_failure_once(self, what: str, error: BaseException | None = None) -> None:
        key = what if error is None else f"{type(error).__name__}: {error}"
        if key in self._failures_logged or len(self._failures_logged) >= _MAX_DISTINCT_FAILURES:
            return
        self._failures_logged.add(key)
        log.error("service handler %s (further identical failures are not logged)", what,
                  exc_info=error)
