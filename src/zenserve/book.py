"""The book's own listings, read from the course text, to run beside zenserve.

The course text (``shared/seed/*.md``) quotes chapter 7's listings with their
fopnp file names in a header comment; tests run the book's client against
zenserve and benchmarks race zenserve against the book's servers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from zenserve.errors import ZenserveError

_CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
_FILE_NAME = re.compile(r"fopnp/blob/\S+/chapter07/(\w+\.py)")


def find_seed() -> Path:
    """The course text folder: $ZENSERVE_SEED, or shared/seed beside the checkout."""
    candidates = [Path(os.environ["ZENSERVE_SEED"])] if "ZENSERVE_SEED" in os.environ else []
    here = Path(__file__).resolve()
    candidates += [parent / "shared" / "seed" for parent in here.parents]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.md")):
            return candidate
    raise ZenserveError("course text not found: set ZENSERVE_SEED to the shared/seed folder")


def listings(seed: Path | None = None) -> dict[str, str]:
    """Every quoted listing, by its fopnp file name (``zen_utils.py``, ``srv_async.py``...)."""
    found: dict[str, str] = {}
    for markdown in sorted((seed or find_seed()).glob("*.md")):
        for code in _CODE_BLOCK.findall(markdown.read_text(encoding="utf-8")):
            name = _FILE_NAME.search(code)
            if name:
                found[name.group(1)] = code
    return found


def write_listings(directory: Path, without_sleep: bool = False) -> dict[str, Path]:
    """Write every listing into ``directory``; optionally drop listing 7-1's ``sleep(0.0)``.

    ``without_sleep`` removes the ``time.sleep(0.0)`` line, since on these
    machines even a zero sleep costs about 56 µs per request.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, code in listings().items():
        if without_sleep:
            code = re.sub(r"^\s*time\.sleep\(0\.0\).*\n", "", code, flags=re.MULTILINE)
        path = directory / name
        path.write_text(code, encoding="utf-8")
        paths[name] = path
    return paths
