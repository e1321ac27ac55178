"""What `zenserve compare` measures: one frozen plan, in three sizes (tiny, quick, full).

A plan names the architectures each experiment runs, the points of each
curve, and how long and how often each point is measured. Every point is the
median of ``repetitions`` short runs, so a plan's length is known before it
starts (``zenserve.lab.progress`` counts its steps).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from zenserve.errors import ZenserveError
from zenserve.servers import ARCHITECTURES, get_architecture

# On a bound listener `inetd` serves exactly as `single` does (in_zen2's wait
# mode), so the full comparison leaves it out unless it is asked for by name.
SAME_AS_ANOTHER = frozenset({"inetd"})

# Misbehaviour conditions of the availability experiment (see zenserve.lab.misbehave).
BASELINE = "none"
MISBEHAVIOURS = ("half-question-leave", "stalled-half-question", "reset")
MIXED = "mixed"


@dataclass(frozen=True, slots=True)
class Timing:
    """How one point is measured: ``repetitions`` runs of ``warmup`` + ``duration`` seconds."""

    warmup: float
    duration: float
    repetitions: int


@dataclass(frozen=True, slots=True)
class Plan:
    """Every experiment of one comparison; see the README's `zenserve compare` section."""

    name: str
    timing: Timing
    # 1. throughput: closed loop, persistent connections
    throughput_architectures: tuple[str, ...]
    connections: tuple[int, ...]
    # 2. response time: open loop, a new connection per request (so that a
    # one-client-at-a-time server can take part at all)
    latency_architectures: tuple[str, ...]
    rate_fractions: tuple[float, ...]  # rungs, as fractions of the highest peak measured
    latency_slots: int  # concurrent connections the open-loop schedule is spread over
    # 3. concurrency: K idle connections held while probes ask
    concurrency_architectures: tuple[str, ...]
    idle_counts: tuple[int, ...]
    probes: int  # probes asking at once, in each round
    probe_rounds: int
    probe_timeout: float
    # 4. availability: normal clients at a fixed rate, misbehaving ones beside them
    availability_architectures: tuple[str, ...]
    conditions: tuple[str, ...]
    availability_timing: Timing
    kill_architectures: tuple[str, ...]
    kill_timing: Timing  # the run during which one of 2 workers is killed
    kill_after: float  # seconds into the measured time
    # 5. scalability: the cost knob x architecture x workers
    scalability_architectures: tuple[str, ...]
    scalability_timing: Timing
    cost: str
    scalability_cases: tuple[tuple[str, int], ...]  # (cost kind, workers)
    scalability_connections: int

    @property
    def all_architectures(self) -> tuple[str, ...]:
        """Every architecture any experiment starts, in registry order."""
        used = {*self.throughput_architectures, *self.latency_architectures,
                *self.concurrency_architectures, *self.availability_architectures,
                *self.kill_architectures, *self.scalability_architectures}
        return tuple(name for name in ARCHITECTURES if name in used)

    def to_json(self) -> dict[str, object]:
        """The plan as plain data, for results.json."""
        data: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Timing):
                value = {"warmup_s": value.warmup, "duration_s": value.duration,
                         "repetitions": value.repetitions}
            if isinstance(value, tuple):
                value = [list(item) if isinstance(item, tuple) else item for item in value]
            data[name] = value
        return data


def _pick(preferred: tuple[str, ...]) -> tuple[str, ...]:
    """The preferred architectures that are registered, in the order given."""
    return tuple(name for name in preferred if name in ARCHITECTURES)


def _every() -> tuple[str, ...]:
    return tuple(name for name in ARCHITECTURES if name not in SAME_AS_ANOTHER)


COST_KINDS = ("block", "io", "cpu")
EVERY_CASE = tuple((kind, workers) for kind in COST_KINDS for workers in (1, 2))

# One of each family: one client at a time, a thread pool, an event loop.
_FAMILIES = ("single", "threaded", "asyncio-callbacks")


