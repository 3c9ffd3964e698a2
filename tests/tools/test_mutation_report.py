"""tools/mutation/report.py: the survivors file and the merging of runs' results."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "mutation_report", ROOT / "tools/mutation/report.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_report"] = module
    spec.loader.exec_module(module)
    return module


def _meta(
    directory: Path, module: str, codes: dict[str, int | None], hashes: dict[str, str]
) -> None:
    path = directory / "src" / "fastsmtp" / f"{module}.py.meta"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code_by_key": codes, "hash_by_function_name": hashes}))


def test_the_survivors_file_needs_a_reason_per_entry(report: ModuleType, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("# comment\n\nfastsmtp.m.x_f__mutmut_1 the same bytes\n")
    assert report.load_survivors(good) == {"fastsmtp.m.x_f__mutmut_1": "the same bytes"}
    bad = tmp_path / "bad.txt"
    bad.write_text("fastsmtp.m.x_f__mutmut_1\n")
    with pytest.raises(SystemExit, match="has no reason"):
        report.load_survivors(bad)


def test_function_of_a_mutant(report: ModuleType) -> None:
    assert report.function_of("fastsmtp._commands.x_mail_line__mutmut_12") == "x_mail_line"
    assert report.function_of("fastsmtp._session.xǁSMTPSessionǁtook__mutmut_3") == (
        "xǁSMTPSessionǁtook"
    )


def test_earlier_results_count_only_for_unchanged_functions(
    report: ModuleType, tmp_path: Path
) -> None:
    now = {
        "fastsmtp.m.x_same__mutmut_1": None,
        "fastsmtp.m.x_same__mutmut_2": 0,
        "fastsmtp.m.x_changed__mutmut_1": None,
        "fastsmtp.m.x_new__mutmut_1": None,
    }
    hashes = {"x_same": "aaa", "x_changed": "bbb", "x_new": "ccc"}
    newer, older = tmp_path / "newer", tmp_path / "older"
    _meta(newer, "m", {"fastsmtp.m.x_same__mutmut_1": None}, {"x_same": "aaa"})
    _meta(
        older,
        "m",
        {
            "fastsmtp.m.x_same__mutmut_1": 1,
            "fastsmtp.m.x_same__mutmut_2": 1,
            "fastsmtp.m.x_changed__mutmut_1": 1,
            "fastsmtp.m.x_gone__mutmut_1": 0,
        },
        {"x_same": "aaa", "x_changed": "old", "x_gone": "ddd"},
    )
    merged = report.with_earlier_results(now, hashes, "m", [newer, older, tmp_path / "none"])
    assert merged == {
        "fastsmtp.m.x_same__mutmut_1": 1,  # not run now, killed before, same code
        "fastsmtp.m.x_same__mutmut_2": 0,  # this run's own result stands
        "fastsmtp.m.x_changed__mutmut_1": None,  # the function changed since
        "fastsmtp.m.x_new__mutmut_1": None,
    }
