"""The callback server (listing 7-7's protocol) on uvloop, libuv's event loop for asyncio.

This is the one file of zenserve that imports uvloop: the protocol, the
accepting, the sweep and the shutdown are asyncio-callbacks' own, only the
loop differs. Importing this module without uvloop installed fails, and the
registry turns that into a one-line error.
"""

from __future__ import annotations

import asyncio

import uvloop

from zenserve.servers import asyncio_callbacks


class Server(asyncio_callbacks.Server):
    """asyncio-callbacks' server on a uvloop event loop."""

    @staticmethod
    def new_event_loop() -> asyncio.AbstractEventLoop:
        return uvloop.new_event_loop()
