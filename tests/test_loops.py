"""zenserve.loops: the one home of uvloop, optional and imported only when asked for."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.helpers import environment_without
from zenserve.load.eventloop import loop_name, new_event_loop
from zenserve.loops import is_uvloop, new_uvloop


def test_new_uvloop_is_a_uvloop_and_asyncio_loops_are_not() -> None:
    uv, plain = new_uvloop(), asyncio.new_event_loop()
    try:
        assert is_uvloop(uv) and not is_uvloop(plain)
        assert (loop_name(uv), loop_name(plain)) == ("uvloop", "asyncio")
        assert uv.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
    finally:
        uv.close()
        plain.close()


def test_without_uvloop_the_load_generator_falls_back_and_the_server_fails_at_import(
        tmp_path: Path) -> None:
    code = ("import zenserve.loops\n"
            "from zenserve.errors import ZenserveError\n"
            "from zenserve.load.eventloop import loop_name, new_event_loop\n"
            "print(loop_name(new_event_loop('auto')))\n"
            "try:\n    new_event_loop('uvloop')\nexcept ZenserveError as error:\n"
            "    print(error)\n"
            "try:\n    import zenserve.servers.uvloop_callbacks\nexcept ImportError as error:\n"
            "    print(error.name)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, env=environment_without("uvloop", tmp_path),
                            check=True)
    assert result.stdout.splitlines() == [
        "asyncio", "uvloop is not installed (pip install 'zenserve[fast]')", "uvloop"]


def test_auto_prefers_uvloop_when_installed() -> None:
    loop = new_event_loop("auto")
    try:
        assert is_uvloop(loop)
    finally:
        loop.close()
