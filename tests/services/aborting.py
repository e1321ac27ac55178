"""A service whose process dies hard (SIGABRT, as a segfault would) on ``Abort now?``."""

from __future__ import annotations

import os
import resource

from zenserve.protocol import ERROR_UNKNOWN
from zenserve.service import pep20_table

TABLE = pep20_table()
ABORT_QUESTION = b"Abort now?"


def answer(question: bytes) -> bytes:
    if question == ABORT_QUESTION:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file left behind
        os.abort()
    return TABLE.get(question, ERROR_UNKNOWN)
