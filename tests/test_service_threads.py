"""The service's table may be built from many threads at once (soak, load generators)."""

from __future__ import annotations

import sys
import threading

from zenserve.service import pep20_table


def test_pep20_table_from_many_threads_leaves_stdout_alone() -> None:
    stdout = sys.stdout
    tables: list[dict[bytes, bytes]] = []

    def build() -> None:
        for _ in range(200):
            tables.append(pep20_table())

    threads = [threading.Thread(target=build) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
    assert sys.stdout is stdout
    assert len(tables) == 1600 and all(table == tables[0] for table in tables)
