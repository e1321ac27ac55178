"""Servers raced by the benchmarks: start one in its own process group, find its port, stop it.

Every contender binds port 0. zenserve says where it listens on its readiness
line; the C yardstick and the book's listings do not print their real port, so
their listening socket is read from the kernel (psutil) in a bounded loop.
Stopping a contender also stops any workers it forked (the C server's and
zenserve's ``--workers``), each by its own process id.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import psutil
from termination import sigterm_deferred

from zenserve.errors import ZenserveError

READY_PREFIX = "Listening at "
STOP_TIMEOUT_SECONDS = 5.0
# The backlog inetd-style listeners get (zenserve's own default for the sockets it binds).
INHERITED_BACKLOG = 1024
# How often to look for a listening socket of a contender that does not announce its port.
LISTEN_POLL_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class Contender:
    """One server setup in the race: how to start it and how to name it in the table."""

    label: str  # e.g. "zenserve --workers 2", "book srv_async.py", "C reference"
    role: str  # "c", "book" or "zenserve"
    command: tuple[str, ...]
    announces_port: bool = False  # prints zenserve's "Listening at HOST:PORT"
    cwd: Path | None = None
    # Started as inetd (wait mode) starts a server: a bound listener handed over as fd 0.
    inherits_listener: bool = False


def zenserve_contender(architecture: str, workers: int = 0, extra: tuple[str, ...] = (),
                       inherit: bool = False) -> Contender:
    """zenserve's own ``serve`` for ``architecture`` (with ``--workers N`` when N > 0).

    ``inherit``: serve a listener passed as fd 0 (``--inherit``), as inetd would.
    """
    command = [sys.executable, "-m", "zenserve", "serve", "-p", "0", "--arch", architecture,
               *extra, *(["--inherit"] if inherit else [])]
    label = "zenserve"
    if workers:
        command += ["--workers", str(workers)]
        label += f" --workers {workers}"
    return Contender(label, "zenserve", tuple(command), announces_port=True,
                     inherits_listener=inherit)


def book_contender(listing: Path) -> Contender:
    """One of the book's listings (or a labelled reconstruction) beside its zen_utils."""
    return Contender(f"book {listing.name}", "book",
                     (sys.executable, str(listing), "127.0.0.1", "-p", "0"), cwd=listing.parent)


def c_reference_contender(server_binary: Path, workers: int = 1) -> Contender:
    """The C yardstick: one epoll loop per process, ``workers`` processes."""
    label = "C reference" if workers == 1 else f"C reference, {workers} workers"
    return Contender(label, "c", (str(server_binary), "0", str(workers)))


def inherited_listener() -> socket.socket:
    """A listening socket on a free loopback port, to hand a server as inetd does."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(INHERITED_BACKLOG)
    return listener


class RunningServer:
    """A started contender: ``port`` once it listens; ``stop()`` ends its whole process group."""

    def __init__(self, contender: Contender, ready_timeout: float = 30.0) -> None:
        self.contender = contender
        # Kept open for the contender's life and closed in stop(): where its errors go.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        listener = inherited_listener() if contender.inherits_listener else None
        started = False
        try:
            with sigterm_deferred():  # delivered once the child is ours to stop
                self.process = subprocess.Popen(
                    contender.command, cwd=contender.cwd, start_new_session=True,
                    stdin=listener.fileno() if listener is not None else subprocess.DEVNULL,
                    stderr=self._stderr,
                    stdout=subprocess.PIPE if contender.announces_port else subprocess.DEVNULL,
                )
                started = True
        except BaseException:
            if started:
                self.stop()
            raise
        finally:
            if listener is not None:
                listener.close()  # the child holds its own copy as fd 0
        try:
            if contender.announces_port:
                self.port = self._read_announced_port(ready_timeout)
            else:
                self.port = self._find_listening_port(ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _read_announced_port(self, timeout: float) -> int:
        stdout = self.process.stdout
        assert stdout is not None
        # Raw reads, not readline(): a buffered reader could hold the line while select() waits.
        seen = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while (remaining := deadline - time.monotonic()) > 0:
                if not selector.select(remaining):
                    break
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    raise self._failed("exited before it was ready")
                seen += chunk
                for line in seen.decode(errors="replace").splitlines(keepends=True):
                    if line.startswith(READY_PREFIX) and line.endswith("\n"):
                        return int(line.rstrip().rpartition(":")[2])
        raise self._failed(f"not ready within {timeout:g}s (printed {seen[-200:]!r})")

    def _find_listening_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        process = psutil.Process(self.process.pid)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._failed("exited before it was ready")
            for connection in process.net_connections(kind="tcp"):
                if connection.status == psutil.CONN_LISTEN and connection.laddr:
                    return int(connection.laddr.port)
            time.sleep(LISTEN_POLL_SECONDS)  # bounded by the deadline above
        raise self._failed(f"not listening within {timeout:g}s")

    def _failed(self, what: str) -> ZenserveError:
        return ZenserveError(f"{self.contender.label} {what}: {self.error_output()}")

    def error_output(self) -> str:
        """The last line the contender wrote to stderr, if any."""
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(no stderr)"

    def stop(self) -> None:
        """SIGTERM the leader and the workers it forked; SIGKILL whatever lingers; reap."""
        # Each member on its own: a forked conversation child may end at any moment,
        # and one that is gone must not spare the others (or the leader) their signal.
        family_processes = []
        with contextlib.suppress(psutil.NoSuchProcess):
            leader = psutil.Process(self.process.pid)
            family_processes = [leader, *leader.children(recursive=True)]
        for member in family_processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.terminate()
        # psutil checks each process's start time, so a reused pid is never signalled.
        _, lingering = psutil.wait_procs(family_processes, timeout=STOP_TIMEOUT_SECONDS)
        for member in lingering:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        if self.process.poll() is None:  # the leader was not seen above: make sure
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdout, self._stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
