"""Draw ``run.py``'s side-by-side results as grouped bar charts (SVG or PNG, by file suffix).

Usage::

    python benchmarks/run.py --save-json results.json --chart docs/_static/benchmarks.svg
    python benchmarks/run.py --from-json results.json --chart docs/_static/benchmarks.svg
    python benchmarks/chart.py results.json docs/_static/benchmarks.svg   # the same drawing

The results JSON is what ``run.py --save-json`` writes: per cell (scenario, client, loop) the
per-run values; each bar is the median over the runs, so it shows the number printed in the
markdown table's msg/s, MB/s or ms/message column. One panel per unit: 1 KiB messages (msg/s),
one message to 100 recipients (msg/s), a 10 MiB message (MB/s) and 20 ms round trips
(ms per message, lower is better).

matplotlib comes with the ``bench`` extra (``pip install -e ".[bench]"``); it is imported only
when a chart is drawn, so ``run.py`` works without it.
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# (client, loop) -> (legend label, colour): one colour family per client, dark = asyncio.
SERIES: dict[tuple[str, str], tuple[str, str]] = {
    ("fastsmtp", "asyncio"): ("fastsmtp, asyncio", "#08519c"),
    ("fastsmtp", "uvloop"): ("fastsmtp, uvloop", "#6baed6"),
    ("aiosmtplib", "asyncio"): ("aiosmtplib 5.1.3, asyncio", "#a63603"),
    ("aiosmtplib", "uvloop"): ("aiosmtplib 5.1.3, uvloop", "#fdae6b"),
    ("smtplib", "-"): ("smtplib (stdlib; threads)", "#31a354"),
    ("smtp-source", "-"): ("Postfix smtp-source (C)", "#636363"),
}


@dataclass(frozen=True)
class Panel:
    title: str
    ylabel: str
    unit: str  # "msg/s", "MB/s" or "ms"
    scenarios: tuple[tuple[str, str], ...]  # (scenario name, x-axis label)


PANELS: tuple[Panel, ...] = (
    Panel(
        "1 KiB messages: messages per second (higher is better)",
        "messages per second (msg/s)",
        "msg/s",
        (
            ("sendmail", "sendmail\n1 connection"),
            ("send_message", "send_message\n1 connection"),
            ("conns1", "sendmail\n1 conn., split CPUs"),
            ("conns4", "sendmail\n4 conn., split CPUs"),
            ("conns16", "sendmail\n16 conn., split CPUs"),
            ("conns64", "sendmail\n64 conn., split CPUs"),
            ("conns16_msg", "send_message\n16 conn., split CPUs"),
            ("send", "send()\nnew connection each"),
        ),
    ),
    Panel(
        "1 KiB to 100 recipients (msg/s)",
        "messages per second (msg/s)",
        "msg/s",
        (("rcpt100", "sendmail"), ("rcpt100_msg", "send_message")),
    ),
    Panel(
        "10 MiB, half the lines start with '.' (MB/s)",
        "megabytes per second (MB/s, 10^6 bytes)",
        "MB/s",
        (("dot10m", "sendmail"), ("dot10m_msg", "send_message")),
    ),
    Panel(
        "20 ms round trip, 1 connection (lower is better)",
        "milliseconds per message (ms)",
        "ms",
        (
            ("rtt20-1", "1 recipient"),
            ("rtt20-10", "10 recipients"),
            ("pool_rtt20", "SMTPPool\n.send_many\n(fastsmtp only)"),
        ),
    ),
)


def cell_value(cell: dict[str, Any], unit: str, size: int) -> float:
    """The number the markdown table prints for this cell, in ``unit``."""
    rate = statistics.median(cell["rate"])
    if unit == "MB/s":
        return rate * size / 1e6
    if unit == "ms":
        return 1000 / rate
    return rate


def fmt_value(value: float, unit: str) -> str:
    """Formatted as in the markdown table."""
    return f"{value:,.0f}" if unit == "msg/s" else f"{value:,.1f}"


def bars(results: dict[str, Any], panel: Panel) -> list[tuple[str, list[tuple[str, float]]]]:
    """[(x label, [(series key, value), ...]), ...] for the scenarios present in ``results``."""
    by_key = {(c["scenario"], c["client"], c["loop"]): c for c in results["cells"]}
    sizes: dict[str, int] = results.get("sizes", {})
    groups = []
    for name, label in panel.scenarios:
        values = [
            (f"{client}/{loop}", cell_value(cell, panel.unit, sizes.get(name, 0)))
            for (client, loop) in SERIES
            if (cell := by_key.get((name, client, loop))) is not None
        ]
        if values:
            groups.append((label, values))
    return groups


def subtitle(results: dict[str, Any]) -> str:
    meta = results.get("meta", {})
    parts = [
        str(meta.get("date", "")),
        f"{meta.get('cpus', '?')} shared CPUs",
        f"Python {meta.get('python', '?')}",
        f"sink: {meta.get('sink', '?')}",
        f"pin: {meta.get('pin', '?')}",
        f"{meta.get('runs', '?')} run{'' if meta.get('runs') == 1 else 's'}, medians",
    ]
    return " · ".join(p for p in parts if p)


def require_matplotlib() -> None:
    """Exit with a clear message when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise SystemExit('drawing the chart needs matplotlib: pip install -e ".[bench]"') from exc


