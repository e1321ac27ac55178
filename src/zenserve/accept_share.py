"""Workers sharing one listener share its connections too: each says how many it holds.

With one listening socket inherited by every worker, whichever worker is awake
when connections queue up takes them all: a load generator that opens 10
connections at once lands all 10 on one worker, and ``--workers 2`` then adds
nothing (measured in benchmarks/RESULTS.md). So every worker publishes how many
connections it holds in a table in memory shared across fork, and watches the
listener only while no other worker holds fewer. A worker that stops watching
("pauses") hands the turn to the peers that should watch now by writing to
their eventfd, which their loops watch; a paused worker also resumes by itself
after ``PAUSE_SECONDS`` and takes one connection, so a stalled peer delays a
client by at most that long and never strands it.

The table changes once per connection, never per request. A slot is ABSENT
while its worker does not accept (starting, backing off, stopping, or dead: the
supervisor vacates the slot of every worker it reaps).

``AcceptTurns`` is what every event loop does with its share (when to pause,
resume, and take one connection itself); each loop supplies only the
mechanics of watching its listener and of one timer (``ListenerSwitch``).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from collections.abc import Callable
from typing import Protocol

# How long a paused worker waits for its peers to take a queued connection
# before it takes it itself: a turn of a loop busy with answers is far shorter.
PAUSE_SECONDS = 0.005
ABSENT, WATCHING, PAUSED = 0, 1, 2
_ROW = struct.Struct("<qq")  # connections held, state


class AcceptShares:
    """The table and one eventfd per worker slot, created by the supervisor before any fork."""

    def __init__(self, slots: int) -> None:
        self.slots = max(slots, 1)
        # fileno -1: an anonymous MAP_SHARED mapping, the same pages in every forked worker.
        self._memory = mmap.mmap(-1, _ROW.size * self.slots)
        self._table = struct.Struct("<" + "qq" * self.slots)
        self._turns: list[int] = []
        try:
            for _ in range(self.slots):
                self._turns.append(os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC))
        except OSError:  # out of descriptors: give back the ones already made
            self.close()
            raise

    def for_worker(self, slot: int) -> AcceptShare:
        """The view of the worker in ``slot`` (called in that worker, after the fork)."""
        return AcceptShare(self, slot)

    def vacate(self, slot: int) -> None:
        """The worker in ``slot`` is gone: nobody should leave connections to it."""
        self.write(slot, 0, ABSENT)

    def rows(self) -> list[tuple[int, int]]:
        """(connections held, state) of every slot."""
        flat = self._table.unpack_from(self._memory, 0)
        return list(zip(flat[0::2], flat[1::2], strict=True))

    def write(self, slot: int, held: int, state: int) -> None:
        _ROW.pack_into(self._memory, slot * _ROW.size, held, state)

    def turn_fd(self, slot: int) -> int:
        return self._turns[slot]

    def hand_turn(self, slot: int) -> None:
        """Wake the worker in ``slot``: it should watch the listener again."""
        with contextlib.suppress(BlockingIOError):  # already woken, not yet read
            os.eventfd_write(self._turns[slot], 1)

    def close(self) -> None:
        for fd in self._turns:
            os.close(fd)
        self._memory.close()


class AcceptShare:
    """One worker's side of the table: what it holds, and whether it should watch the listener."""

    def __init__(self, shares: AcceptShares, slot: int) -> None:
        self._shares = shares
        self._slot = slot
        self._held = 0
        self._state = ABSENT

    def fileno(self) -> int:
        """Readable when a peer hands this worker the turn to watch the listener."""
        return self._shares.turn_fd(self._slot)

    @property
    def paused(self) -> bool:
        return self._state == PAUSED

    def watch(self, held: int) -> None:
        """This worker watches the listener (again), holding ``held`` connections."""
        self._held, self._state = held, WATCHING
        self._shares.write(self._slot, held, WATCHING)

    def withdraw(self) -> None:
        """This worker does not accept (backing off or stopping): nobody should wait for it."""
        self._state = ABSENT
        self._shares.write(self._slot, self._held, ABSENT)
        self._hand_turns()

    def pause(self) -> None:
        """This worker stops watching because a peer holds fewer; that peer gets the turn."""
        self._state = PAUSED
        self._shares.write(self._slot, self._held, PAUSED)
        self._hand_turns()

    def hold(self, held: int) -> None:
        """This worker now holds ``held`` connections (on every accept and close)."""
        self._held = held
        if self._state != ABSENT:
            self._shares.write(self._slot, held, self._state)
            self._hand_turns()

    def should_watch(self) -> bool:
        """True unless another accepting worker holds fewer connections than this one."""
        held = self._held
        return not any(state != ABSENT and peer_held < held
                       for slot, (peer_held, state) in enumerate(self._shares.rows())
                       if slot != self._slot)

    def take_turn(self) -> None:
        """Clear this worker's wake-up (call when its eventfd is readable)."""
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.fileno())

    def _hand_turns(self) -> None:
        """Wake every paused peer that no accepting worker out-holds any more."""
        rows = self._shares.rows()
        accepting = [held for held, state in rows if state != ABSENT]
        if not accepting:
            return
        fewest = min(accepting)
        for slot, (held, state) in enumerate(rows):
            if slot != self._slot and state == PAUSED and held <= fewest:
                self._shares.hand_turn(slot)


