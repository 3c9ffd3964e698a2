"""Summarise a mutmut run over fastsmtp's core: per-module numbers, checked against survivors.txt.

Run by ``tools/mutation/run.sh`` after ``mutmut run``, from the repository root. Reads the
results mutmut keeps in ``mutants/src/fastsmtp/*.py.meta`` and the list of equivalent mutants
(one ``mutant-name  reason`` per line) in ``tools/mutation/survivors.txt``, writes a Markdown
report (``mutants/mutation-report.md`` by default) and exits 1 when a module has less than
95 % of its non-equivalent mutants killed. Surviving mutants that are not in the list are
shown with their diff, so each can be killed with a test or listed with its reason.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

MODULES = (
    "_parser_py",
    "_session",
    "_address",
    "_commands",
    "_transaction",
    "email",
    "_flatten",
    "_folding",
)
TARGET = 0.95
# mutmut's exit codes (mutmut.stats.status_by_exit_code). A timeout counts as killed: the
# mutant made the tests hang, and the suite noticed.
KILLED = {1, 3, 36, 24, -24, 152, 255, 37}
SURVIVED = {0}
NO_TESTS = {5, 33}
# The CLI without `python -m mutmut` (which imports mutmut.__main__ twice).
MUTMUT = "import sys; from mutmut.__main__ import cli; sys.argv[0] = 'mutmut'; cli()"


def load_survivors(path: Path) -> dict[str, str]:
    """``mutant name -> reason`` from the survivors file (``#`` comments, blank lines)."""
    listed: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: {name} has no reason")
        listed[name] = reason.strip()
    return listed


def function_of(name: str) -> str:
    """The key of a mutant's function in mutmut's hashes: ``x_NAME`` or ``xǁCLASSǁMETHOD``."""
    return name.rpartition(".")[2].rpartition("__mutmut_")[0]


def with_earlier_results(
    codes: dict[str, int | None], hashes: dict[str, str], module: str, earlier: list[Path]
) -> dict[str, int | None]:
    """``codes`` with the mutants it has no result for taken from earlier runs (the first
    directory that has one), where the function's code is what it is now: mutmut numbers a
    function's mutants in order, so the same hash means the same mutants."""
    merged = dict(codes)
    for directory in earlier:
        meta = directory / "src" / "fastsmtp" / f"{module}.py.meta"
        if not meta.exists():
            continue
        data = json.loads(meta.read_text())
        for name, code in data["exit_code_by_key"].items():
            function = function_of(name)
            if (
                code is not None
                and name in merged
                and merged[name] is None
                and data["hash_by_function_name"].get(function) == hashes.get(function)
            ):
                merged[name] = code
    return merged


def diff_of(name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", MUTMUT, "show", name], capture_output=True, text=True
    )
    return (out.stdout or out.stderr).strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(MODULES))
    parser.add_argument("--survivors", type=Path, default=Path("tools/mutation/survivors.txt"))
    parser.add_argument("--output", type=Path, default=Path("mutants/mutation-report.md"))
    parser.add_argument("--no-diffs", action="store_true", help="do not show survivors' diffs")
    parser.add_argument(
        "--earlier",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="another run's mutants/ directory (repeatable, newest first): its result counts "
        "for a mutant this run did not run, if the mutant's function is unchanged since",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PREFIX",
        help="count only mutants whose name starts with PREFIX (repeatable; run.sh --function)",
    )
    args = parser.parse_args()

    listed = load_survivors(args.survivors)
    only = tuple(args.only)
    rows = []
    unexplained: list[str] = []
    stale: list[str] = []
    missing: list[str] = []
    failed = False
    for module in args.modules:
        meta = Path("mutants/src/fastsmtp") / f"{module}.py.meta"
        if not meta.exists():
            print(f"no results for {module} ({meta} missing)", file=sys.stderr)
            failed = True
            continue
        data = json.loads(meta.read_text())
        codes: dict[str, int | None] = data["exit_code_by_key"]
        codes = with_earlier_results(codes, data["hash_by_function_name"], module, args.earlier)
        if args.only:
            codes = {name: code for name, code in codes.items() if name.startswith(only)}
        killed = sum(code in KILLED for code in codes.values())
        alive = [name for name, code in codes.items() if code in SURVIVED | NO_TESTS]
        unchecked = [name for name, code in codes.items() if code is None]
        other = len(codes) - killed - len(alive) - len(unchecked)
        equivalent = [name for name in alive if name in listed]
        bad = [name for name in alive if name not in listed]
        stale += [name for name, code in codes.items() if name in listed and code in KILLED]
        # Entries naming no mutant of this module: the function was removed or renamed,
        # or it lost mutants (mutmut numbers a function's mutants 1, 2, 3... in order).
        prefix = f"fastsmtp.{module}."
        missing += [
            name
            for name in listed
            if name.startswith(prefix) and name not in codes and (not only or name.startswith(only))
        ]
        unexplained += bad
        considered = len(codes) - len(equivalent) - len(unchecked)
        rate = killed / considered if considered else 1.0
        # Mutants left unchecked were sampled out (run.sh --sample) or not reached.
        ok = rate >= TARGET and considered > 0
        failed |= not ok
        rows.append(
            f"| {module} | {len(codes)} | {killed} | {len(equivalent)} | {len(bad)} "
            f"| {other} | {len(unchecked)} | {rate:.1%} | {'ok' if ok else 'BELOW TARGET'} |"
        )

    lines = [
        "# Mutation testing of the pure-Python core",
        "",
        f"Target: at least {TARGET:.0%} of the non-equivalent mutants of each module killed.",
        "",
        "| module | mutants | killed | equivalent (listed) | surviving, not listed "
        "| suspicious/other | not run (sampled out) | killed / non-equivalent run | |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
    ]
    if stale:
        lines += [
            "## Listed as equivalent but killed now (remove from survivors.txt)",
            "",
            *[f"- `{name}`" for name in stale],
            "",
        ]
    if missing:
        lines += [
            "## Listed as equivalent but no such mutant now (remove from survivors.txt)",
            "",
            *[f"- `{name}`" for name in missing],
            "",
        ]
    if unexplained:
        lines += ["## Surviving mutants not in survivors.txt", ""]
        for name in unexplained:
            lines.append(f"### `{name}`")
            if not args.no_diffs:
                lines += ["", "```diff", diff_of(name), "```"]
            lines.append("")
    report = "\n".join(lines)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)
    print(f"report written to {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
