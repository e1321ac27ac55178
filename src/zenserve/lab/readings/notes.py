"""What every section's reading adds: where the generator was the limit, where runs disagreed."""

from __future__ import annotations

from collections.abc import Sequence

from zenserve.lab.points import Point
from zenserve.lab.wording import names

# Spread (highest minus lowest, over the median) beyond which runs disagreed.
NOISY_SPREAD = 0.3


def notes(points: Sequence[Point]) -> list[str]:
    """Where the generator was the limit, and where repeated runs disagreed."""
    notes = []
    saturated = [point for point in points if point.saturated]
    if saturated:
        where = names([f"{point.architecture} ({point.x_name} {point.x:,.0f})"
                        if point.x is not None else point.architecture
                        for point in saturated[:4]])
        more = f" and {len(saturated) - 4} more" if len(saturated) > 4 else ""
        notes.append(f"The load generator used a full core at {where}{more}: those points "
                     f"(hollow markers) show the generator's limit as much as the server's.")
    noisy = [point for point in points if point.measured and point.median > 0
             and (point.high - point.low) / point.median > NOISY_SPREAD]
    if noisy:
        notes.append(f"Repeated runs disagreed by more than {NOISY_SPREAD:.0%} at "
                     f"{len(noisy)} of {len(points)} points (see the error bars): treat those "
                     f"differences as noise of this machine.")
    return notes
