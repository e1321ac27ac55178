"""asyncio event loops: the one module of zenserve that imports uvloop.

uvloop (libuv's event loop for asyncio) is an optional dependency
(``pip install 'zenserve[fast]'``), used by the ``uvloop`` architecture and by
the load generator. It is imported here and only when a uvloop is asked for,
so importing this module costs nothing and works without uvloop installed.
"""

from __future__ import annotations

import asyncio


def require_uvloop() -> None:
    """Import uvloop now: ImportError (with ``name == "uvloop"``) when it is not installed."""
    import uvloop  # noqa: F401


def new_uvloop() -> asyncio.AbstractEventLoop:
    """A new uvloop event loop (ImportError when uvloop is not installed)."""
    import uvloop

    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` is a uvloop (asyncio's own loops are not)."""
    return type(loop).__module__.startswith("uvloop")
