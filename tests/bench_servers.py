"""Tiny zen servers with test-chosen behaviour, for testing the load generator.

Each runs an asyncio loop in a thread on 127.0.0.1, port 0, and counts what it
did; the counts are read after ``stop()``, which joins the thread.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from dataclasses import dataclass
from types import TracebackType

from zenserve.protocol import request_framer
from zenserve.service import pep20_table

JOIN_TIMEOUT = 10.0
# Between the two halves of a split answer: long enough that the client reads them apart.
SPLIT_PAUSE = 0.002


@dataclass
class Behaviour:
    """What the server does differently from a correct zen server."""

    delay: float = 0.0  # seconds before each answer
    wrong_every: int = 0  # every Nth answer is wrong (0: never)
    pause_after: int | None = None  # after this many answers, stall every answer ...
    pause_for: float = 0.0  # ... for this long
    hang_up: bool = False  # close without answering (end of stream)
    reset: bool = False  # reset without answering
    silent: bool = False  # read questions, never answer
    # hang_up, reset and silent start after this many answers on each connection
    misbehave_after: int = 0
    split: bool = False  # send each answer in two writes, a moment apart


class TestServer:
    """A zen server in a thread; ``answered`` counts answers sent, ``accepted`` connections."""

    __test__ = False  # not a pytest test class

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.table = pep20_table()
        self.answered = 0
        self.accepted = 0
        self.port = 0
        self._pause_until = 0.0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve_in_thread, daemon=True)

    def __enter__(self) -> TestServer:
        self._thread.start()
        if not self._ready.wait(JOIN_TIMEOUT):
            raise RuntimeError("test server did not start")
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(JOIN_TIMEOUT)
        assert not self._thread.is_alive(), "test server thread did not stop"

    def _serve_in_thread(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._converse, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopped.wait()
            server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

    async def _converse(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        framer = request_framer()
        answered_here = 0
        try:
            while data := await reader.read(4096):
                for question in framer.feed(data):
                    if not await self._answer(question, writer, answered_here):
                        return
                    answered_here += 1
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _answer(self, question: bytes, writer: asyncio.StreamWriter,
                      answered_here: int) -> bool:
        behaviour = self.behaviour
        misbehaving = answered_here >= behaviour.misbehave_after
        if behaviour.silent and misbehaving:
            return True
        if behaviour.hang_up and misbehaving:
            return False
        if behaviour.reset and misbehaving:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        loop = asyncio.get_running_loop()
        if behaviour.pause_after is not None and self.answered == behaviour.pause_after:
            self._pause_until = loop.time() + behaviour.pause_for
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if self._pause_until > loop.time():
            await asyncio.sleep(self._pause_until - loop.time())
        answer = self.table.get(question, b"Error: unknown aphorism.")
        self.answered += 1
        if behaviour.wrong_every and self.answered % behaviour.wrong_every == 0:
            answer = b"Wrong."
        if behaviour.split:
            writer.write(answer[:2])
            await writer.drain()
            await asyncio.sleep(SPLIT_PAUSE)
            answer = answer[2:]
        writer.write(answer)
        return True
