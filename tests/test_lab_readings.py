"""The readings generator on synthetic results: the sentences follow the numbers, whatever they are.

Each case builds points by hand (no servers), reads them, and checks that the
sentences quote the numbers and draw the conclusion the numbers support; then
changes the numbers and checks the sentences change with them.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from zenserve.errors import ZenserveError
from zenserve.lab import analysis, readings, wording
from zenserve.lab.compare import write
from zenserve.lab.experiments import latency
from zenserve.lab.plan import MISBEHAVIOURS, MIXED, quick_plan, tiny_plan, with_architectures
from zenserve.lab.points import Point, summarize
from zenserve.lab.readings.clients import MISBEHAVING
from zenserve.lab.results import Results
from zenserve.lab.runner import Lab, bench_options, generator_limited
from zenserve.servers import ARCHITECTURES

NAN = math.nan


def flat(section: str, architecture: str, metric: str, value: float, **where: object) -> Point:
    """A point whose three runs all measured ``value``."""
    return summarize(section, architecture, metric, [value, value, value], **where)


def throughput_curve(architecture: str, values: dict[int, float], slowest: float = 5.0,
                     p99: float = 1.0) -> list[Point]:
    points = []
    for connections, value in values.items():
        where = {"x_name": "connections", "x": float(connections)}
        points += [flat("throughput", architecture, "throughput_rps", value, **where),
                   flat("throughput", architecture, "latency_p99_ms", p99, **where),
                   flat("throughput", architecture, "latency_max_ms", slowest, **where),
                   flat("throughput", architecture, "failed_requests", 0, **where)]
    return points


def test_throughput_flat_and_growing_curves_are_told_apart() -> None:
    points = (throughput_curve("single", {1: 5000, 4: 5100, 16: 4900, 64: 5050}, slowest=800)
              + throughput_curve("threaded", {1: 4000, 4: 15000, 16: 15500, 64: 15200})
              + throughput_curve("epoll", {1: 6000, 4: 20000, 16: 30000, 64: 31000}))
    text = readings.throughput(points)
    assert text[0].startswith("single peaks at 5,100 req/s (4 connections) and does not grow")
    assert "with 64 connections it answers 5,050 req/s" in text[0]
    assert "the slowest answer took 800 ms" in text[0]
    assert text[1].startswith("threaded grows from 4,000 req/s with 1 connection until about "
                              "4 connections, peaking at 15,500 req/s with 16")
    assert "until about 16 connections" in text[2]
    assert "With 64 connections the fastest is epoll at 31,000 req/s, 6.1× single" in text[3]

    # The same code on other numbers: now single grows and leads.
    other = throughput_curve("single", {1: 5000, 4: 40000, 16: 41000, 64: 42000}) + \
        throughput_curve("epoll", {1: 6000, 4: 6100, 16: 6000, 64: 6050})
    text = readings.throughput(other)
    assert text[0].startswith("single grows from 5,000 req/s")
    assert "epoll peaks at 6,100 req/s" in text[1]
    assert "the fastest is single" in text[2]


def test_throughput_notes_saturation_and_disagreeing_runs() -> None:
    noisy = summarize("throughput", "single", "throughput_rps", [1000, 5000, 9000],
                      saturated=True, x_name="connections", x=8.0)
    text = readings.throughput([noisy])
    assert any("The load generator used a full core at single (connections 8)" in sentence
               for sentence in text)
    assert any("disagreed by more than 30% at 1 of 1 points" in sentence for sentence in text)
    calm = summarize("throughput", "single", "throughput_rps", [1000, 1010, 990],
                     x_name="connections", x=8.0)
    assert not any("disagreed" in sentence or "full core" in sentence
                   for sentence in readings.throughput([calm]))


def ladder(architecture: str, rungs: dict[float, tuple[float, float, float]],
           fixed: float) -> list[Point]:
    """rate -> (achieved, p99, service p99); p50 is a tenth of p99."""
    points = []
    for rate, (achieved, p99, service) in rungs.items():
        where = {"x_name": "target_rps", "x": rate,
                 "condition": "fixed rate" if rate == fixed else ""}
        points += [flat("latency", architecture, "achieved_rps", achieved, **where),
                   flat("latency", architecture, "failed_requests", 0, **where),
                   flat("latency", architecture, "latency_p50_ms", p99 / 10, **where),
                   flat("latency", architecture, "latency_p99_ms", p99, **where),
                   flat("latency", architecture, "service_p99_ms", service, **where)]
    return points


def test_latency_knees_and_the_fixed_rate() -> None:
    plan = tiny_plan()
    points = (ladder("single", {500: (500, 1.0, 0.9), 1000: (1000, 1.2, 1.0),
                                2000: (1400, 900.0, 2.0)}, fixed=500)
              + ladder("epoll", {500: (500, 0.5, 0.5), 1000: (1000, 0.6, 0.5),
                                 2000: (2000, 0.7, 0.6)}, fixed=500))
    text = readings.latency(points, plan)
    assert text[0] == ("At 500 req/s (the rate every architecture was to sustain), the median "
                       "response time runs from 0.05 ms to 0.10 ms, and p99 from 0.50 ms "
                       "(epoll) to 1.00 ms (single).")
    assert text[1] == ("single's knee is between 1,000 req/s (p99 1.20 ms) and 2,000 req/s, "
                       "where it answered only 1,400 req/s, most of it waiting to be sent "
                       "(the raw service time's p99 is 2.00 ms).")
    assert text[2] == ("epoll kept p99 at 0.70 ms up to the highest rate tried, 2,000 req/s: "
                       "its knee is beyond the ladder.")
    knees = {knee.architecture: knee for knee in analysis.knees(points, plan.timing.duration)}
    assert knees["single"].last_sustained is not None
    assert knees["single"].last_sustained.rate == 1000


def idle_curve(architecture: str, served: dict[int, float]) -> list[Point]:
    return [flat("concurrency", architecture, "served_fraction", share,
                 x_name="idle_connections", x=float(idle)) for idle, share in served.items()]


def test_concurrency_counts_clients_served_at_once() -> None:
    points = (idle_curve("single", {0: 1, 1: 0, 2: 0, 4: 0})
              + idle_curve("threaded", {0: 1, 1: 1, 2: 1, 3: 1, 4: 0, 5: 0})
              + idle_curve("pool-of-six", {0: 1, 2: 1, 4: 1, 8: 0})
              + idle_curve("epoll", {0: 1, 4: 1, 64: 1})
              + idle_curve("wobbly", {0: 1, 4: 0.5, 64: 1}))
    text = readings.concurrency(points)
    assert "single answers probes while 0 idle connections are held, and none once 1 are: " \
           "it serves 1 client at a time" in text[0]
    assert "it serves 4 clients at a time" in text[1]
    assert "it serves between 5 and 8 clients at a time" in text[2]
    assert text[3] == "epoll answered every probe with up to 64 idle connections held open."
    assert text[4] == ("wobbly answered every probe with up to 64 idle connections held open "
                       "except at 4 (50.0%).")


def test_availability_names_who_was_harmed_and_what_a_killed_worker_cost() -> None:
    points = []
    for name, ratios, p99 in (("single", (1.0, 0.0), (2.0, NAN)),
                              ("epoll", (1.0, 0.995), (0.4, 0.9))):
        for condition, ratio, p99_ms in zip(("none", "mixed"), ratios, p99, strict=True):
            points += [flat("availability", name, "success_ratio", ratio, condition=condition),
                       summarize("availability", name, "latency_p99_ms", [p99_ms] * 3,
                                 condition=condition)]
    points += [summarize("worker_kill", "epoll", "requests_lost", [2, 3, 7], workers=2),
               summarize("worker_kill", "epoll", "recovery_ms", [110, 120, 150], workers=2)]
    text = readings.availability(points)
    # One share when every architecture got the same; the condition in words.
    assert text[0] == "With no misbehaving clients, normal clients got 100% of their " \
                      "requests answered."
    assert text[1] == "With misbehaving clients of all three kinds mixed in, single answered " \
                      "only 0.0% of normal requests (no answer at all)."
    assert text[2] == "With misbehaving clients of all three kinds, epoll still answered " \
                      "99.0% or more (p99 epoll 0.40 ms → 0.90 ms)."
    assert text[3] == "Killing one of epoll's 2 workers mid-run lost 3 normal requests " \
                      "(runs: 2 to 7); a replacement worker was running 120 ms later."


def scaling(architecture: str, kind: str, one: float, two: float) -> list[Point]:
    return [flat("scalability", architecture, "throughput_rps", value, workers=workers,
                 cost_kind=kind, x_name="workers", x=float(workers))
            for workers, value in ((1, one), (2, two))]


def test_scalability_reads_overlap_and_worker_gain() -> None:
    plan = quick_plan()  # 1ms cost
    points = (scaling("threaded", "block", 3900, 7000) + scaling("epoll", "block", 980, 1900)
              + scaling("threaded", "cpu", 900, 1000) + scaling("epoll", "cpu", 950, 1700))
    text = readings.scalability(points, plan)
    assert text[0] == ("With a 1ms block cost and one worker (in brackets, how many requests' "
                       "cost was being paid at once, req/s × 1ms): threaded 3,900 req/s (≈3.9) "
                       "and epoll 980 req/s (≈1.0).")
    assert text[1] == "A second worker process helps with the block cost: threaded ×1.79 and " \
                      "epoll ×1.94."
    assert "A second worker process helps with the cpu cost: epoll ×1.79." in text
    assert "A second worker adds little with the cpu cost: threaded ×1.11." in text


def test_unmeasured_points_are_said_so_not_invented() -> None:
    nothing = summarize("throughput", "single", "throughput_rps", [NAN, NAN])
    assert not nothing.measured and nothing.to_row()["median"] is None
    assert readings.throughput([nothing]) == []
    assert wording.millis(NAN) == "no answers"


def test_a_report_renders_from_synthetic_points(tmp_path: Path) -> None:
    plan = tiny_plan()
    points = (throughput_curve("single", {1: 5000, 8: 5000})
              + ladder("single", {100: (100, 1.0, 0.9), 300: (120, 50, 1.0)}, fixed=100)
              + idle_curve("single", {0: 1, 2: 0})
              + [flat("availability", "single", "success_ratio", 0.0, condition="mixed"),
                 summarize("availability", "single", "latency_p99_ms", [NAN],
                           condition="mixed")]
              + scaling("single", "io", 900, 1800))
    results = Results(plan=plan.to_json(), machine={"cpu_model": "test CPU"}, points=points,
                      readings=readings.all_readings(points, plan))
    report = write(results, plan, tmp_path)
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 7
    assert "single peaks at 5,000 req/s" in html
    assert (tmp_path / "results.csv").read_text().count("\n") == len(points) + 1


def test_architecture_names_are_checked() -> None:
    with pytest.raises(ZenserveError, match="unknown architecture 'nope'"):
        with_architectures(tiny_plan(), ["single", "nope"])
    chosen = with_architectures(quick_plan(), ["epoll", "single", "epoll"])
    assert chosen.all_architectures == ("single", "epoll")
    assert chosen.scalability_architectures == ("epoll", "single")


def test_the_command_rejects_an_unknown_architecture_in_one_line(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "zenserve", "compare", "--architectures", "single,nope",
         "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=30)
    assert finished.returncode == 2
    assert finished.stderr.strip().splitlines() == [
        f"zenserve compare: error: unknown architecture 'nope'; choose one of: "
        f"{', '.join(ARCHITECTURES)}"]
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_a_noisy_low_rung_does_not_move_the_knee() -> None:
    # p99 8 ms at the lowest rate (a hiccup), 0.8 ms at the next: the bar is the best p99.
    points = ladder("threaded", {310: (310, 8.0, 1.0), 400: (400, 0.8, 0.7),
                                 750: (750, 7.5, 1.0), 1500: (1500, 4.4, 1.0)}, fixed=400)
    (knee,) = analysis.knees(points, measured_seconds=0.25)
    assert knee.baseline.rate == 400
    assert knee.last_sustained is not None and knee.last_sustained.rate == 400
    assert knee.first_broken is not None and knee.first_broken.rate == 750


def test_rates_are_round_and_the_fixed_rate_is_half_the_slowest_peak() -> None:
    assert latency.round_rate(1234.5) == 1200.0
    assert latency.round_rate(87.0) == 87.0
    assert latency.round_rate(3.0) == 10.0
    rungs, fixed = latency.choose_rates({"single": 1000.0, "epoll": 9000.0}, (0.1, 0.5, 1.0))
    assert fixed == 500.0
    assert rungs == [500.0, 900.0, 4500.0, 9000.0]
    assert latency.choose_rates({"single": 0.0}, (0.5,)) == ([], 0.0)


def test_a_server_that_cannot_start_is_left_out_with_a_warning() -> None:
    lab = Lab()
    with lab.server("single", "--workers", "-3", steps=4) as server:
        assert server is None
    assert len(lab.warnings) == 1
    assert lab.warnings[0].startswith("single --workers -3 could not start")
    assert "--workers must be 0" in lab.warnings[0]


def test_a_server_that_cannot_keep_up_is_not_listed_as_generator_limited() -> None:
    """`single` answers one of 4 connections: a quarter of the rate, the server's finding."""
    lab = Lab()
    with lab.server("single") as server:
        assert server is not None
        result = lab.bench(bench_options(server.port, connections=4, warmup=0.0, duration=1.0,
                                         rate=2000.0, timeout=0.5), "single, open loop")
    assert result is not None
    assert result.server_kept_up is False
    assert lab.saturation == []
    assert not generator_limited(result)


