"""The selector ``fastsmtp._speedups``: FASTSMTP_NO_EXTENSIONS switches to the pure core."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys

REQUIRE_EXTENSIONS = os.environ.get("FASTSMTP_REQUIRE_EXTENSIONS") == "1"
PROBE = "import fastsmtp._speedups as s; print(s.IMPLEMENTATION, s.NO_EXTENSIONS)"


def probe(no_extensions: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "FASTSMTP_NO_EXTENSIONS"}
    if no_extensions:
        env["FASTSMTP_NO_EXTENSIONS"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def compiled_core_exists() -> bool:
    spec = importlib.util.find_spec("fastsmtp._parser")
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


def test_no_extensions_forces_pure_python() -> None:
    assert probe(no_extensions=True) == "py True"


def test_compiled_core_is_chosen_by_default() -> None:
    output = probe(no_extensions=False)
    if REQUIRE_EXTENSIONS:
        assert output == "c False", "FASTSMTP_REQUIRE_EXTENSIONS=1 but the pure core was selected"
    elif compiled_core_exists():
        assert output == "c False"
    else:
        assert output == "py False"
