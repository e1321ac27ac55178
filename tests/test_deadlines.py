"""The event loops' timers, in memory: a lazily re-armed heap and the io answer queue."""

from __future__ import annotations

import math
from dataclasses import dataclass

from zenserve.servers.deadlines import AnswersDue, Deadlines


@dataclass(eq=False)
class Timed:
    serial: int
    deadline: float
    armed: float = math.inf
    open: bool = True


def tracked(*deadlines: float) -> tuple[Deadlines[Timed], list[Timed]]:
    heap: Deadlines[Timed] = Deadlines()
    items = [Timed(serial, deadline) for serial, deadline in enumerate(deadlines)]
    for item in items:
        heap.add(item)
    return heap, items


def test_the_nearest_deadline_and_what_has_passed() -> None:
    heap, (_, b, c) = tracked(5.0, 1.0, 3.0)
    assert heap.nearest() == 1.0
    assert heap.expired(0.5) == []
    assert heap.expired(3.0) == [b, c]
    assert heap.nearest() == 5.0


def test_a_deadline_moved_later_is_rearmed_not_expired() -> None:
    heap, (a,) = tracked(1.0)
    a.deadline = 4.0  # activity: the loop only stores the new time
    assert heap.expired(2.0) == []
    assert heap.nearest() == 4.0
    assert heap.expired(4.0) == [a]


def test_a_deadline_moved_earlier_takes_effect_once_armed() -> None:
    heap, (a,) = tracked(60.0)
    a.deadline = 10.0
    heap.arm(a)
    assert heap.nearest() == 10.0
    assert heap.expired(10.0) == [a]
    assert heap.expired(60.0) == []  # the superseded entry is dropped, not expired again


def test_discarded_and_closed_items_never_expire() -> None:
    heap, (a, b) = tracked(1.0, 2.0)
    heap.discard(a)
    a.open = False
    assert heap.expired(10.0) == [b]


def test_an_expired_item_can_be_tracked_again() -> None:
    heap, (a,) = tracked(1.0)
    assert heap.expired(1.0) == [a]
    a.deadline = 5.0
    heap.arm(a)
    assert heap.expired(5.0) == [a]


def test_stale_entries_do_not_pile_up() -> None:
    """A client starting questions in a hurry moves its deadline earlier over and over."""
    heap, items = tracked(*[1000.0] * 10)
    for step in range(10_000):
        item = items[step % 10]
        item.deadline = 999.0 - step * 0.01
        heap.arm(item)
    assert len(heap.heap) <= 4 * len(items) + 64 + 1
    expired = heap.expired(1000.0)
    assert sorted(item.serial for item in expired) == list(range(10))


def test_io_answers_come_due_in_order() -> None:
    due: AnswersDue[Timed] = AnswersDue(delay=0.5)
    first, second = Timed(1, 0.0), Timed(2, 0.0)
    due.schedule(1.0, first, [b"a?"])
    due.schedule(1.2, second, [b"b?"])
    due.schedule(1.3, first, [b"c?"])
    assert due.nearest() == 1.5
    assert list(due.pop_due(1.6)) == [(first, [b"a?"])]
    assert list(due.pop_due(2.0)) == [(second, [b"b?"]), (first, [b"c?"])]
    assert due.nearest() == math.inf