def test_overlapping_runs_are_not_read_as_growth_or_a_lead() -> None:
    def spread(architecture: str, connections: int, runs: list[float]) -> Point:
        return summarize("throughput", architecture, "throughput_rps", runs,
                         x_name="connections", x=float(connections))

    points = [spread("single", 1, [3000, 9000, 12000]), spread("single", 64, [4000, 14000, 9000]),
              spread("epoll", 1, [5000, 6000, 7000]), spread("epoll", 64, [6500, 12000, 20000])]
    text = readings.throughput(points)
    assert text[0].startswith("single peaks at 9,000 req/s (1 connection) and does not grow")
    assert text[1].startswith("epoll's median rises from 6,000 req/s with 1 connection to "
                              "12,000 req/s with 64, but its runs overlap")
    assert text[2] == ("With 64 connections the medians run from 9,000 req/s (single) to "
                       "12,000 req/s (epoll), but the runs overlap: none is clearly fastest "
                       "there.")


def test_a_second_worker_with_overlapping_runs_is_called_unclear() -> None:
    points = [summarize("scalability", "epoll", "throughput_rps", runs, workers=workers,
                        cost_kind="cpu", x_name="workers", x=float(workers))
              for workers, runs in ((1, [700, 800, 1300]), (2, [900, 1200, 1500]))]
    text = readings.scalability(points, quick_plan())
    assert text[1] == ("What a second worker adds with the cpu cost is unclear (a modest gain, "
                       "or runs that overlap): epoll ×1.50.")


def test_every_misbehaviour_has_words_in_the_readings() -> None:
    assert set(MISBEHAVING) == {*MISBEHAVIOURS, MIXED}
