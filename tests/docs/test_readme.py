"""Every Python block in README.md that sends mail is proven to work.

The rule, checked block by block:

- A block that **sends mail** (it awaits something, or calls ``send``, ``send_message``,
  ``sendmail``, ``send_many``, ``deliver``/``deliver_message`` or ``enqueue_send``) must be a
  verbatim excerpt of an ``examples/*.py`` script: the block's lines, dedented, equal a run of
  consecutive lines of the script, dedented the same way. Two things are ignored when comparing:
  the ``# [name]`` marker lines the documentation uses for ``literalinclude``, and how many
  blank lines separate two lines. The script itself is run against real servers: by
  ``tests/docs/test_examples.py`` (aiosmtpd with STARTTLS and implicit TLS), or, when its
  header says ``# example-needs: ...``, by its owner's own test (named in the script's
  docstring), so the excerpt is code that ran.
- A block that does not send mail (imports, configuration objects, a local function call) is
  exempt from that, and must still compile.

Every block must be valid Python (top-level ``await`` allowed, as in a snippet).
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"

if not README.exists() or not EXAMPLES.exists():  # cibuildwheel tests a copy of tests/ alone
    pytest.skip("README.md and examples/ are not beside tests/ here", allow_module_level=True)

_FENCE = re.compile(r"^(?P<indent> *)```python\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
_SENDS = re.compile(
    r"\bawait\b|\.send\(|\bsend\(|send_message\(|sendmail\(|send_many\(|"
    r"\bdeliver(_message)?\(|enqueue_send\("
)
_MARKER = re.compile(r"^\s*# \[[\w-]+\]\s*$")
_EXPECT = re.compile(r"^# expect-messages: \d+\s*$", re.M)


@dataclass(frozen=True)
class Block:
    line: int  # where the block's first line of code is in README.md (1-based)
    code: str  # dedented

    @property
    def sends_mail(self) -> bool:
        return bool(_SENDS.search(self.code))


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start("body")) + 1
        found.append(Block(line, textwrap.dedent(match.group("body"))))
    return found


def _normalised(lines: list[str]) -> list[str]:
    """Lines without trailing spaces and marker comments, runs of blank lines as one."""
    out: list[str] = []
    for line in lines:
        line = line.rstrip()
        if _MARKER.match(line):
            continue
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return out


def _dedented(lines: list[str]) -> list[str]:
    return textwrap.dedent("\n".join(lines)).split("\n")


def excerpt_source(block: Block, scripts: dict[Path, list[str]]) -> Path | None:
    """The example script that ``block`` is an excerpt of, or None."""
    wanted = _normalised(block.code.split("\n"))
    size = len(wanted)
    for path, lines in scripts.items():
        for start in range(len(lines) - size + 1):
            window = lines[start : start + size]
            if window[0].strip() != wanted[0].strip():
                continue
            if _dedented(window) == wanted:
                return path
    return None


@pytest.fixture(scope="module")
def scripts() -> dict[Path, list[str]]:
    return {
        path: _normalised(path.read_text(encoding="utf-8").split("\n"))
        for path in sorted(EXAMPLES.glob("*.py"))
    }


BLOCKS = readme_blocks()


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 10
    assert sum(block.sends_mail for block in BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_block_compiles(block: Block) -> None:
    compile(block.code, f"README.md:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


SENDING = [b for b in BLOCKS if b.sends_mail]


@pytest.mark.parametrize("block", SENDING, ids=[f"README.md:{b.line}" for b in SENDING])
def test_sending_block_is_an_excerpt_of_a_run_example(
    block: Block, scripts: dict[Path, list[str]]
) -> None:
    source = excerpt_source(block, scripts)
    assert source is not None, (
        f"README.md line {block.line}: this block sends mail but is not a verbatim excerpt "
        f"of any examples/*.py script:\n{block.code}"
    )
    # The script is one the harness (or its owner's test) runs: it declares what it sends.
    assert len(_EXPECT.findall(source.read_text(encoding="utf-8"))) == 1, source


def test_excerpt_matching_is_strict() -> None:
    """The matcher itself: a changed argument, or lines out of order, do not match."""
    script = {
        Path("x.py"): _normalised(
            ["async def main():", "    # [m]", "    await send(a, b=1)", "", "", "    print(1)"]
        )
    }
    assert excerpt_source(Block(1, "await send(a, b=1)\n\nprint(1)\n"), script) is not None
    assert excerpt_source(Block(1, "await send(a, b=2)\nprint(1)\n"), script) is None
    assert excerpt_source(Block(1, "print(1)\nawait send(a, b=1)\n"), script) is None