def quick_plan() -> Plan:
    """Every section, fewer points and architectures: a few minutes on 2 cores."""
    families = _pick(_FAMILIES)
    return Plan(
        name="quick",
        timing=Timing(warmup=0.1, duration=0.25, repetitions=3),
        throughput_architectures=families,
        connections=(1, 4, 16, 64),
        latency_architectures=families,
        rate_fractions=(0.3, 0.7, 1.1),
        latency_slots=8,
        concurrency_architectures=families,
        idle_counts=(0, 1, 2, 3, 4, 8, 16),
        probes=3,
        probe_rounds=2,
        probe_timeout=0.5,
        availability_architectures=families,
        conditions=(BASELINE, MIXED),
        availability_timing=Timing(warmup=0.1, duration=0.4, repetitions=3),
        kill_architectures=_pick(("asyncio-callbacks",)),
        kill_timing=Timing(warmup=0.1, duration=1.5, repetitions=2),
        kill_after=0.5,
        scalability_architectures=_pick(("threaded", "asyncio-callbacks")),
        scalability_timing=Timing(warmup=0.05, duration=0.2, repetitions=3),
        cost="1ms",
        # A second worker where it tells most: a blocking cost and a CPU cost.
        scalability_cases=(("block", 1), ("block", 2), ("io", 1), ("cpu", 1), ("cpu", 2)),
        scalability_connections=16,
    )


def full_plan() -> Plan:
    """Every architecture, every point of the issue: under 20 minutes on 2 cores."""
    every = _every()
    return Plan(
        name="full",
        timing=Timing(warmup=0.1, duration=0.4, repetitions=3),
        throughput_architectures=every,
        connections=(1, 2, 4, 8, 16, 32, 64, 128),
        latency_architectures=every,
        rate_fractions=(0.1, 0.25, 0.45, 0.7, 0.9, 1.15),
        latency_slots=16,
        concurrency_architectures=every,
        idle_counts=(0, 1, 2, 3, 4, 5, 8, 16, 32, 64),
        probes=3,
        probe_rounds=3,
        probe_timeout=0.5,
        availability_architectures=every,
        conditions=(BASELINE, *MISBEHAVIOURS),
        availability_timing=Timing(warmup=0.1, duration=0.6, repetitions=3),
        kill_architectures=every,
        kill_timing=Timing(warmup=0.1, duration=1.5, repetitions=3),
        kill_after=0.5,
        scalability_architectures=_pick(("single", "threaded", "socketserver", "epoll",
                                         "asyncio-callbacks", "uvloop")),
        scalability_timing=Timing(warmup=0.1, duration=0.4, repetitions=3),
        cost="1ms",
        scalability_cases=EVERY_CASE,
        scalability_connections=16,
    )


def tiny_plan() -> Plan:
    """The smallest plan with every section (for tests): 2 architectures, 2 points, 0.3 s."""
    two = _pick(("single", "asyncio-callbacks"))
    return Plan(
        name="tiny",
        timing=Timing(warmup=0.05, duration=0.3, repetitions=2),
        throughput_architectures=two,
        connections=(1, 8),
        latency_architectures=two,
        rate_fractions=(0.3, 0.9),
        latency_slots=4,
        concurrency_architectures=two,
        idle_counts=(0, 2),
        probes=2,
        probe_rounds=1,
        probe_timeout=1.0,
        availability_architectures=two,
        conditions=(BASELINE, MIXED),
        availability_timing=Timing(warmup=0.05, duration=0.3, repetitions=2),
        kill_architectures=two[-1:],
        kill_timing=Timing(warmup=0.05, duration=1.0, repetitions=1),
        kill_after=0.3,
        scalability_architectures=two[-1:],
        scalability_timing=Timing(warmup=0.05, duration=0.2, repetitions=2),
        cost="1ms",
        scalability_cases=(("io", 1), ("cpu", 1), ("cpu", 2)),
        scalability_connections=4,
    )


PLANS = {"tiny": tiny_plan, "quick": quick_plan, "full": full_plan}


def with_architectures(plan: Plan, names: list[str]) -> Plan:
    """The plan with every experiment running exactly ``names`` (checked against the registry)."""
    if not names:
        raise ZenserveError("--architectures needs at least one name")
    for name in names:
        get_architecture(name)
    chosen = tuple(dict.fromkeys(names))
    return replace(
        plan,
        throughput_architectures=chosen, latency_architectures=chosen,
        concurrency_architectures=chosen, availability_architectures=chosen,
        kill_architectures=chosen, scalability_architectures=chosen,
    )