class ListenerSwitch(Protocol):
    """What ``AcceptTurns`` asks of a server's loop: its own way to watch, wait and accept."""

    def connections_held(self) -> int:
        """The connections this worker holds now."""

    def may_watch_listener(self) -> bool:
        """False while the server stops or backs off from accept failures."""

    def watch_listener(self) -> None:
        """Watch the listener for new connections (nothing if already watched)."""

    def unwatch_listener(self) -> None:
        """Stop watching the listener (nothing if not watched)."""

    def start_pause_timer(self, seconds: float, expired: Callable[[], None]) -> None:
        """Call ``expired`` after ``seconds``, unless ``cancel_pause_timer`` comes first."""

    def cancel_pause_timer(self) -> None:
        """Forget the pause timer, if one runs."""

    def accept_queued(self) -> None:
        """Accept what the listener holds now, asking ``may_accept`` before each accept."""


class AcceptTurns:
    """One worker's accepting under --workers: pause while a peer holds fewer, resume, take one."""

    __slots__ = ("_switch", "_take_one", "share")

    def __init__(self, share: AcceptShare, switch: ListenerSwitch) -> None:
        self.share = share
        self._switch = switch
        self._take_one = False

    def watching(self) -> None:
        """The server (again) watches the listener: peers may leave connections to it."""
        self.share.watch(self._switch.connections_held())

    def may_accept(self) -> bool:
        """Before each accept. False: a peer holding fewer should take it; this worker paused."""
        if self._take_one:  # what the peers left queued for PAUSE_SECONDS is ours
            self._take_one = False
            return True
        if self.share.should_watch():
            return True
        switch = self._switch
        switch.unwatch_listener()
        self.share.pause()
        switch.start_pause_timer(PAUSE_SECONDS, self._pause_over)
        return False

    def held_changed(self) -> None:
        """A connection opened or ended: publish it, and watch again if now due."""
        share = self.share
        share.hold(self._switch.connections_held())
        if share.paused and share.should_watch():
            self.resume()

    def on_turn(self) -> None:
        """The share's eventfd is readable: a peer handed this worker the turn."""
        self.share.take_turn()
        if self.share.paused:
            self.resume()

    def resume(self, take_one: bool = False) -> None:
        """Watch again: handed the turn, holding no more than any peer, or tired of waiting."""
        switch = self._switch
        switch.cancel_pause_timer()
        if not switch.may_watch_listener():  # stopping, or backing off
            return
        switch.watch_listener()
        self.watching()
        if take_one:
            self._take_one = True
            switch.accept_queued()
            self._take_one = False  # even if it accepted nothing

    def withdraw(self) -> None:
        """The server stops accepting (stopping, or backing off): nobody should wait for it."""
        self._switch.cancel_pause_timer()
        self._take_one = False
        self.share.withdraw()

    def _pause_over(self) -> None:
        self.resume(take_one=True)
