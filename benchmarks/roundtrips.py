"""Round trips per message: fastsmtp against aiosmtplib on a slow link and on loopback.

Run it (about a minute per event loop with the defaults)::

    python benchmarks/roundtrips.py                     # asyncio, 3 runs, 10 ms each way
    python benchmarks/roundtrips.py --loop both --runs 5 --delay-ms 10 --messages 20

Two scenarios, each client in its own subprocess, clients interleaved, several runs,
medians:

``delay``
    The client talks to the sink through :mod:`delayproxy` (``--delay-ms`` each way, so
    20 ms round trip by default) on one connection and sends ``--messages`` messages of
    1 KiB with ``sendmail(sender, recipients, bytes)``, to 1 and to 10 recipients. The
    time per message is the least-squares slope of the completion times of messages
    1..N (the first message's connection set-up and EHLO drop out). The round trip time
    is the median of several NOOP round trips through the same proxy, measured by this
    runner with a bare socket before every run. round trips/message = ms per message /
    RTT: a lockstep client needs 4 for one recipient (MAIL, RCPT, DATA, body) and
    3 + recipients in general; a pipelining client (RFC 2920) needs 2 whatever the
    number of recipients (MAIL+RCPTs+DATA, then the body).

    ``--clients pool concurrent8`` adds two bulk ways of sending on that one connection
    (completion times of every message, the same slope): ``SMTPPool(max_connections=1)
    .send_many(items)`` with default settings, and eight tasks calling ``sendmail`` on one
    ``SMTP``. Both pipeline each transaction behind the previous end of data (RFC 2920
    section 3.1), so about one round trip per message.

``loopback``
    No proxy: one connection, one 1 KiB message to 100 recipients, repeated for
    ``--seconds``; messages per second and the ratio fastsmtp / aiosmtplib.

The sink is Postfix's ``smtp-sink`` (C, advertises PIPELINING; install it with
``benchmarks/install_postfix_tools.sh``) or, with ``--sink python`` or when it is not
installed, :mod:`sink` (pure Python, uvloop). Everything listens and connects on
127.0.0.1 with ports chosen by the OS; every process started here is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import inspect
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
HERE = SCRIPT.parent
sys.path.insert(0, str(HERE))

from delayproxy import DelayProxy  # noqa: E402

HOST = "127.0.0.1"
CLIENTS = ("fastsmtp", "aiosmtplib")
#: Bulk ways of sending with fastsmtp on one connection (``--clients``; delay scenario
#: only): ``pool`` is ``SMTPPool(max_connections=1).send_many(items)`` with default
#: settings; ``concurrent8`` is eight tasks calling ``sendmail`` on one ``SMTP``.
BULK_CLIENTS = ("pool", "concurrent8")
SENDER = "sender@example.com"
SMTP_SINK = "/usr/sbin/smtp-sink"
WORKER_TIMEOUT = 120.0  # seconds; a worker that takes longer is killed
LOOPBACK_RECIPIENTS = 100
SINK_PY_ARGS = ("--port", "0", "--max-seconds", "1800")


def recipients(count: int) -> list[str]:
    return [f"rcpt{i}@example.com" for i in range(count)]


def message_1k() -> bytes:
    """A 1024-byte RFC 5322 message (CRLF line ends, no line starting with ".")."""
    head = (
        f"From: <{SENDER}>\r\n"
        "To: <rcpt0@example.com>\r\n"
        "Subject: fastsmtp round-trip benchmark\r\n"
        "Message-ID: <roundtrips@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = bytearray()
    while len(head) + len(body) + len(line) <= 1024 - 2:
        body += line
    body += b"x" * (1024 - 2 - len(head) - len(body)) + b"\r\n"
    message = head + bytes(body)
    assert len(message) == 1024, len(message)
    return message


# -- worker (one client in one subprocess) ----------------------------------------------


def slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index."""
    n = len(values)
    if n < 2:
        raise ValueError("need at least two points")
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def client_module(name: str) -> Any:
    if name in ("fastsmtp", *BULK_CLIENTS):
        import fastsmtp

        return fastsmtp
    if name == "aiosmtplib":
        import aiosmtplib

        return aiosmtplib
    raise ValueError(f"unknown client {name!r}")


