"""Counters of several worker processes, gathered in one shared-memory table for the parent.

Each worker keeps bumping its own plain-int ``Stats`` (the hot path does not
change at all under ``--workers``); a daemon thread copies a snapshot into the
worker's row of an anonymous shared mapping every half second and once more
when the worker stops. The parent sums the rows when Prometheus scrapes.

Why this and not prometheus_client's multiprocess mode: that mode turns every
increment into a call that takes a lock and writes a memory-mapped file, which
is exactly the per-request cost the plain ints exist to avoid, and it needs a
directory of files cleaned up after each dead worker. Here a request costs an
integer increment; the price is that a worker killed with SIGKILL loses at most
its last half second of counts.
"""

from __future__ import annotations

import mmap
import struct
import threading

from zenserve.signals import start_leaving_signals_to_main
from zenserve.stats import Stats

FIELDS: tuple[str, ...] = Stats.__slots__
# A dead worker holds no connections: its gauges are dropped, not carried over.
GAUGES = frozenset({"connections_active"})
# Often enough for a scrape to look live, rarely enough to cost nothing.
PUBLISH_INTERVAL = 0.5
# A row is a sequence number (odd while its worker writes) followed by the counters.
_SEQUENCE = struct.Struct("<Q")
_COUNTERS = struct.Struct(f"<{len(FIELDS)}q")
ROW_BYTES = _SEQUENCE.size + _COUNTERS.size
# A reader that keeps finding a row mid-write takes it as it is after this many
# tries: the writer may have been killed in the middle of its (tiny) copy.
_READ_ATTEMPTS = 100


class SharedStatsTable:
    """One row of counters per worker slot, in memory shared across ``fork``.

    Workers call ``publish`` on their own row; the parent calls ``totals`` (from
    its metrics thread) and ``retire`` (when it reaps a worker, before the slot
    is refilled), which keeps a dead worker's counts in the totals.
    """

    def __init__(self, rows: int) -> None:
        # fileno -1: an anonymous mapping, MAP_SHARED, so forked children write
        # into the very pages the parent reads.
        self._memory = mmap.mmap(-1, ROW_BYTES * max(rows, 1))
        self.rows = rows
        self._retired = dict.fromkeys(FIELDS, 0)
        self._lock = threading.Lock()  # the parent's scrape thread vs its reaping loop

    def publish(self, row: int, stats: Stats) -> None:
        """Copy ``stats`` into ``row`` (called in the worker that owns the row)."""
        offset = row * ROW_BYTES
        (sequence,) = _SEQUENCE.unpack_from(self._memory, offset)
        _SEQUENCE.pack_into(self._memory, offset, sequence + 1)
        _COUNTERS.pack_into(self._memory, offset + _SEQUENCE.size,
                            *[getattr(stats, name) for name in FIELDS])
        _SEQUENCE.pack_into(self._memory, offset, sequence + 2)

    def read_row(self, row: int) -> dict[str, int]:
        """The last complete snapshot in ``row``."""
        offset = row * ROW_BYTES
        for _ in range(_READ_ATTEMPTS):
            (before,) = _SEQUENCE.unpack_from(self._memory, offset)
            values = _COUNTERS.unpack_from(self._memory, offset + _SEQUENCE.size)
            (after,) = _SEQUENCE.unpack_from(self._memory, offset)
            if before == after and not before % 2:
                break
        return dict(zip(FIELDS, values, strict=True))

    def totals(self) -> dict[str, int]:
        """Every live row plus every retired worker's counts."""
        with self._lock:
            totals = dict(self._retired)
            for row in range(self.rows):
                for name, value in self.read_row(row).items():
                    totals[name] += value
        return totals

    def retire(self, row: int) -> None:
        """Fold a dead worker's counters into the totals and clear its row for the next one."""
        with self._lock:
            for name, value in self.read_row(row).items():
                if name not in GAUGES:
                    self._retired[name] += value
            offset = row * ROW_BYTES
            self._memory[offset : offset + ROW_BYTES] = bytes(ROW_BYTES)

    def close(self) -> None:
        self._memory.close()


class StatsPublisher:
    """A daemon thread in a worker that publishes its ``Stats`` every ``PUBLISH_INTERVAL``."""

    def __init__(self, table: SharedStatsTable, row: int, stats: Stats) -> None:
        self._table = table
        self._row = row
        self._stats = stats
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zenserve-stats", daemon=True)

    def start(self) -> None:
        start_leaving_signals_to_main(self._thread)

    def stop(self) -> None:
        """Stop the thread and publish the final counts."""
        self._stopping.set()
        self._thread.join(timeout=2 * PUBLISH_INTERVAL)
        self._table.publish(self._row, self._stats)

    def _run(self) -> None:
        while not self._stopping.wait(PUBLISH_INTERVAL):
            self._table.publish(self._row, self._stats)
