"""Does this process have descriptors to spare? Checked by each worker before it says ready.

A worker that starts with every descriptor its limit allows never serves
anyone: ``accept()`` takes a descriptor for the new connection before it
looks for one, so it fails with EMFILE even while no client is waiting, and
the worker backs off and warns in a loop. Such a worker refuses to start
instead, naming the limit and the numbers.
"""

from __future__ import annotations

import os
import resource

from zenserve.errors import ZenserveError

# What a worker opens after this check (its signal wake-up pair, an event
# loop's selector and self-pipe: 3 to 4 for most architectures, 10 for
# uvloop, measured), plus room to serve a handful of clients at once.
SPARE_DESCRIPTORS = 16
_OWN_DESCRIPTORS = "/proc/self/fd"


def open_descriptors() -> int:
    """How many descriptors this process holds now."""
    try:
        # listdir opens the directory itself while it reads it: not counted.
        return len(os.listdir(_OWN_DESCRIPTORS)) - 1
    except OSError:  # no /proc: count the hard way, up to the limit
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return sum(1 for fd in range(min(soft, 65536)) if _is_open(fd))


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def require_spare_descriptors(shared_with_workers: int = 0,
                              spare: int = SPARE_DESCRIPTORS) -> None:
    """Raise ``ZenserveError`` unless ``spare`` more descriptors fit under ``ulimit -n``.

    ``shared_with_workers``: how many of those held are one per worker (the
    accept turns of the event loops), so the message can say what they cost.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    held = open_descriptors()
    if held + spare <= soft:
        return
    per_worker = (f" ({shared_with_workers} of them one per worker, to share accepts)"
                  if shared_with_workers else "")
    raise ZenserveError(
        f"it holds {held} descriptors{per_worker} and needs {spare} more to serve, "
        f"but the limit (ulimit -n) is {soft}: raise it to at least {held + spare} "
        f"or use fewer workers")
