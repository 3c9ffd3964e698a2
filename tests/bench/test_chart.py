"""benchmarks/chart.py and run.py's --save-json / --from-json / --chart.

Needs matplotlib (the ``bench`` extra); skipped without it. The chart must show the
numbers the markdown report prints, with units on the axes and every scenario labelled.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if not BENCHMARKS.is_dir():  # cibuildwheel tests the wheel with a copy of tests/ alone
    pytest.skip("benchmarks/ is not beside tests/ here", allow_module_level=True)


def load(name: str) -> ModuleType:
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def cell(scenario: str, client: str, loop: str, rates: list[float], **more: Any) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "client": client,
        "loop": loop,
        "pin": "same",
        "rate": rates,
        "cpu_us": [50.0] * len(rates),
        "sink_us": [20.0] * len(rates),
        "sys_share": [0.25] * len(rates),
        "rt": more.get("rt", []),
    }


def tiny_results() -> dict[str, Any]:
    """What run.py --save-json writes, for three scenarios of three units."""
    return {
        "format": 1,
        "meta": {
            "date": "2026-12-07",
            "cpus": 2,
            "python": "3.11.7",
            "sink": "Postfix smtp-sink (C)",
            "steal": "1.0%",
            "pin": "targets",
            "runs": 3,
            "seconds": 0.6,
            "delay_ms": 10.0,
            "delay_messages": 20,
        },
        "scenarios": ["sendmail", "dot10m", "rtt20-1"],
        "sizes": {"sendmail": 1024, "dot10m": 10485760, "rtt20-1": 1024},
        "rtt_ms": 21.0,
        "elapsed_s": 12.0,
        "cells": [
            cell("sendmail", "fastsmtp", "asyncio", [10100.0, 10179.4, 9000.0]),
            cell("sendmail", "fastsmtp", "uvloop", [13024.0, 12000.0, 13100.0]),
            cell("sendmail", "aiosmtplib", "asyncio", [3266.0, 3300.0, 3100.0]),
            cell("sendmail", "smtp-source", "-", [21881.0, 21000.0, 22000.0]),
            cell("dot10m", "fastsmtp", "asyncio", [29.28, 29.0, 30.0]),
            cell("dot10m", "aiosmtplib", "asyncio", [6.19, 6.0, 6.5]),
            cell("rtt20-1", "fastsmtp", "asyncio", [1000 / 42.9], rt=[2.05]),
            cell("rtt20-1", "aiosmtplib", "asyncio", [1000 / 86.1], rt=[4.09]),
        ],
    }


def svg_texts(path: Path) -> list[str]:
    """The text elements of a matplotlib SVG written with svg.fonttype 'none'."""
    return [t.strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text())]


def test_chart_labels_units_and_values(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    chart = load("chart")
    path = tmp_path / "bench.svg"
    chart.draw(tiny_results(), path)
    texts = svg_texts(path)
    joined = "\n".join(texts)
    # Scenario labels (x axis) and units (y axes).
    for label in ("sendmail", "1 connection", "1 recipient"):
        assert label in joined
    for unit in ("messages per second (msg/s)", "(MB/s, 10^6 bytes)", "milliseconds per message"):
        assert unit in joined
    # The medians, formatted as the markdown table formats them.
    for value in ("10,100", "13,024", "3,266", "21,881", "42.9", "86.1"):
        assert value in texts
    assert f"{29.28 * 10485760 / 1e6:,.1f}" in texts  # MB/s = msg/s x size
    # Legend: every client drawn.
    for name in ("fastsmtp, asyncio", "aiosmtplib 5.1.3, asyncio", "Postfix smtp-source (C)"):
        assert name in texts


def test_from_json_report_and_chart_show_the_same_numbers(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = tmp_path / "results.json"
    results.write_text(json.dumps(tiny_results()))
    svg = tmp_path / "chart.svg"
    command = [sys.executable, str(BENCHMARKS / "run.py"), "--from-json", str(results)]
    done = subprocess.run(
        [*command, "--chart", str(svg)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    texts = svg_texts(svg)
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ")]
    numbers = [
        [c.strip() for c in row]
        for row in rows
        if row[1].strip() in ("fastsmtp", "aiosmtplib", "smtp-source")
    ]
    assert len(numbers) == 8
    for row in numbers:
        if row[0].startswith("20 ms RTT"):
            assert row[4] in texts  # ms/message
        elif row[0].startswith("1 connection, 10 MiB"):
            assert row[5] in texts  # MB/s
        else:
            assert row[4] in texts  # msg/s


def test_save_json_round_trip_reproduces_the_report() -> None:
    run = load("run")
    cells = {
        ("sendmail", "fastsmtp", "uvloop"): run.Cell(
            rate=[13000.0, 12000.0, 14000.0],
            cpu_us=[44.0, 45.0, 43.0],
            sink_us=[17.0, 18.0, 16.0],
            sys_share=[0.2, 0.2, 0.2],
            pin="same",
        ),
        ("sendmail", "aiosmtplib", "uvloop"): run.Cell(
            rate=[4300.0, 4400.0, 4200.0],
            cpu_us=[160.0] * 3,
            sink_us=[34.0] * 3,
            sys_share=[0.13] * 3,
            pin="same",
        ),
    }
    args = argparse.Namespace(
        scenarios=["sendmail"], pin="same", runs=3, seconds=0.6, delay_ms=10.0, delay_messages=20
    )
    res = {"cells": cells, "rtt_ms": None, "elapsed_s": 5.0}
    data = json.loads(json.dumps(run.results_data(args, "smtp-sink", res, "0.5%")))
    assert data["sizes"] == {"sendmail": 1024}
    blank = argparse.Namespace()
    _, sink, res2, steal = run.load_results_data(data, blank)
    assert run.report(blank, sink, res2, steal, data["meta"]) == run.report(
        args, "smtp-sink", res, "0.5%", data["meta"]
    )
