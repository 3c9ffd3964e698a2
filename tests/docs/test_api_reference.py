"""The API reference (docs/api/*.rst) documents every public name.

Public: every name in ``fastsmtp.__all__`` and fastsmtp's additions importable from the
package (``SMTPPool``, ``Timeouts``, ...), and every name in the ``__all__`` of each public
module (a module of the package whose name does not start with ``_``). A name counts as
documented when an ``auto*``/``py:*`` directive names it in that module, or names the same
object under another module (``fastsmtp.SMTP`` documents ``fastsmtp.smtp.SMTP``). The pages
themselves are checked by the warning-free Sphinx build in CI (``.ci/run``).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import types
from pathlib import Path

import pytest

import fastsmtp

API = Path(__file__).resolve().parents[2] / "docs" / "api"
if not API.is_dir():  # cibuildwheel tests the wheel with a copy of tests/ alone
    pytest.skip("docs/ is not beside tests/ here", allow_module_level=True)
_DIRECTIVE = re.compile(
    r"^\s*\.\. (?:auto(?:class|function|exception|data|attribute|module)|"
    r"py:(?:class|function|exception|data|module|attribute|type)):: +([\w.]+)\s*$",
    re.MULTILINE,
)
_AUTOMODULE_MEMBERS = re.compile(
    r"^\.\. automodule:: +([\w.]+)\s*\n(?:\s+:[\w-]+:.*\n)*?\s+:members:(.*)$", re.MULTILINE
)
#: Modules a reader never imports: the command line and the stand-in for the compiled core.
NOT_API = {"fastsmtp.__main__"}


def public_modules() -> list[str]:
    names = ["fastsmtp"]
    for info in pkgutil.walk_packages(fastsmtp.__path__, "fastsmtp."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        if info.name not in NOT_API:
            names.append(info.name)
    return sorted(names)


def public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    names = set(getattr(module, "__all__", ()))
    if module_name == "fastsmtp":
        # the additions: importable from the package though not in (aiosmtplib's) __all__
        names |= {
            name
            for name, value in vars(module).items()
            if not isinstance(value, types.ModuleType) and name != "annotations"
        }
    return sorted(n for n in names if not n.startswith("_"))


def documented() -> dict[str, object]:
    """Every documented dotted name, with the object it names (None for a module's)."""
    found: dict[str, object] = {}
    for page in sorted(API.glob("*.rst")):
        text = page.read_text(encoding="utf-8")
        names = list(_DIRECTIVE.findall(text))
        # ``automodule`` with ``:members:`` documents the module's __all__ (or the names listed)
        for module_name, members in _AUTOMODULE_MEMBERS.findall(text):
            listed = [m.strip() for m in members.split(",") if m.strip()]
            module = importlib.import_module(module_name)
            names += [f"{module_name}.{m}" for m in listed or getattr(module, "__all__", ())]
        for dotted in names:
            module_name, _, name = dotted.rpartition(".")
            try:
                found[dotted] = getattr(importlib.import_module(module_name), name)
            except (ImportError, AttributeError, ValueError):
                found[dotted] = None
    return found


DOCUMENTED = documented()


def test_api_pages_exist() -> None:
    assert (API / "index.rst").is_file()
    assert DOCUMENTED, "no documented names found in docs/api"


@pytest.mark.parametrize("module_name", public_modules())
def test_every_public_name_is_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = []
    for name in public_names(module_name):
        obj = getattr(module, name)
        dotted = f"{module_name}.{name}"
        if dotted in DOCUMENTED:
            continue
        # the same object documented where users import it (names and values alike, so two
        # constants that happen to be equal do not count for each other)
        if any(
            other.rpartition(".")[2] == name and value is obj
            for other, value in DOCUMENTED.items()
        ):
            continue
        missing.append(dotted)
    assert not missing, f"not in docs/api/*.rst: {', '.join(missing)}"


@pytest.mark.parametrize("module_name", public_modules())
def test_every_public_module_is_documented(module_name: str) -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in API.glob("*.rst"))
    assert re.search(
        rf"^\s*\.\. (?:automodule|py:module|module):: +{re.escape(module_name)}\s*$",
        text,
        re.MULTILINE,
    ), f"docs/api/*.rst has no module directive for {module_name}"
