"""One connection's state in an event loop: listing 7-6's per-socket dicts, as one object."""

from __future__ import annotations

import logging
import math
import socket

from zenserve.conversation import Conversation
from zenserve.net import describe_address
from zenserve.protocol import ERROR_BUSY
from zenserve.servers.first_read import FIRST_READ_BYTES
from zenserve.servers.linger import LINGER_BYTES, drop_input, shut_write_side
from zenserve.stats import Stats

log = logging.getLogger("zenserve.server")



class Connection:
    """A client socket, its conversation, its unsent output and its deadlines."""

    __slots__ = (
        "armed",
        "conversation",
        "deadline",
        "deferred_batches",
        "deferred_questions",
        "eof",
        "fd",
        "interest",
        "known",
        "linger_budget",
        "open",
        "outgoing",
        "read_size",
        "refused",
        "request_started",
        "serial",
        "sock",
        "stats",
    )

    def __init__(self, sock: socket.socket, conversation: Conversation, serial: int,
                 deadline: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.conversation = conversation
        # The answer to a read that is one whole known question, at a request boundary
        # (Conversation.shortcut): the loop answers it without a call into receive,
        # counting it in the conversation's stats (a health probe's are not the server's).
        ready, self.stats = conversation.shortcut()
        self.known = ready.get
        self.serial = serial
        self.open = True
        self.eof = False  # the client half-closed: answer what it asked, then close
        self.interest = 0  # what the loop watches it for (READ | WRITE)
        self.outgoing = bytearray()  # answers the socket could not take yet
        self.read_size = FIRST_READ_BYTES  # what one recv asks for
        self.deadline = deadline
        self.armed = math.inf
        self.request_started = 0.0  # when the unfinished question began (0: none)
        self.deferred_batches = 0  # io cost: receives whose answers are scheduled
        self.deferred_questions = 0
        # After its closing reply: the bytes it may still send, read and dropped (0: not
        # lingering). Its write side is shut; it ends at EOF, this budget or its deadline.
        self.linger_budget = 0
        self.refused = False  # told the server is busy: lingering, never served


def at_rest(connection: Connection) -> bool:
    """True at a request boundary with nothing owed and nothing more sent by the client.

    A lingering connection is at rest: its reply is sent, what it sends is dropped.
    """
    if connection.outgoing or connection.deferred_batches:
        return False
    if connection.linger_budget:
        return True
    if connection.conversation.mid_request:
        return False
    try:
        return not connection.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return True  # reset: nothing more to answer


def refuse_busy(sock: socket.socket, address: object, stats: Stats) -> bool:
    """Past --max-connections: say so, shut the write side and drop what the client sent.

    Never blocks. Returns True when the socket is still open because the client
    has not ended its side: the caller lingers on it (``linger``) or closes it.
    """
    stats.busy += 1
    log.info("Too many connections; %s is told the server is busy", describe_address(address))
    try:
        sock.setblocking(False)
        sock.send(ERROR_BUSY)
    except OSError:
        sock.close()  # gone already
        return False
    if shut_write_side(sock) and drop_input(sock, LINGER_BYTES):
        return True
    sock.close()
    return False
