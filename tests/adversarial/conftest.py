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
