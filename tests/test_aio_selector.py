"""aio_selector.LeanEpollSelector against selectors.EpollSelector, on real socket pairs."""

from __future__ import annotations

import selectors
import socket
from collections.abc import Iterator

import pytest

from zenserve.servers.aio_selector import LeanEpollSelector

pytestmark = pytest.mark.skipif(not hasattr(selectors, "EpollSelector"), reason="needs epoll")

EVENTS = selectors.EVENT_READ | selectors.EVENT_WRITE


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.settimeout(5)
    theirs.settimeout(5)
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


def ready(selector: selectors.BaseSelector) -> list[tuple[int, int, object]]:
    return sorted((key.fd, events, key.data) for key, events in selector.select(0))


def test_it_reports_what_the_stdlib_selector_reports(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    with LeanEpollSelector() as lean, selectors.EpollSelector() as stdlib:
        for selector in (lean, stdlib):
            selector.register(ours, selectors.EVENT_READ, "reader")
        assert ready(lean) == ready(stdlib) == []  # nothing to read yet
        theirs.sendall(b"Beautiful is better than?")
        assert ready(lean) == ready(stdlib) == [(ours.fileno(), selectors.EVENT_READ, "reader")]
        for selector in (lean, stdlib):
            selector.modify(ours, EVENTS, "both")
        assert ready(lean) == ready(stdlib) == [(ours.fileno(), EVENTS, "both")]
        ours.recv(100)
        assert ready(lean) == ready(stdlib) == [(ours.fileno(), selectors.EVENT_WRITE, "both")]
        theirs.close()  # its end of stream wakes the reader too
        assert ready(lean) == ready(stdlib) == [(ours.fileno(), EVENTS, "both")]
        for selector in (lean, stdlib):
            selector.modify(ours, selectors.EVENT_READ, "reader again")
        assert ready(lean) == ready(stdlib) == [(ours.fileno(), selectors.EVENT_READ,
                                                 "reader again")]
        for selector in (lean, stdlib):
            selector.unregister(ours.fileno())
        assert ready(lean) == ready(stdlib) == []
        for selector in (lean, stdlib):
            selector.register(ours, selectors.EVENT_WRITE, "writer")
        assert ready(lean) == ready(stdlib) == [(ours.fileno(), selectors.EVENT_WRITE, "writer")]


def test_keys_by_object_or_descriptor(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    with LeanEpollSelector() as lean:
        key = lean.register(ours.fileno(), selectors.EVENT_READ, "data")
        assert lean.get_key(ours) is key
        assert lean.get_map()[ours.fileno()] is key
        assert list(lean.get_map()) == [ours.fileno()] and len(lean.get_map()) == 1
        assert lean.modify(ours, selectors.EVENT_READ, "data") is key  # nothing changed
        assert lean.modify(ours, selectors.EVENT_READ, "other").data == "other"


def test_misuse_fails_as_the_stdlib_does(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    with LeanEpollSelector() as lean:
        with pytest.raises(ValueError, match="Invalid events"):
            lean.register(ours, 0)
        with pytest.raises(ValueError, match="Invalid file descriptor"):
            lean.register(-1, selectors.EVENT_READ)
        with pytest.raises(KeyError, match="not registered"):
            lean.get_key(theirs)
        with pytest.raises(KeyError, match="not registered"):
            lean.unregister(theirs)
        lean.register(ours, selectors.EVENT_READ)
        with pytest.raises(KeyError, match="already registered"):
            lean.register(ours.fileno(), selectors.EVENT_WRITE)


def test_a_closed_socket_is_still_found_and_unregistered(
        pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    with LeanEpollSelector() as lean:
        lean.register(ours, selectors.EVENT_READ)
        ours.close()  # fileno() is -1 now: found by identity
        assert lean.unregister(ours).fileobj is ours
        assert len(lean.get_map()) == 0