def draw(results: dict[str, Any], path: str | Path) -> None:
    """Write the chart of ``results`` (run.py's JSON) to ``path`` (.svg or .png)."""
    require_matplotlib()
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    panels = [(panel, bars(results, panel)) for panel in PANELS]
    panels = [(panel, groups) for panel, groups in panels if groups]
    if not panels:
        raise SystemExit("no results to draw")
    with matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": "fastsmtp", "font.size": 9}
    ):
        fig = Figure(figsize=(13, 10), layout="constrained")
        wide = [p for p in panels if len(p[0].scenarios) > 3]
        small = [p for p in panels if len(p[0].scenarios) <= 3]
        grid = fig.add_gridspec(2 if wide and small else 1, max(len(small), 1))
        axes = []
        if wide:
            axes.append((fig.add_subplot(grid[0, :]), *wide[0]))
        for i, (panel, groups) in enumerate(small):
            axes.append((fig.add_subplot(grid[1 if wide else 0, i]), panel, groups))
        for ax, panel, groups in axes:
            plot_panel(ax, panel, groups)
        fig.legend(
            handles=[Patch(color=colour, label=label) for label, colour in SERIES.values()],
            loc="outside lower center",
            ncols=len(SERIES),
            frameon=False,
        )
        fig.suptitle(
            "fastsmtp vs aiosmtplib, smtplib and Postfix smtp-source (benchmarks/run.py)\n"
            + subtitle(results),
            fontsize=11,
        )
        fig.savefig(str(path), metadata={"Date": None} if str(path).endswith(".svg") else None)


def plot_panel(ax: Any, panel: Panel, groups: list[tuple[str, list[tuple[str, float]]]]) -> None:
    width = 0.8 / max(len(values) for _, values in groups)
    top = max(v for _, values in groups for _, v in values)
    for x, (_, values) in enumerate(groups):
        start = x - width * (len(values) - 1) / 2
        for i, (key, value) in enumerate(values):
            client, loop = key.split("/")
            colour = SERIES[(client, loop)][1]
            pos = start + i * width
            ax.bar(pos, value, width * 0.92, color=colour)
            ax.text(
                pos,
                value + top * 0.01,
                fmt_value(value, panel.unit),
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(range(len(groups)), [label for label, _ in groups])
    ax.set_ylim(0, top * 1.22)
    ax.set_ylabel(panel.ylabel)
    ax.set_title(panel.title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.yaxis.set_major_formatter(
        "{x:,.0f}" if panel.unit != "ms" or top > 20 else "{x:,.1f}"  # type: ignore[arg-type]
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python benchmarks/chart.py RESULTS.json CHART.svg|CHART.png", file=sys.stderr)
        return 2
    draw(json.loads(Path(args[0]).read_text()), args[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
