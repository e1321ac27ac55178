"""A service that raises on every question starting with ``Raise``: crash isolation."""

from __future__ import annotations

from zenserve.protocol import ERROR_UNKNOWN
from zenserve.service import pep20_table

TABLE = pep20_table()
FAILURE_MESSAGE = "this service fails on purpose"


def answer(question: bytes) -> bytes:
    if question.startswith(b"Raise"):
        raise RuntimeError(FAILURE_MESSAGE)
    return TABLE.get(question, ERROR_UNKNOWN)
