"""zenserve's own metrics, read from an instance's Prometheus endpoint (``--metrics-port``).

Through HAProxy the analysis sees what HAProxy sees; an instance that also
serves metrics says how many requests it answered and how many ended in a
server-side error (an injected fault, an internal error of the service, or
"server busy").
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request

# One sample line of the requests counter, e.g.
# zenserve_requests_total{outcome="answered"} 12.0
_REQUESTS = re.compile(r'^zenserve_requests_total\{outcome="(\w+)"\} ([0-9.eE+]+)$', re.M)
# Outcomes that are the server's failure, not the client's (an unknown
# question or an over-long one is the client's).
FAILED_OUTCOMES = frozenset({"fault", "internal_error", "busy"})


def parse_requests(text: str) -> tuple[int, int] | None:
    """(requests, failed requests) from Prometheus text; None without the counter."""
    outcomes = {name: int(float(value)) for name, value in _REQUESTS.findall(text)}
    if not outcomes:
        return None
    failed = sum(count for name, count in outcomes.items() if name in FAILED_OUTCOMES)
    return sum(outcomes.values()), failed


def scrape_requests(url: str, timeout: float) -> tuple[int, int] | None:
    """The instance's (requests, failed requests), or None when it cannot be read now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return parse_requests(response.read().decode(errors="replace"))
    except (OSError, urllib.error.URLError, ValueError):
        return None
