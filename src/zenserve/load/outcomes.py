"""What can happen to a request besides a correct answer: the error kinds, defined once.

- ``refused``: a connection attempt failed (refused, or any other connect error).
- ``reset``: the connection broke with an error (reset, broken pipe) while a
  request waited for its answer.
- ``timeout``: no whole answer within the timeout after sending (or no
  connection within the timeout after connecting); the connection is dropped.
- ``wrong_answer``: a whole answer arrived that is not the correct one for the
  request (see ``zenserve.load.mix``), or an answer nobody asked for, or one
  longer than the answer framer allows.
- ``short_read``: the server closed the connection (end of stream) before the
  whole answer arrived.

A request with a correct answer is counted in ``requests``; every other
request that finished is counted under exactly one kind here.
"""

from __future__ import annotations

ERROR_KINDS = ("refused", "reset", "timeout", "wrong_answer", "short_read")
REFUSED, RESET, TIMEOUT, WRONG_ANSWER, SHORT_READ = range(len(ERROR_KINDS))


def no_errors() -> dict[str, int]:
    """A zero count for every kind, in the stable order."""
    return dict.fromkeys(ERROR_KINDS, 0)
