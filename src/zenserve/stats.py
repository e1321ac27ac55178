"""Per-process counters, kept as plain integers so counting costs almost nothing.

Architectures bump these fields directly in their hot paths; the metrics
module reads them when Prometheus scrapes, so no exporter is on the request path.
"""

from __future__ import annotations


class Stats:
    """Counts for one server process."""

    __slots__ = (
        "answered",
        "busy",
        "bytes_in",
        "bytes_out",
        "connections_active",
        "connections_denied",
        "connections_opened",
        "faults",
        "internal_errors",
        "too_long",
        "unknown",
    )

    def __init__(self) -> None:
        self.connections_opened = 0
        self.connections_active = 0
        self.connections_denied = 0
        self.answered = 0
        self.unknown = 0
        self.too_long = 0
        self.busy = 0
        self.internal_errors = 0
        self.faults = 0  # injected by the service's fault rate (answered with ERROR_FAULT)
        self.bytes_in = 0
        self.bytes_out = 0

    def snapshot(self) -> dict[str, int]:
        """All counters by name."""
        return {name: getattr(self, name) for name in self.__slots__}
