"""Fixtures: a real server per architecture setup, on port 0, ready before use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from zenserve.process import ServerProcess
from zenserve.servers import ARCHITECTURES, Architecture


def server_setups() -> list[tuple[str, tuple[str, ...]]]:
    """Every architecture, alone and under --workers 2."""
    alone = [(name, ()) for name in ARCHITECTURES]
    return alone + [(name, ("--workers", "2")) for name in ARCHITECTURES]


SETUPS = server_setups()
SETUP_IDS = [" ".join((name, *extra)).replace(" ", "-") for name, extra in SETUPS]


@pytest.fixture(scope="module", params=SETUPS, ids=SETUP_IDS)
def setup(request: pytest.FixtureRequest) -> tuple[Architecture, tuple[str, ...]]:
    name, extra = request.param
    return ARCHITECTURES[name], ("--arch", name, *extra)


@pytest.fixture(scope="module")
def zen_server(setup: tuple[Architecture, tuple[str, ...]]) -> Iterator[ServerProcess]:
    """One server per setup, shared by the module's tests (each closes its clients)."""
    _, args = setup
    with ServerProcess(*args) as server:
        yield server