async def worker_delay(module: Any, port: int, rcpts: int, messages: int) -> dict[str, Any]:
    message = message_1k()
    to = recipients(rcpts)
    smtp = module.SMTP(hostname=HOST, port=port, timeout=60)
    await smtp.connect()
    try:
        await smtp.ehlo()
        noops = []
        for _ in range(3):
            start = time.perf_counter()
            await smtp.noop()
            noops.append(time.perf_counter() - start)
        done = []
        for _ in range(messages):
            errors, _reply = await smtp.sendmail(SENDER, to, message)
            if errors:
                raise RuntimeError(f"recipients refused: {errors}")
            done.append(time.perf_counter())
        await smtp.quit()
    finally:
        smtp.close()
    return {
        "s_per_message": slope(done),
        "client_noop_s": statistics.median(noops),
        "first_to_last_s": done[-1] - done[0],
    }


async def worker_loopback(module: Any, port: int, rcpts: int, seconds: float) -> dict[str, Any]:
    message = message_1k()
    to = recipients(rcpts)
    smtp = module.SMTP(hostname=HOST, port=port, timeout=60)
    await smtp.connect()
    try:
        await smtp.ehlo()
        for _ in range(3):  # warm-up
            await smtp.sendmail(SENDER, to, message)
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        cpu_start = time.process_time()
        while count < 1_000_000:
            errors, _reply = await smtp.sendmail(SENDER, to, message)
            if errors:
                raise RuntimeError(f"recipients refused: {errors}")
            count += 1
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        await smtp.quit()
    finally:
        smtp.close()
    return {"messages": count, "msg_per_s": count / elapsed, "cpu_us_per_msg": cpu / count * 1e6}


async def worker_bulk(
    module: Any, kind: str, port: int, rcpts: int, messages: int
) -> dict[str, Any]:
    """The delay scenario for a bulk client (see :data:`BULK_CLIENTS`): completion times
    of every message, in the order they finished."""
    message = message_1k()
    to = recipients(rcpts)
    done: list[float] = []
    if kind == "pool":
        async with module.SMTPPool(hostname=HOST, port=port, timeout=60, max_connections=1) as pool:

            def progress(_count: int, result: Any) -> None:
                if not result.ok or result.refused:
                    raise RuntimeError(f"not sent: {result}")
                done.append(time.perf_counter())

            await pool.send_many(
                ((message, SENDER, to) for _ in range(messages)), progress=progress
            )
    else:
        smtp = module.SMTP(hostname=HOST, port=port, timeout=60)
        await smtp.connect()
        try:
            await smtp.ehlo()
            queue = list(range(messages))

            async def sender() -> None:
                while queue:
                    queue.pop()
                    errors, _reply = await smtp.sendmail(SENDER, to, message)
                    if errors:
                        raise RuntimeError(f"recipients refused: {errors}")
                    done.append(time.perf_counter())

            await asyncio.gather(*(sender() for _ in range(8)))
            await smtp.quit()
        finally:
            smtp.close()
    return {
        "s_per_message": slope(done),
        "client_noop_s": 0.0,
        "first_to_last_s": done[-1] - done[0],
    }


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    module = client_module(spec["client"])
    coro: Awaitable[dict[str, Any]]
    if spec["client"] in BULK_CLIENTS:
        coro = worker_bulk(module, spec["client"], spec["port"], spec["rcpts"], spec["messages"])
    elif spec["scenario"] == "delay":
        coro = worker_delay(module, spec["port"], spec["rcpts"], spec["messages"])
    else:
        coro = worker_loopback(module, spec["port"], spec["rcpts"], spec["seconds"])

    async def main() -> dict[str, Any]:
        return await coro

    if spec["loop"] == "uvloop":
        import uvloop

        result = uvloop.run(main())
    else:
        result = asyncio.run(main())
    result["pipelining_keyword"] = "pipelining" in inspect.signature(module.SMTP).parameters
    return result


# -- sink --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_greeting(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection((HOST, port), timeout=1.0) as sock:
                if sock.recv(512).startswith(b"220"):
                    sock.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)


