"""The registry of server architectures: one table, each imported only when chosen.

Optional dependencies (uvloop, gevent) stay optional because an architecture's
module is imported only when that architecture is used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from zenserve.errors import ZenserveError
from zenserve.servers.base import Server


@dataclass(frozen=True, slots=True)
class Architecture:
    """One way to serve: its name, a one-line description, and where it lives."""

    name: str
    description: str
    module: str
    book_listing: str = "-"
    event_loop: bool = False  # one thread multiplexes every connection
    # How many clients it serves at once: "one", a fixed thread "pool", or "many"
    # (bounded only by --max-connections and memory).
    concurrency: str = "many"


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("single", "one client at a time; the others wait", "single", "7-3",
                     concurrency="one"),
        Architecture("threaded", "a fixed pool of --threads threads, each accepting in turn",
                     "threaded", "7-4", concurrency="pool"),
        Architecture("socketserver", "the stdlib's socketserver: a thread per connection",
                     "legacy", "7-5"),
        Architecture("forking", "a new process per connection, as 7-5's text suggests",
                     "forking", "7-5"),
        Architecture("poll", "a raw select.poll() loop with explicit per-connection state",
                     "poll", "7-6", event_loop=True),
        Architecture("epoll", "the poll loop on Linux epoll", "epoll", event_loop=True),
        Architecture("asyncio-callbacks", "asyncio.Protocol callbacks, one protocol per client",
                     "asyncio_callbacks", "7-7", event_loop=True),
        Architecture("asyncio-coroutines", "asyncio streams: a coroutine per client, with drain()",
                     "asyncio_coroutines", "7-8", event_loop=True),
        Architecture("uvloop", "the callback server on uvloop (libuv)", "uvloop_callbacks",
                     event_loop=True),
        Architecture("gevent", "gevent's hub answers in watcher callbacks; a greenlet takes "
                     "a request that must wait; no monkey-patching",
                     "gevent_streams", event_loop=True),
        Architecture("inetd", "the book's in_zen1/in_zen2: a socket inherited from inetd or "
                     "systemd (--inherit)", "inetd", concurrency="one"),
    )
}


def get_architecture(name: str) -> Architecture:
    """The registered architecture called ``name``, or a one-line error listing the names."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        names = ", ".join(ARCHITECTURES)
        raise ZenserveError(f"unknown architecture {name!r}; choose one of: {names}") from None


def server_class(name: str) -> type[Server]:
    """Import the architecture's module and return its ``Server`` class."""
    architecture = get_architecture(name)
    try:
        module = importlib.import_module(f"zenserve.servers.{architecture.module}")
    except ImportError as error:
        raise ZenserveError(
            f"architecture {name!r} needs a package that is not installed: {error.name}"
        ) from None
    server: type[Server] = module.Server
    return server
