"""The README's benchmark summary table, computed from ``run.py --save-json`` results.

The README shows this table beside the chart that ``chart.py`` draws from the same file, and
``tests/bench/test_readme_benchmarks.py`` checks that both still match the results file the
README names. Ratios are medians of per-run ratios, as in ``run.py``'s full report:
"vs aiosmtplib" against aiosmtplib on the same loop, "vs smtp-source" against Postfix's C
client in the same scenario, "vs own sendmail" against the same client's ``sendmail`` of the
same content.

Usage: ``python benchmarks/summary.py [--rst] results.json`` (``run.py`` prints the markdown;
``--rst`` gives the list-table of docs/performance.rst).
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any

Cells = dict[tuple[str, str, str], dict[str, Any]]

HEADER = (
    "| scenario (uvloop unless noted) | fastsmtp vs aiosmtplib | fastsmtp vs smtp-source (C) "
    "| vs fastsmtp's own `sendmail` |\n|---|---:|---:|---:|"
)

# (row label, scenario, its sendmail twin or None)
ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("one connection, `sendmail` 1 KiB", "sendmail", None),
    ("one connection, `send_message(EmailMessage)`", "send_message", "sendmail"),
    ("one message to 100 recipients, `sendmail`", "rcpt100", None),
    ("one message to 100 recipients, `send_message`", "rcpt100_msg", "rcpt100"),
    ('10 MiB message, half the lines start with ".", `sendmail`', "dot10m", None),
    ("the same 10 MiB body, `send_message`", "dot10m_msg", "dot10m"),
    ("16 connections, client and sink on separate CPUs, `sendmail`", "conns16", None),
    ("16 connections, separate CPUs, `send_message`", "conns16_msg", "conns16"),
    ("`send()` per message (new connection, EHLO, QUIT each time)", "send", None),
)


def ratio(cells: Cells, scenario: str, loop: str, base: tuple[str, str, str]) -> float | None:
    """Median of per-run ratios of fastsmtp on ``loop`` to the ``base`` cell."""
    cell, other = cells.get((scenario, "fastsmtp", loop)), cells.get(base)
    if cell is None or other is None:
        return None
    return statistics.median(v / b for v, b in zip(cell["rate"], other["rate"], strict=False))


def fmt(value: float | None) -> str:
    """Two significant digits or so: 0.67x, 2.7x, 25x."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.2f}x"
    return f"{value:.1f}x" if value < 10 else f"{value:.0f}x"


def both(cells: Cells, scenario: str, base_of: Any) -> str:
    """``"<uvloop> (asyncio <asyncio>)"`` for the ratio against ``base_of(loop)``."""
    uv = ratio(cells, scenario, "uvloop", base_of("uvloop"))
    aio = ratio(cells, scenario, "asyncio", base_of("asyncio"))
    if uv is None and aio is None:
        return "-"
    return f"{fmt(uv)} (asyncio {fmt(aio)})"


def round_trips(cells: Cells, scenario: str, client: str) -> float | None:
    cell = cells.get((scenario, client, "uvloop"))
    return statistics.median(cell["rt"]) if cell and cell.get("rt") else None


def summary_table(results: dict[str, Any]) -> str:
    """The markdown table (no trailing newline)."""
    cells: Cells = {(c["scenario"], c["client"], c["loop"]): c for c in results["cells"]}
    lines = [HEADER]
    for label, name, twin in ROWS:
        if not any(key[0] == name for key in cells):
            continue
        vs_aio = both(cells, name, lambda loop, n=name: (n, "aiosmtplib", loop))
        vs_c = both(cells, name, lambda _loop, n=name: (n, "smtp-source", "-"))
        if name == "sendmail" and vs_c != "-":
            split = ratio(cells, "conns1", "uvloop", ("conns1", "smtp-source", "-"))
            if split is not None:
                vs_c = f"{vs_c[:-1]}; split CPUs {fmt(split)})"
        own = both(cells, name, lambda loop, t=twin: (t, "fastsmtp", loop)) if twin else "-"
        lines.append(f"| {label} | {vs_aio} | {vs_c} | {own} |")
    rt = {
        s: (round_trips(cells, s, "fastsmtp"), round_trips(cells, s, "aiosmtplib"))
        for s in ("rtt20-1", "rtt20-10")
    }
    if all(a is not None and b is not None for a, b in rt.values()):
        (f1, a1), (f10, a10) = rt["rtt20-1"], rt["rtt20-10"]
        lines.append(
            "| 20 ms round trip: round trips per message, 1 / 10 recipients | "
            f"{f1:.1f} / {f10:.1f} (aiosmtplib {a1:.1f} / {a10:.1f}) | - | - |"
        )
    pool = round_trips(cells, "pool_rtt20", "fastsmtp")
    if pool is not None:
        lines.append(
            "| 20 ms round trip, `SMTPPool(max_connections=1).send_many` (defaults): "
            f"round trips per message | {pool:.2f} (aiosmtplib has no pool) | - | - |"
        )
    return "\n".join(lines)


def summary_rst(results: dict[str, Any]) -> str:
    """The same table as a reStructuredText list-table, for docs/performance.rst."""
    out = [".. list-table::", "   :header-rows: 1", "   :widths: 40 22 22 16", ""]
    for row in summary_table(results).splitlines():
        if row.startswith("|---"):
            continue
        cells = [c.strip() for c in row.strip("|").split("|")]
        for i, text in enumerate(cells):
            text = text.replace("`", "``")
            text = "\\-" if text == "-" else text
            out.append(f"   {'* -' if i == 0 else '  -'} {text}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    rst = args[:1] == ["--rst"]
    args = args[1:] if rst else args
    if len(args) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(args[0]) as src:
        results = json.load(src)
    print(summary_rst(results) if rst else summary_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
