"""`zenserve compare` end to end: a tiny real run, its files, and its report in a real browser.

One tiny comparison (every section, 2 architectures, 2 points, 0.3 s runs)
runs once for the module through the command line; the tests read what it
wrote. The report is opened by headless Chromium and its screenshot checked.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import re
import shutil
import subprocess
import sys
from html import escape
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy
import pytest

from zenserve.lab.points import COLUMNS
from zenserve.lab.results import csv_cell

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WINDOW = (1200, 2000)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ("throughput.png", "latency_ladder.png", "latency_fixed_rate.png", "concurrency.png",
           "availability.png", "worker_kill.png", "scalability.png")
SECTIONS = ("throughput", "latency", "concurrency", "availability", "scalability")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run `zenserve compare --tiny` once; the output directory and what it printed."""
    out = tmp_path_factory.mktemp("report")
    finished = subprocess.run(
        [sys.executable, "-m", "zenserve", "compare", "--tiny", "--out", str(out)],
        capture_output=True, text=True, timeout=240)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return out, finished.stdout


@pytest.fixture(scope="module")
def document(tiny_run: tuple[Path, str]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((tiny_run[0] / "results.json").read_text())
    return loaded


def points_where(document: dict[str, Any], **where: Any) -> list[dict[str, Any]]:
    return [point for point in document["points"]
            if all(point[key] == value for key, value in where.items())]


def test_every_output_file_is_written(tiny_run: tuple[Path, str]) -> None:
    out, stdout = tiny_run
    for name in ("report.html", "results.json", "results.csv", *FIGURES):
        assert (out / name).stat().st_size > 0, name
    for name in FIGURES:
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE), name
    assert "summary" in stdout
    assert f"Report: {(out / 'report.html').resolve()}" in stdout.replace("\n", "")


def test_csv_and_json_hold_the_same_points(tiny_run: tuple[Path, str],
                                           document: dict[str, Any]) -> None:
    with (tiny_run[0] / "results.csv").open(newline="") as source:
        rows = list(csv.reader(source))
    assert tuple(rows[0]) == COLUMNS == tuple(document["columns"])
    assert len(rows) - 1 == len(document["points"]) > 0
    for row, point in zip(rows[1:], document["points"], strict=True):
        assert row == [csv_cell(point[name]) for name in COLUMNS]
    # Every section was measured, and each point's median lies within its spread.
    assert {point["section"] for point in document["points"]} >= {*SECTIONS, "worker_kill"}
    for point in document["points"]:
        if point["median"] is not None:
            assert point["low"] <= point["median"] <= point["high"]
            assert point["runs"] == len(point["samples"])


def test_the_measurements_show_the_architectures_apart(document: dict[str, Any]) -> None:
    served = {(point["architecture"], point["x"]): point["median"]
              for point in points_where(document, section="concurrency")}
    assert served[("single", 0.0)] == 1.0
    assert served[("single", 2.0)] == 0.0  # busy with the first idle connection
    assert served[("asyncio-callbacks", 2.0)] == 1.0
    mixed = {point["architecture"]: point["median"] for point in points_where(
        document, section="availability", metric="success_ratio", condition="mixed")}
    assert mixed["single"] < mixed["asyncio-callbacks"]
    recovery = points_where(document, section="worker_kill", metric="recovery_ms")
    assert recovery and 0 < recovery[0]["median"] < 5000


def test_the_readings_quote_the_measured_numbers(document: dict[str, Any]) -> None:
    readings = document["readings"]
    assert set(readings) == set(SECTIONS)
    assert all(readings[section] for section in SECTIONS)
    peaks = {}
    for point in points_where(document, section="throughput", metric="throughput_rps"):
        name = point["architecture"]
        peaks[name] = max(peaks.get(name, 0.0), point["median"])
    # One sentence per architecture, starting with its name and quoting its peak
    # (whether the curve grows, stays flat or cannot tell, depends on the run).
    for name, peak in peaks.items():
        (sentence,) = [text for text in readings["throughput"]
                       if text.startswith((f"{name} ", f"{name}'s "))]
        assert f"{peak:,.0f} req/s" in sentence


def test_the_report_is_self_contained(tiny_run: tuple[Path, str],
                                      document: dict[str, Any]) -> None:
    html = (tiny_run[0] / "report.html").read_text()
    assert not re.search(r"""(src|href)=["'](https?:|//|file:)""", html)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == len(FIGURES)
    for image in images:
        assert base64.b64decode(image).startswith(PNG_SIGNATURE)
    for sentences in document["readings"].values():
        for sentence in sentences:
            assert escape(sentence) in html
    assert document["machine"]["cpu_model"] in html


def test_the_report_opens_in_a_real_browser(tiny_run: tuple[Path, str],
                                            tmp_path: Path) -> None:
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={screenshot}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
         (tiny_run[0] / "report.html").resolve().as_uri()],
        capture_output=True, timeout=60, check=False)
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    pixels = matplotlib.image.imread(screenshot)
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    colours = numpy.unique(pixels[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 100  # text, plots and tables, not a blank page
    assert not math.isclose(float(pixels[..., :3].std()), 0.0)
