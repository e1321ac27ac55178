"""Latency recording: a flat list in the hot path, HDR histograms off the clock.

Recording into an ``HdrHistogram`` costs microseconds of pure Python per
value, more than the request itself. So connections add 1 to
``bins[microseconds]`` (one list item, nothing allocated), values past
``FINE_LIMIT_US`` go to a dict, and once per second the worker cuts the bins
into sparse ``(value, count)`` pairs. HDR histograms are built from those
pairs only after the run, then encoded in HdrHistogram's compressed V2 format,
which is how they travel between processes and how other HDR tools read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import compress, islice

from hdrh.histogram import HdrHistogram

# Values are whole microseconds. Up to one hour, to 3 significant digits:
# wrk2's choice, and enough for any timeout a run can have.
LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_FIGURES = 3

# 1 us bins up to 16.4 ms: a loaded loopback server stays under this.
FINE_LIMIT_US = 16_384
# Bins turned into sparse counts per step: scanning all of them at once would
# stall the event loop for about a millisecond, charged to requests in flight.
SCAN_STEP = 2048

SparseCounts = tuple[list[int], list[int]]
_ZEROS = [0] * FINE_LIMIT_US


class IntervalCounts:
    """One interval's bins, turned into sparse (value, count) pairs a step at a time."""

    __slots__ = ("bins", "coarse", "counts", "scanned", "values")

    def __init__(self, bins: list[int], coarse: dict[int, int]) -> None:
        self.bins = bins
        self.coarse = coarse
        self.values: list[int] = []
        self.counts: list[int] = []
        self.scanned = 0

    @property
    def done(self) -> bool:
        """True once every bin has been scanned."""
        return self.scanned >= FINE_LIMIT_US

    def scan_step(self) -> None:
        """Scan the next ``SCAN_STEP`` bins."""
        start, stop = self.scanned, min(self.scanned + SCAN_STEP, FINE_LIMIT_US)
        bins = self.bins
        found = list(compress(range(start, stop), islice(bins, start, stop)))
        self.values += found
        self.counts += [bins[value] for value in found]
        self.scanned = stop

    def sparse(self) -> SparseCounts:
        """All values and counts, sorted (finishing the scan if needed)."""
        while not self.done:
            self.scan_step()
        coarse = sorted(self.coarse.items())
        return (self.values + [value for value, _ in coarse],
                self.counts + [count for _, count in coarse])


class LatencyBins:
    """Counts of latencies (whole microseconds) of the current interval."""

    __slots__ = ("bins", "coarse", "count_cut")

    def __init__(self) -> None:
        self.bins = [0] * FINE_LIMIT_US
        self.coarse: dict[int, int] = {}
        self.count_cut = 0  # values in every interval cut so far

    def count(self) -> int:
        """Every value recorded so far, cut or not."""
        return self.count_cut + sum(self.bins) + sum(self.coarse.values())

    def record_slow(self, microseconds: int) -> None:
        """Record a value past ``FINE_LIMIT_US`` (the hot path records the others itself)."""
        value = min(microseconds, HIGHEST_US)
        self.coarse[value] = self.coarse.get(value, 0) + 1

    def record(self, microseconds: int) -> None:
        """Record any value (for code off the hot path)."""
        if 0 <= microseconds < FINE_LIMIT_US:
            self.bins[microseconds] += 1
        else:
            self.record_slow(max(0, microseconds))

    def cut(self) -> IntervalCounts:
        """End the interval: its counts (to scan later), and the bins start again from zero.

        Copying and zeroing the list are single C loops; the bins list stays the
        same object, so the connections holding it need not be told.
        """
        bins = self.bins
        interval = IntervalCounts(bins[:], self.coarse)
        bins[:] = _ZEROS
        self.coarse = {}
        self.count_cut += sum(interval.bins) + sum(interval.coarse.values())
        return interval


def new_histogram() -> HdrHistogram:
    """An empty histogram of microseconds with the bench's range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def histogram_from(sparse: SparseCounts) -> HdrHistogram:
    """An HDR histogram holding the sparse counts."""
    histogram = new_histogram()
    for value, count in zip(*sparse, strict=True):
        histogram.record_value(value, count)
    return histogram


def encode(histogram: HdrHistogram) -> str:
    """HdrHistogram's compressed, base64 V2 encoding (readable by other HDR tools)."""
    encoded: bytes = histogram.encode()
    return encoded.decode("ascii")


def merge(encoded_histograms: list[str]) -> HdrHistogram:
    """Decode and add up encoded histograms (from several processes or seconds)."""
    total = new_histogram()
    for encoded in encoded_histograms:
        histogram = HdrHistogram.decode(encoded.encode("ascii"))
        # Adding an empty histogram would set the minimum to 0 (hdrh takes the
        # empty one's minimum at face value), so skip it: it adds nothing.
        if histogram.get_total_count():
            total.add(histogram)
    return total


def mean_of(histogram: HdrHistogram) -> float:
    """The mean exactly as hdrh's ``get_mean_value`` computes it, from the non-zero counts only.

    hdrh walks every bucket up to the largest value with a pure-Python
    iterator: tenths of a second per summary, and whole seconds on a busy
    machine, which dominated short runs (``zenserve compare`` makes hundreds).
    """
    total_count = histogram.get_total_count()
    if not total_count:
        return 0.0
    counts = list(histogram.counts)
    total = 0
    for index in compress(range(len(counts)), counts):
        value = histogram.get_value_from_index(index)
        lowest = histogram.get_lowest_equivalent_value(value)
        highest = histogram.get_highest_equivalent_value(value)
        total += counts[index] * (lowest + ((highest - lowest + 1) >> 1))  # the bucket's median
    return float(total) / int(total_count)


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles of one histogram, in milliseconds."""

    count: int
    min: float
    mean: float
    p50: float
    p90: float
    p99: float
    p999: float
    max: float

    @classmethod
    def of(cls, histogram: HdrHistogram) -> LatencySummary:
        """Summarise a histogram of microseconds."""
        if histogram.get_total_count() == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        at = histogram.get_percentile_to_value_dict([50.0, 90.0, 99.0, 99.9])
        return cls(
            count=histogram.get_total_count(),
            min=histogram.get_min_value() / 1000,
            mean=round(mean_of(histogram) / 1000, 4),
            p50=at[50.0] / 1000,
            p90=at[90.0] / 1000,
            p99=at[99.0] / 1000,
            p999=at[99.9] / 1000,
            max=histogram.get_max_value() / 1000,
        )

    def to_json(self) -> dict[str, float]:
        """The stable JSON object: p50, p90, p99, p999, max (plus min and mean)."""
        return {"min": self.min, "mean": self.mean, "p50": self.p50, "p90": self.p90,
                "p99": self.p99, "p999": self.p999, "max": self.max}
