"""Coverage-guided fuzzing of the protocol core with atheris (optional: pip install atheris).

    .venv/bin/python -m tests.fuzz.atheris_core -max_total_time=60

CI runs the same target under hypothesis with a fixed budget (tests/test_fuzz_core.py);
this is for longer hunts by hand. Any crash is an AssertionError with the input saved.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import zenserve.conversation
    import zenserve.protocol  # noqa: F401

from tests.fuzz.core_target import check_core


def main() -> None:
    atheris.Setup(sys.argv, check_core)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
