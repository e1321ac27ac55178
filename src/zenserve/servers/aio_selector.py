"""An epoll selector for asyncio's loop, as the ``selectors`` module's, with a leaner ``select``.

asyncio's loop calls its selector's ``select`` once per turn, and at one
connection a turn is a request (two for a coroutine). ``selectors.EpollSelector``
spends a fifth of the Python work of such a turn there: ``max()`` for the
number of events (a builtin that parses keywords and builds an iterator), a
method call per ready descriptor to find its key, and the events worked out in
four statements. This one keeps the same contract (``selectors.BaseSelector``;
the asyncio loop takes any selector) and does the same with a dict lookup and
one expression per ready descriptor.
"""

from __future__ import annotations

import math
import select
from collections.abc import Iterator, Mapping
from selectors import EVENT_READ, EVENT_WRITE, BaseSelector, SelectorKey
from typing import Any

from zenserve.errors import ZenserveError

_EVENTS = EVENT_READ | EVENT_WRITE
EPOLLIN = select.EPOLLIN if hasattr(select, "epoll") else 1
# An epoll event other than "readable" wakes writers, other than "writable"
# wakes readers (errors and hang-ups wake both), as in selectors.EpollSelector.
_NOT_READABLE = ~select.EPOLLIN if hasattr(select, "epoll") else 0
_NOT_WRITABLE = ~select.EPOLLOUT if hasattr(select, "epoll") else 0


def _descriptor(fileobj: Any) -> int:
    """The descriptor of ``fileobj`` (an int, or an object with ``fileno()``)."""
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


def _epoll_mask(events: int) -> int:
    return ((select.EPOLLIN if events & EVENT_READ else 0)
            | (select.EPOLLOUT if events & EVENT_WRITE else 0))


class _KeysByFile(Mapping[Any, SelectorKey]):
    """``get_map()``: the registered keys, looked up by file object or descriptor."""

    def __init__(self, selector: LeanEpollSelector) -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector.registered)

    def __getitem__(self, fileobj: Any) -> SelectorKey:
        return self._selector.get_key(fileobj)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._selector.registered)


class LeanEpollSelector(BaseSelector):
    """``selectors.EpollSelector``'s behaviour; see the module's docstring for the difference."""

    def __init__(self) -> None:
        if not hasattr(select, "epoll"):
            raise ZenserveError("this platform has no epoll")
        self._epoll = select.epoll()
        self.registered: dict[int, SelectorKey] = {}  # by descriptor
        # What select() reports for a descriptor watched for reading that epoll
        # says is readable and nothing else, the common case: made once, not per turn.
        self._readable: dict[int, tuple[SelectorKey, int]] = {}

    def fileno(self) -> int:
        """The epoll descriptor."""
        return self._epoll.fileno()

    def _lookup(self, fileobj: Any) -> int:
        if type(fileobj) is int and fileobj >= 0:  # what asyncio's loop passes
            return fileobj
        try:
            return _descriptor(fileobj)
        except ValueError:
            # A closed file object has no descriptor any more: find it by identity.
            for key in self.registered.values():
                if key.fileobj is fileobj:
                    return key.fd
            raise

    def register(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        if not events or events & ~_EVENTS:
            raise ValueError(f"Invalid events: {events!r}")
        fd = self._lookup(fileobj)
        if fd in self.registered:
            raise KeyError(f"{fileobj!r} (FD {fd}) is already registered")
        key = SelectorKey(fileobj, fd, events, data)
        self._epoll.register(fd, _epoll_mask(events))
        self._store(key)
        return key

    def _store(self, key: SelectorKey) -> None:
        self.registered[key.fd] = key
        if key.events & EVENT_READ:
            self._readable[key.fd] = (key, EVENT_READ)
        else:
            self._readable.pop(key.fd, None)

    def _forget(self, fd: int) -> SelectorKey:
        self._readable.pop(fd, None)
        return self.registered.pop(fd)

    def unregister(self, fileobj: Any) -> SelectorKey:
        try:
            key = self._forget(self._lookup(fileobj))
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        try:
            self._epoll.unregister(key.fd)
        except OSError:
            return key  # closed since it was registered: epoll forgot it already
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        key = self.get_key(fileobj)
        changed = data != key.data
        if events != key.events:
            if not events or events & ~_EVENTS:
                raise ValueError(f"Invalid events: {events!r}")
            try:
                self._epoll.modify(key.fd, _epoll_mask(events))
            except BaseException:
                self._forget(key.fd)  # as selectors does: a failed modify unregisters
                raise
            changed = True
        if changed:
            key = key._replace(events=events, data=data)
            self._store(key)
        return key

    def get_key(self, fileobj: Any) -> SelectorKey:
        try:
            return self.registered[self._lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def get_map(self) -> Mapping[Any, SelectorKey]:
        return _KeysByFile(self)

    def select(self, timeout: float | None = None) -> list[tuple[SelectorKey, int]]:
        if timeout is None:
            timeout = -1
        elif timeout <= 0:
            timeout = 0
        else:
            # epoll_wait() counts milliseconds: round up, to wait at least timeout.
            timeout = math.ceil(timeout * 1e3) * 1e-3
        keys, readable = self.registered, self._readable
        ready: list[tuple[SelectorKey, int]] = []
        try:
            polled = self._epoll.poll(timeout, len(keys) or 1)  # maxevents must be positive
        except InterruptedError:
            return ready
        for fd, event in polled:
            if event == EPOLLIN and fd in readable:
                ready.append(readable[fd])
                continue
            key = keys.get(fd)
            if key is not None:
                ready.append((key, key.events & ((EVENT_WRITE if event & _NOT_READABLE else 0)
                                                 | (EVENT_READ if event & _NOT_WRITABLE else 0))))
        return ready

    def close(self) -> None:
        self._epoll.close()
        self.registered.clear()
        self._readable.clear()