@contextlib.contextmanager
def start_sink(kind: str, prefix: Sequence[str] = ()) -> Iterator[tuple[str, int]]:
    """Start the sink process; yield (description, port); stop it on exit.

    ``prefix`` goes in front of the command line (``run.py`` pins with ``taskset``).
    """
    if kind == "auto":
        kind = "smtp-sink" if os.access(SMTP_SINK, os.X_OK) else "python"
    proc: subprocess.Popen[bytes] | None = None
    try:
        if kind == "smtp-sink":
            if not os.access(SMTP_SINK, os.X_OK):
                raise SystemExit(f"{SMTP_SINK} not found: run benchmarks/install_postfix_tools.sh")
            for _attempt in range(5):  # the port chosen by the OS may be taken meanwhile
                port = free_port()
                cmd = [SMTP_SINK, "-c", f"{HOST}:{port}", "256"]
                if os.geteuid() == 0:  # smtp-sink refuses to run as root without -u
                    cmd[1:1] = ["-u", "nobody"]
                proc = subprocess.Popen(
                    [*prefix, *cmd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
                )
                if wait_for_greeting(port, proc, 5.0):
                    yield "Postfix smtp-sink (C)", port
                    return
                stop_process(proc)
                proc = None
            raise SystemExit("could not start smtp-sink")
        proc = subprocess.Popen(
            [*prefix, sys.executable, str(HERE / "sink.py"), *SINK_PY_ARGS],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline().decode().split()
        if len(first) != 2 or first[0] != "PORT":
            raise SystemExit(f"benchmarks/sink.py did not report its port: {first}")
        yield "benchmarks/sink.py (Python, uvloop)", int(first[1])
    finally:
        if proc is not None:
            stop_process(proc)


# -- runner ------------------------------------------------------------------------------


async def measure_rtt(port: int, samples: int = 9) -> float:
    """Median seconds of a NOOP round trip to 127.0.0.1:port, with a bare stream."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        await asyncio.wait_for(reader.readline(), 10)  # greeting
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            writer.write(b"NOOP\r\n")
            line = await asyncio.wait_for(reader.readline(), 10)
            times.append(time.perf_counter() - start)
            if not line.startswith(b"250"):
                raise RuntimeError(f"NOOP answered {line!r}")
        writer.write(b"QUIT\r\n")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 5)
    return statistics.median(times)


async def spawn_worker(spec: dict[str, Any]) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "--worker",
        json.dumps(spec),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), WORKER_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{err.decode(errors='replace')}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)  # per run
    extra: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


async def run_all(args: argparse.Namespace, sink_port: int) -> dict[str, Any]:
    loops = ["asyncio", "uvloop"] if args.loop == "both" else [args.loop]
    delay_s = args.delay_ms / 1000.0
    rts: dict[tuple[str, int, str], Cell] = {}  # (loop, rcpts, client) -> round trips/msg
    ms: dict[tuple[str, int, str], Cell] = {}  # -> ms per message
    rate: dict[tuple[str, str], Cell] = {}  # (loop, client) -> loopback msg/s
    rtts: list[float] = []
    pipelining_keyword: bool | None = None
    started = time.monotonic()
    async with DelayProxy(sink_port, delay_s) as proxy:
        for run in range(args.runs):
            clients = tuple(args.clients)
            order = clients if run % 2 == 0 else clients[::-1]
            for loop in loops:
                if not args.skip_delay:
                    rtt = await measure_rtt(proxy.port)
                    rtts.append(rtt)
                    for rcpts in args.recipients:
                        for client in order:  # (every client: bulk ones too)
                            spec = {
                                "client": client,
                                "loop": loop,
                                "scenario": "delay",
                                "port": proxy.port,
                                "rcpts": rcpts,
                                "messages": args.messages,
                            }
                            result = await spawn_worker(spec)
                            if client == "fastsmtp":
                                pipelining_keyword = result["pipelining_keyword"]
                            per_msg = result["s_per_message"]
                            key = (loop, rcpts, client)
                            ms.setdefault(key, Cell()).values.append(per_msg * 1000)
                            rts.setdefault(key, Cell()).values.append(per_msg / rtt)
                            log(
                                f"run {run + 1} {loop:7} delay {client:10} {rcpts:3} rcpt: "
                                f"{per_msg * 1000:7.2f} ms/msg = {per_msg / rtt:5.2f} RT "
                                f"(RTT {rtt * 1000:.2f} ms)"
                            )
                if not args.skip_loopback:
                    for client in (c for c in order if c not in BULK_CLIENTS):
                        spec = {
                            "client": client,
                            "loop": loop,
                            "scenario": "loopback",
                            "port": sink_port,
                            "rcpts": LOOPBACK_RECIPIENTS,
                            "seconds": args.seconds,
                        }
                        result = await spawn_worker(spec)
                        if client == "fastsmtp":
                            pipelining_keyword = result["pipelining_keyword"]
                        cell = rate.setdefault((loop, client), Cell())
                        cell.values.append(result["msg_per_s"])
                        cell.extra.append(result["cpu_us_per_msg"])
                        log(
                            f"run {run + 1} {loop:7} loopback {client:10} "
                            f"{LOOPBACK_RECIPIENTS} rcpt: {result['msg_per_s']:8.1f} msg/s "
                            f"({result['cpu_us_per_msg']:.0f} us CPU/msg)"
                        )
    return {
        "loops": loops,
        "rts": rts,
        "ms": ms,
        "rate": rate,
        "rtt_ms": statistics.median(rtts) * 1000 if rtts else None,
        "pipelining_keyword": pipelining_keyword,
        "elapsed_s": time.monotonic() - started,
    }


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def report(args: argparse.Namespace, sink_name: str, res: dict[str, Any]) -> str:
    lines = []
    today = datetime.date.today().isoformat()
    pyver = platform.python_version()
    lines.append(
        f"{today} · {os.cpu_count()} CPUs (shared, unpinned) · Python {pyver} · "
        f"loop: {', '.join(res['loops'])} · sink: {sink_name} · runs: {args.runs} (medians) · "
        f"fastsmtp has the `pipelining` keyword: {'yes' if res['pipelining_keyword'] else 'no'}"
    )
    lines.append("")
    if res["rts"]:
        lines.append(
            f"Delay proxy {args.delay_ms:g} ms each way, measured NOOP RTT "
            f"{res['rtt_ms']:.2f} ms (median), {args.messages} messages of 1 KiB per "
            "connection, `sendmail(sender, recipients, bytes)`:"
        )
        lines.append("")
        lines.append("| loop | client | recipients | ms/message | round trips/message |")
        lines.append("|---|---|---:|---:|---:|")
        for loop in res["loops"]:
            for rcpts in args.recipients:
                for client in args.clients:
                    key = (loop, rcpts, client)
                    if key in res["rts"]:
                        lines.append(
                            f"| {loop} | {client} | {rcpts} | {res['ms'][key].median:.1f} | "
                            f"{res['rts'][key].median:.2f} |"
                        )
        lines.append("")
    if res["rate"]:
        lines.append(
            f"Loopback (no proxy), one connection, one 1 KiB message to "
            f"{LOOPBACK_RECIPIENTS} recipients, repeated for {args.seconds:g} s:"
        )
        lines.append("")
        lines.append(
            "| loop | client | msg/s | client CPU µs/msg | vs aiosmtplib (median of run ratios) |"
        )
        lines.append("|---|---|---:|---:|---:|")
        for loop in res["loops"]:
            base = res["rate"].get((loop, "aiosmtplib"))
            for client in CLIENTS:
                cell = res["rate"].get((loop, client))
                if cell is None:
                    continue
                # Median of the per-run ratios: each run measured both clients back to
                # back, so a run's ratio cancels most of the machine's drift.
                ratio = "-"
                if base is not None:
                    pairs = zip(cell.values, base.values, strict=True)
                    ratio = f"{statistics.median(c / b for c, b in pairs):.1f}x"
                lines.append(
                    f"| {loop} | {client} | {cell.median:.0f} | "
                    f"{statistics.median(cell.extra):.0f} | {ratio} |"
                )
        lines.append("")
    lines.append(f"(total {res['elapsed_s']:.0f} s)")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--loop", choices=["asyncio", "uvloop", "both"], default="asyncio")
    parser.add_argument("--runs", type=int, default=3, help="runs per cell (default 3)")
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay (10)")
    parser.add_argument("--messages", type=int, default=20, help="messages per connection")
    parser.add_argument(
        "--recipients", type=int, nargs="+", default=[1, 10], help="delay scenario (1 10)"
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="loopback run length (1 s)")
    parser.add_argument("--sink", choices=["auto", "smtp-sink", "python"], default="auto")
    parser.add_argument(
        "--clients",
        nargs="+",
        choices=[*CLIENTS, *BULK_CLIENTS],
        default=list(CLIENTS),
        help="clients to run (default: fastsmtp aiosmtplib; pool and concurrent8 are "
        "fastsmtp's bulk ways, delay scenario only)",
    )
    parser.add_argument("--skip-delay", action="store_true", help="only the loopback scenario")
    parser.add_argument("--skip-loopback", action="store_true", help="only the delay scenario")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.runs > 50:
        parser.error("--runs must be 1..50")
    if args.messages < 2 or args.messages > 1000:
        parser.error("--messages must be 2..1000")
    if not 0 <= args.delay_ms <= 1000:
        parser.error("--delay-ms must be 0..1000")
    if not 0.1 <= args.seconds <= 60:
        parser.error("--seconds must be 0.1..60")
    if any(not 1 <= r <= 1000 for r in args.recipients):
        parser.error("--recipients must be 1..1000")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        print(json.dumps(run_worker(json.loads(argv[1]))), flush=True)
        return 0
    args = parse_args(argv)
    with start_sink(args.sink) as (sink_name, sink_port):
        log(f"sink: {sink_name} on {HOST}:{sink_port}")
        result = asyncio.run(run_all(args, sink_port))
    print(report(args, sink_name, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
