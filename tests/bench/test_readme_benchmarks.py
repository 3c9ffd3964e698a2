"""The README's benchmark table and chart show the results file the README names.

``benchmarks/run.py --save-json`` keeps every cell's per-run values; ``benchmarks/summary.py``
computes the README's table from that file and ``benchmarks/chart.py`` draws the chart from
it. This checks, without matplotlib, that the table in README.md (and its twin in
docs/performance.rst) is the one computed from the named file, and that the committed chart
carries every bar value of that file (as the chart labels them) and its date: a re-run that
updates one but not the others fails here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
README = ROOT / "README.md"
CHART = ROOT / "docs" / "_static" / "benchmarks.svg"
if not (BENCHMARKS.is_dir() and README.is_file()):  # cibuildwheel copies tests/ alone
    pytest.skip("benchmarks/ and README.md are not beside tests/ here", allow_module_level=True)


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def benchmarks_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Benchmarks\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def named_results() -> dict[str, Any]:
    names = set(re.findall(r"benchmarks/results-[0-9-]+\.json", benchmarks_section()))
    assert len(names) == 1, f"the Benchmarks section must name one results file, not {names}"
    with open(ROOT / names.pop(), encoding="utf-8") as src:
        data: dict[str, Any] = json.load(src)
    return data


def test_readme_table_is_computed_from_the_results_file() -> None:
    table = load("summary").summary_table(named_results())
    assert table.count("\n") >= 5, table
    assert table in benchmarks_section(), (
        "README's table differs from `python benchmarks/summary.py <results file>`:\n" + table
    )


def test_performance_page_shows_the_same_table() -> None:
    page = ROOT / "docs" / "performance.rst"
    table = load("summary").summary_rst(named_results())
    assert table in page.read_text(encoding="utf-8"), (
        "docs/performance.rst's table differs from `python benchmarks/summary.py --rst "
        "<results file>`:\n" + table
    )


def test_chart_shows_the_results_file() -> None:
    chart = load("chart")
    results = named_results()
    svg = CHART.read_text(encoding="utf-8")
    # matplotlib writes text as <text> elements (svg.fonttype "none"): the bar labels.
    texts = Counter(re.findall(r"<text[^>]*>([^<]*)</text>", svg))
    expected: Counter[str] = Counter()
    for panel in chart.PANELS:
        for _label, values in chart.bars(results, panel):
            expected.update(chart.fmt_value(value, panel.unit) for _key, value in values)
    assert sum(expected.values()) >= 40, expected
    missing = expected - texts
    assert not missing, f"bar values of the results file not in the chart: {dict(missing)}"
    assert results["meta"]["date"] in svg
