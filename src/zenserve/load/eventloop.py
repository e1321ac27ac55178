"""The load generator's event loop: uvloop when installed (and asked for), else asyncio."""

from __future__ import annotations

import asyncio

from zenserve.errors import ZenserveError
from zenserve.loops import is_uvloop, new_uvloop

EVENT_LOOPS = ("auto", "uvloop", "asyncio")


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """A new loop of ``kind``: ``auto`` prefers uvloop and falls back to asyncio."""
    if kind not in EVENT_LOOPS:
        raise ZenserveError(f"unknown event loop {kind!r}: use one of {', '.join(EVENT_LOOPS)}")
    if kind == "asyncio":
        return asyncio.new_event_loop()
    try:
        return new_uvloop()
    except ImportError:
        if kind == "uvloop":
            raise ZenserveError("uvloop is not installed (pip install 'zenserve[fast]')") from None
        return asyncio.new_event_loop()


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which kind of loop this is."""
    return "uvloop" if is_uvloop(loop) else "asyncio"
