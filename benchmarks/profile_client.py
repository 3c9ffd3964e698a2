"""Where fastsmtp's client time goes: one connection, 1 KiB messages, against smtp-sink.

Run it::

    python benchmarks/profile_client.py                              # py-spy, sendmail, uvloop
    python benchmarks/profile_client.py --tool cprofile --scenario send_message --loop asyncio
    python benchmarks/profile_client.py --tool pyspy --seconds 5 --top 30

``pyspy`` samples the worker of :mod:`run` (``run.py --worker``) with ``py-spy record``
(raw collapsed stacks, idle frames excluded, so the shares are shares of client CPU) and
prints the functions by self time and by inclusive time. ``cprofile`` runs the same worker
under cProfile in this process (deterministic, but its per-call overhead inflates small
functions; use it for call counts). The sink (Postfix smtp-sink) and the client run on CPU 0
(``--pin same`` of run.py), py-spy on CPU 1. Everything is on 127.0.0.1; the sink is stopped
on exit. Any fastsmtp on ``PYTHONPATH`` is profiled (try a scratch copy with
``PYTHONPATH=/tmp/scratch-src``).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")


SKIP = ("<frozen importlib", "threading.py:", "futures/thread.py")


def short(frame: str) -> str:
    """``func (path/to/pkg/mod.py:12)`` -> ``pkg/mod.py:func`` (line numbers dropped)."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    parts = Path(match["file"]).parts
    where = "/".join(parts[-2:]) if len(parts) >= 2 else match["file"]
    return f"{where}:{match['func']}"


def group(name: str) -> str:
    if "fastsmtp/" in name:
        return "fastsmtp"
    if "aiosmtplib/" in name:
        return "aiosmtplib"
    if "email/" in name:
        return "stdlib email"
    if "asyncio/" in name:
        return "asyncio"
    if "uvloop" in name:
        return "uvloop"
    return "other"


def pyspy_profile(spec: dict[str, object], rate: int, top: int) -> str:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.access(pyspy, os.X_OK):
        raise SystemExit("py-spy not found: pip install py-spy")
    with tempfile.TemporaryDirectory(prefix="fastsmtp-prof-") as tmp:
        out = os.path.join(tmp, "stacks.txt")
        cmd = ["taskset", "-c", "1", pyspy, "record", "--nonblocking", "-r", str(rate)]
        cmd += ["-f", "raw", "-o", out]
        cmd += ["--", "taskset", "-c", "0", sys.executable, str(HERE / "run.py")]
        cmd += ["--worker", json.dumps(spec)]
        proc = subprocess.run(cmd, capture_output=True, timeout=float(spec["seconds"]) + 120)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr.decode(errors="replace"))
        # py-spy adds its own lines to stdout; the worker's result is the JSON one.
        found = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("{")]
        result = json.loads(found[-1])
        stacks = Path(out).read_text().splitlines()
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    groups: collections.Counter[str] = collections.Counter()
    total = skipped = 0
    for line in stacks:
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [short(f) for f in stack.split(";") if f]
        # Only the event loop's thread, after start-up: imports and the default
        # executor's thread (local hostname lookup, idle afterwards) are not sending.
        if not frames or any(f.startswith(SKIP) for f in frames):
            skipped += count
            continue
        total += count
        self_time[frames[-1]] += count
        groups[group(frames[-1])] += count
        for name in set(frames):
            inclusive[name] += count
    lines = [
        f"py-spy {rate} Hz (non-blocking), {total} samples ({skipped} of imports and "
        f"the executor thread left out); worker: {result['messages']} messages, "
        f"{result['messages'] / result['elapsed']:.0f} msg/s under sampling, "
        f"{result['cpu'] / result['messages'] * 1e6:.0f} µs CPU/msg",
        "",
        "self time by module group: "
        + ", ".join(f"{g} {n / total:.0%}" for g, n in groups.most_common()),
        "",
        "| self % | function |",
        "|---:|---|",
        *(f"| {n / total:.1%} | `{name}` |" for name, n in self_time.most_common(top)),
        "",
        "| inclusive % | function |",
        "|---:|---|",
        *(f"| {n / total:.1%} | `{name}` |" for name, n in inclusive.most_common(top)),
    ]
    return "\n".join(lines)


def cprofile_profile(spec: dict[str, object], top: int) -> str:
    os.sched_setaffinity(0, {0})
    profiler = cProfile.Profile()
    profiler.enable()
    result = run.run_worker(spec)
    profiler.disable()
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    head = (
        f"cProfile; worker: {result['messages']} messages, "
        f"{result['cpu'] / result['messages'] * 1e6:.0f} µs CPU/msg under the profiler"
    )
    return head + "\n" + buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tool", choices=["pyspy", "cprofile"], default="pyspy")
    parser.add_argument(
        "--scenario", choices=["sendmail", "send_message", "rcpt100"], default="sendmail"
    )
    parser.add_argument("--client", choices=["fastsmtp", "aiosmtplib"], default="fastsmtp")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples/s")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    if not 0.5 <= args.seconds <= 60:
        parser.error("--seconds must be 0.5..60")
    with run.start_sink("smtp-sink", ["taskset", "-c", "0"]) as (_name, port, _pid):
        spec: dict[str, object] = {
            "client": args.client,
            "loop": args.loop,
            "scenario": args.scenario,
            "port": port,
            "recipients": 100 if args.scenario == "rcpt100" else 1,
            "connections": 1,
            "seconds": args.seconds,
        }
        if args.tool == "pyspy":
            print(pyspy_profile(spec, args.rate, args.top))
        else:
            print(cprofile_profile(spec, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
