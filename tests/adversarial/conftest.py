"""The hostile suite runs over every registered architecture, alone and under ``--workers 2``."""

from __future__ import annotations

import pytest

from tests.adversarial.harness import Setup, hostile_setups, setup_id
from zenserve.servers import ARCHITECTURES

HOSTILE_SETUPS = hostile_setups()
HOSTILE_IDS = [setup_id(name, extra) for name, extra in HOSTILE_SETUPS]


@pytest.fixture(params=HOSTILE_SETUPS, ids=HOSTILE_IDS)
def hostile_setup(request: pytest.FixtureRequest) -> Setup:
    name, extra = request.param
    return ARCHITECTURES[name], ("--arch", name, *extra)


# Measurements worth seeing in every run (C10K memory, slowloris p99), printed
# at the end of the test session: reported, never asserted as speed.
_REPORT: list[str] = []


@pytest.fixture
def report() -> list[str]:
    """Append a line here to have it printed in the session's summary."""
    return _REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _REPORT:
        terminalreporter.section("hostile suite measurements")
        for line in _REPORT:
            terminalreporter.write_line(line)
