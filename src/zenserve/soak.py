"""Mixed normal and hostile load against one loopback server, for a bounded time.

Normal askers check every answer; beside them, slowloris connections drip
bytes and a churn of hostile clients half-asks, resets, sends garbage,
floods and connects-and-closes. Each actor is a thread with its own tally,
merged at the end: what was answered, what went wrong, what was thrown at it.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from zenserve.client import ZenClient
from zenserve.hostile import Flood, SlowLoris, open_connection, reset
from zenserve.service import pep20_table

QUESTIONS_PER_CONNECTION = 50  # normal askers reconnect now and then, as real clients do
FLOOD_QUESTIONS = 5_000
STORM = 100
GARBAGE_BYTES = 4096
CLIENT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class SoakPlan:
    """Where to send the load, for how long, and how much of it."""

    host: str
    port: int
    duration: float
    askers: int = 4
    slow_connections: int = 100
    drip_period: float = 0.5
    seed: int = 1


@dataclass
class Tally:
    """What one actor (or, merged, the whole soak) saw."""

    answered: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # things a server must never do
    hostile: Counter[str] = field(default_factory=Counter)  # what was thrown at the server

    def merge(self, other: Tally) -> None:
        self.answered += other.answered
        self.errors.update(other.errors)
        self.hostile.update(other.hostile)


def error_kind(error: OSError) -> str:
    """A short name for what went wrong on a normal client's connection."""
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, ConnectionResetError):
        return "reset"
    if isinstance(error, ConnectionError):
        return "closed early"
    return type(error).__name__


def normal_asker(plan: SoakPlan, deadline: float, tally: Tally, seed: int) -> None:
    """Ask random PEP 20 questions and check every answer, until the deadline."""
    table = pep20_table()
    questions = list(table)
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        try:
            with ZenClient(plan.host, plan.port, timeout=CLIENT_TIMEOUT) as client:
                for _ in range(QUESTIONS_PER_CONNECTION):
                    if time.monotonic() >= deadline:
                        break
                    question = rng.choice(questions)
                    if client.ask(question) == table[question]:
                        tally.answered += 1
                    else:
                        tally.errors["wrong answer"] += 1
        except OSError as error:
            tally.errors[error_kind(error)] += 1


def slowloris(plan: SoakPlan, deadline: float, tally: Tally, seed: int) -> None:
    """Keep ``slow_connections`` dripping; replace each one the server closes."""
    slow = SlowLoris(plan.host, plan.port, 0, timeout=CLIENT_TIMEOUT)
    try:
        while time.monotonic() < deadline:
            missing = plan.slow_connections - len(slow.sockets)
            for _ in range(missing):
                slow.sockets.append(open_connection(plan.host, plan.port, CLIENT_TIMEOUT))
            tally.hostile["slowloris connections opened"] += missing
            slow.drip()
            slow.reap(min(plan.drip_period, max(0.0, deadline - time.monotonic())))
        tally.hostile["slowloris connections closed by the server"] += slow.closed_by_server
    except OSError as error:
        tally.errors[f"slowloris could not connect: {error_kind(error)}"] += 1
    finally:
        slow.close()


def half_question(plan: SoakPlan, rng: random.Random, tally: Tally) -> None:
    with open_connection(plan.host, plan.port, CLIENT_TIMEOUT) as sock:
        sock.sendall(b"Beautiful is better")


def reset_mid_question(plan: SoakPlan, rng: random.Random, tally: Tally) -> None:
    sock = open_connection(plan.host, plan.port, CLIENT_TIMEOUT)
    sock.sendall(b"Explicit is")
    reset(sock)


def reset_mid_answer(plan: SoakPlan, rng: random.Random, tally: Tally) -> None:
    sock = open_connection(plan.host, plan.port, CLIENT_TIMEOUT)
    sock.sendall(b"Beautiful is better than?" * 500)
    reset(sock)


def garbage(plan: SoakPlan, rng: random.Random, tally: Tally) -> None:
    with open_connection(plan.host, plan.port, CLIENT_TIMEOUT) as sock:
        sock.sendall(rng.randbytes(GARBAGE_BYTES))
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass  # the server answers what it framed, then closes


def flood(plan: SoakPlan, rng: random.Random, tally: Tally) -> None:
    table = pep20_table()
    flooder = Flood(plan.host, plan.port, list(table), FLOOD_QUESTIONS, timeout=CLIENT_TIMEOUT)
    try:
        flooder.start()
        received, first_wrong = flooder.read_answers(table)
    finally:
        flooder.close()
    tally.answered += received if first_wrong < 0 else first_wrong
    if received < FLOOD_QUESTIONS or first_wrong >= 0:
        tally.errors["flood answers missing or out of order"] += 1


def connect_and_close(plan: SoakPlan, rng: random.Random, tally: Tally) -> None:
    for index in range(STORM):
        sock = socket.create_connection((plan.host, plan.port), timeout=CLIENT_TIMEOUT)
        if index % 2:
            reset(sock)
        else:
            sock.close()


HostileAction = Callable[[SoakPlan, random.Random, Tally], None]
CHURN: dict[str, HostileAction] = {
    "half questions": half_question,
    "resets mid-question": reset_mid_question,
    "resets mid-answer": reset_mid_answer,
    "garbage streams": garbage,
    "floods": flood,
    f"connect-and-close storms of {STORM}": connect_and_close,
}

# A flood must be answered in full, and a connect must never fail; the others
# may be cut short by the server, which is its right.
MUST_SUCCEED = frozenset({"floods", f"connect-and-close storms of {STORM}"})


def churn(plan: SoakPlan, deadline: float, tally: Tally, seed: int) -> None:
    """One hostile action after another, in a random order, until the deadline."""
    rng = random.Random(seed)
    kinds = list(CHURN)
    while time.monotonic() < deadline:
        kind = rng.choice(kinds)
        try:
            CHURN[kind](plan, rng, tally)
            tally.hostile[kind] += 1
        except OSError as error:
            if kind in MUST_SUCCEED or isinstance(error, ConnectionRefusedError):
                tally.errors[f"{kind}: {error_kind(error)}"] += 1
            else:
                tally.hostile[kind] += 1  # the server may cut a hostile peer short


Actor = Callable[[SoakPlan, float, Tally, int], None]


def run_soak(plan: SoakPlan) -> Tally:
    """Run every actor until ``plan.duration`` has passed; return the merged tally."""
    deadline = time.monotonic() + plan.duration
    actors: list[Actor] = [*[normal_asker] * plan.askers, slowloris, churn]
    tallies = [Tally() for _ in actors]
    threads = [threading.Thread(target=actor, args=(plan, deadline, tally, plan.seed + index),
                                name=f"soak-{actor.__name__}", daemon=True)
               for index, (actor, tally) in enumerate(zip(actors, tallies, strict=True))]
    for thread in threads:
        thread.start()
    # Every actor checks the deadline between operations bounded by CLIENT_TIMEOUT.
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 4 * CLIENT_TIMEOUT)
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    still_running = sum(thread.is_alive() for thread in threads)
    if still_running:
        total.errors["actors still running at the end"] = still_running
    return total
