"""Section 3, concurrency: how many clients are served at once.

Hold K idle connections open (connected, silent), then let a few probe
clients ask one question each, all at once, with a short timeout. The share
of probes answered, against K, shows how many clients the architecture
serves at the same time: a one-client server stops answering at K=1, a pool
of N threads at K=N, an event loop not at all.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from zenserve.lab.plan import Plan
from zenserve.lab.points import Point, summarize
from zenserve.lab.runner import Lab
from zenserve.protocol import answer_framer
from zenserve.service import pep20_table

SECTION = "concurrency"
# Opening an idle connection only waits for the kernel's handshake (the
# backlog completes it even when the server is busy): a second is plenty.
CONNECT_TIMEOUT = 1.0


def steps(plan: Plan) -> int:
    """Probe rounds this section makes for one architecture."""
    return len(plan.idle_counts) * plan.probe_rounds


def measure(lab: Lab, plan: Plan, architecture: str, port: int) -> list[Point]:
    """The server at ``port`` at every K, ``probe_rounds`` rounds of ``probes`` probes."""
    points: list[Point] = []
    for idle in plan.idle_counts:
        lab.settle(port)
        fractions = []
        for round_number in range(1, plan.probe_rounds + 1):
            lab.reporter.step(f"{architecture}, {idle} idle connections "
                              f"(round {round_number}/{plan.probe_rounds})")
            fractions.append(served_fraction(lab.host, port, idle, plan.probes,
                                             plan.probe_timeout))
            lab.reporter.advance()
        points.append(summarize(SECTION, architecture, "served_fraction", fractions,
                                x_name="idle_connections", x=float(idle)))
    return points


def served_fraction(host: str, port: int, idle: int, probes: int, timeout: float) -> float:
    """Hold ``idle`` silent connections; the share of ``probes`` simultaneous probes answered."""
    held: list[socket.socket] = []
    try:
        for _ in range(idle):
            held.append(socket.create_connection((host, port), timeout=CONNECT_TIMEOUT))
        answered = [False] * probes
        threads = [threading.Thread(target=_probe, args=(host, port, timeout, answered, index),
                                    name=f"zenserve-probe-{index}", daemon=True)
                   for index in range(probes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            # A probe gives up after its connect and its answer timeouts.
            thread.join(CONNECT_TIMEOUT + timeout + 1.0)
        return sum(answered) / probes
    except OSError:
        return 0.0  # not even the idle connections could be opened: nobody is served
    finally:
        for sock in held:
            sock.close()


def _probe(host: str, port: int, timeout: float, answered: list[bool], index: int) -> None:
    """Ask one question; mark ``answered[index]`` if the right answer came within ``timeout``."""
    question, expected = next(iter(pep20_table().items()))
    with (contextlib.suppress(OSError),
          socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as sock):
        sock.settimeout(timeout)
        sock.sendall(question)
        framer = answer_framer()
        answers: list[bytes] = []
        while not answers:
            data = sock.recv(4096)
            if not data:
                return
            answers = framer.feed(data)
        answered[index] = answers[0] == expected
