"""End-to-end send benchmarks: fastsmtp against aiosmtplib, smtplib and Postfix smtp-source.

Run it (about four minutes with the defaults)::

    python benchmarks/run.py                          # every scenario, 3 runs, medians
    python benchmarks/run.py --scenarios sendmail send_message --runs 5 --pin same
    python benchmarks/run.py --list                   # scenarios and clients

Every client runs as its own process (``run.py --worker JSON``; ``smtp-source`` as itself)
against one local sink, several runs per cell, the clients interleaved (the order rotates
from run to run), and the report is a markdown table of medians on stdout (progress on
stderr). Client CPU is ``getrusage(RUSAGE_SELF)`` (user + system) around the timed part in
the client process; for ``smtp-source`` it is the whole process (``RUSAGE_CHILDREN`` of this
runner around it, a few hundred microseconds of start-up included).

Clients: ``fastsmtp`` and ``aiosmtplib`` on ``asyncio`` and ``uvloop``, stdlib ``smtplib``
(threads for several connections), and ``smtp-source`` (C, no pipelining: it says HELO and
sends MAIL, RCPT..., DATA one at a time) as the anchor.

Server: Postfix ``smtp-sink`` (C, advertises PIPELINING; see ``install_postfix_tools.sh``),
or ``--sink python`` (``sink.py``) or ``--sink aiosmtpd`` (a secondary reference only: it is
slower than the clients it serves).

Pinning (``taskset``; the machines have 2 shared cores and placement changes results several
fold): the sink always runs on CPU 0; ``--pin same`` puts the client on CPU 0 too, ``--pin
split`` on CPU 1, ``--pin none`` pins nothing, and the default ``--pin targets`` uses what the
issue's targets specify: ``split`` for the many-connection scenarios, ``same`` for the rest.

The ``*_msg`` scenarios send an ``EmailMessage`` with ``send_message``; their "vs own
sendmail" column is msg/s as a share of the same client's ``sendmail`` of the same content
(the scenario named by ``twin``; both must be in the run). ``pool_rtt20`` is
``SMTPPool(max_connections=1).send_many`` at 20 ms RTT, round trips per message, fastsmtp
only (aiosmtplib has no pool).

Everything listens and connects on 127.0.0.1 with ports chosen by the OS; every process
started here is stopped on exit, every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import email.policy
import functools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
HERE = SCRIPT.parent
sys.path.insert(0, str(HERE))

import roundtrips  # noqa: E402
from delayproxy import DelayProxy  # noqa: E402
from summary import summary_table  # noqa: E402

HOST = roundtrips.HOST
SENDER = roundtrips.SENDER
SMTP_SOURCE = "/usr/sbin/smtp-source"
WORKER_TIMEOUT = 180.0  # seconds; a worker that takes longer is killed
MAX_MESSAGES = 2_000_000  # upper bound on any timed loop, whatever --seconds says
DOT_MESSAGE_SIZE = 10 * 1024 * 1024

# (client, loop); loop "-" for the synchronous ones.
CLIENTS: tuple[tuple[str, str], ...] = (
    ("fastsmtp", "asyncio"),
    ("fastsmtp", "uvloop"),
    ("aiosmtplib", "asyncio"),
    ("aiosmtplib", "uvloop"),
    ("smtplib", "-"),
    ("smtp-source", "-"),
)
ASYNC_CLIENTS = CLIENTS[:4]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    clients: tuple[tuple[str, str], ...]
    split: bool = False  # --pin targets: client on its own CPU
    recipients: int = 1
    connections: int = 1
    # smtp-source message count per second of --seconds (it cannot stop on a deadline).
    source_rate: float = 0.0
    delay: bool = False
    # send_message(EmailMessage) instead of sendmail(bytes); ``twin`` names the sendmail
    # scenario with the same content, for the "vs own sendmail" ratio.
    email: bool = False
    twin: str = ""
    # Delay scenarios: SMTPPool(max_connections=1).send_many instead of sendmail.
    pool: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("sendmail", "1 connection, 1 KiB, sendmail(bytes)", CLIENTS, source_rate=9000),
    Scenario(
        "send_message",
        "1 connection, ~1 KiB, send_message(EmailMessage)",
        CLIENTS[:5],
        email=True,
        twin="sendmail",
    ),
    Scenario(
        "rcpt100",
        "1 connection, 1 KiB to 100 recipients",
        CLIENTS,
        recipients=100,
        source_rate=250,
    ),
    Scenario(
        "rcpt100_msg",
        "1 connection, ~1 KiB to 100 recipients (To header), send_message(EmailMessage)",
        CLIENTS[:5],
        recipients=100,
        email=True,
        twin="rcpt100",
    ),
    Scenario(
        "dot10m", "1 connection, 10 MiB, half the lines start with '.'", CLIENTS, source_rate=25
    ),
    Scenario(
        "dot10m_msg",
        "1 connection, 10 MiB, half the lines start with '.', send_message(EmailMessage)",
        CLIENTS[:5],
        email=True,
        twin="dot10m",
    ),
    *(
        Scenario(
            f"conns{n}",
            f"{n} connection{'s' if n > 1 else ''}, 1 KiB, sendmail(bytes)",
            CLIENTS,
            split=True,
            connections=n,
            source_rate=9000,
        )
        for n in (1, 4, 16, 64)
    ),
    Scenario(
        "conns16_msg",
        "16 connections, ~1 KiB, send_message(EmailMessage)",
        ASYNC_CLIENTS,
        split=True,
        connections=16,
        email=True,
        twin="conns16",
    ),
    Scenario("send", "send() per message (new connection each), 1 KiB", CLIENTS, source_rate=2500),
    Scenario("rtt20-1", "20 ms RTT (DelayProxy), 1 recipient", ASYNC_CLIENTS, delay=True),
    Scenario(
        "rtt20-10",
        "20 ms RTT (DelayProxy), 10 recipients",
        ASYNC_CLIENTS,
        recipients=10,
        delay=True,
    ),
    Scenario(
        "pool_rtt20",
        "20 ms RTT (DelayProxy), 1 recipient, SMTPPool(max_connections=1).send_many",
        (("fastsmtp", "asyncio"), ("fastsmtp", "uvloop")),
        delay=True,
        pool=True,
    ),
)
SCENARIO_BY_NAME = {s.name: s for s in SCENARIOS}


# -- messages ----------------------------------------------------------------------------


def message_1k() -> bytes:
    return roundtrips.message_1k()


def dot_message(size: int = DOT_MESSAGE_SIZE) -> bytes:
    """``size`` bytes of RFC 5322 message, CRLF line ends, every other body line starts "."."""
    head = (
        f"From: <{SENDER}>\r\nTo: <rcpt0@example.com>\r\n"
        "Subject: fastsmtp dot-stuffing benchmark\r\n\r\n"
    ).encode()
    plain = b"x" * 76 + b"\r\n"
    dotted = b"." + b"y" * 75 + b"\r\n"
    pair = plain + dotted
    count, rest = divmod(size - len(head), len(pair))
    body = pair * count + b"z" * max(rest - 2, 0) + b"\r\n" * (rest >= 2)
    message = head + body
    return message[:size] if len(message) > size else message


def email_message() -> EmailMessage:
    """An EmailMessage that flattens (policy.SMTP) to about 1 KiB."""
    msg = EmailMessage()
    msg["From"] = f"Sender <{SENDER}>"
    msg["To"] = "Recipient <rcpt0@example.com>"
    msg["Subject"] = "fastsmtp send_message benchmark"
    msg["Message-ID"] = "<send-message@example.com>"
    msg["Date"] = "Sun, 22 Nov 2026 10:00:00 +0000"
    line = "The quick brown fox jumps over the lazy dog, again and again and again.\n"
    msg.set_content(line * 11)
    return msg


def email_to_many(count: int) -> EmailMessage:
    """:func:`email_message` with a To header listing ``count`` recipients."""
    msg = email_message()
    msg.replace_header("To", ", ".join(roundtrips.recipients(count)))
    return msg


def dot_email(size: int = DOT_MESSAGE_SIZE) -> EmailMessage:
    """An EmailMessage with :func:`dot_message`'s headers and body (7bit text/plain)."""
    body = dot_message(size).split(b"\r\n\r\n", 1)[1]
    msg = EmailMessage()
    msg["From"] = f"<{SENDER}>"
    msg["To"] = "<rcpt0@example.com>"
    msg["Subject"] = "fastsmtp dot-stuffing benchmark"
    msg.set_content(body.replace(b"\r\n", b"\n").decode("ascii"), cte="7bit")
    return msg


def scenario_email(name: str) -> EmailMessage:
    """The EmailMessage a send_message scenario sends."""
    if name == "rcpt100_msg":
        return email_to_many(SCENARIO_BY_NAME[name].recipients)
    if name == "dot10m_msg":
        return dot_email()
    return email_message()


@functools.cache
def scenario_message(name: str) -> bytes:
    if name == "dot10m":
        return dot_message()
    if SCENARIO_BY_NAME[name].email:
        # Only for the MB/s column: what send_message flattens (policy.SMTP).
        return bytes(scenario_email(name).as_bytes(policy=email.policy.SMTP))
    return message_1k()


# -- worker: one client in one process ----------------------------------------------------


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def system_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


@dataclass
class Meter:
    """Counts messages after warm-up and stops the loops at the deadline."""

    seconds: float
    count: int = 0
    start: float = 0.0
    cpu_start: float = 0.0
    sys_start: float = 0.0
    deadline: float = 0.0

    def begin(self) -> None:
        self.start = time.perf_counter()
        self.deadline = self.start + self.seconds
        self.cpu_start = cpu_seconds()
        self.sys_start = system_seconds()

    def more(self) -> bool:
        return self.count < MAX_MESSAGES and time.perf_counter() < self.deadline

    def result(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.start
        cpu = cpu_seconds() - self.cpu_start
        system = system_seconds() - self.sys_start
        return {"messages": self.count, "elapsed": elapsed, "cpu": cpu, "sys": system}


def warmup_count(scenario: str) -> int:
    return {"dot10m": 1, "dot10m_msg": 1, "rcpt100": 3, "rcpt100_msg": 3, "send": 5}.get(
        scenario, 20
    )


async def async_worker(spec: dict[str, Any]) -> dict[str, Any]:
    module = roundtrips.client_module(spec["client"])
    scenario = spec["scenario"]
    port = spec["port"]
    to = roundtrips.recipients(spec["recipients"])
    meter = Meter(spec["seconds"])
    warm = warmup_count(scenario)

    if scenario == "send":
        data = message_1k()
        for _ in range(warm):
            await module.send(data, sender=SENDER, recipients=to, hostname=HOST, port=port)
        meter.begin()
        while meter.more():
            await module.send(data, sender=SENDER, recipients=to, hostname=HOST, port=port)
            meter.count += 1
        return meter.result()

    if SCENARIO_BY_NAME[scenario].email:
        msg = scenario_email(scenario)

        async def one(smtp: Any) -> None:
            errors, _ = await smtp.send_message(msg)
            if errors:
                raise RuntimeError(f"refused: {errors}")
    else:
        data = scenario_message(scenario)

        async def one(smtp: Any) -> None:
            errors, _ = await smtp.sendmail(SENDER, to, data)
            if errors:
                raise RuntimeError(f"refused: {errors}")

    clients = [
        module.SMTP(hostname=HOST, port=port, timeout=60) for _ in range(spec["connections"])
    ]
    try:
        for smtp in clients:
            await smtp.connect()
            await smtp.ehlo()
        for smtp in clients:
            for _ in range(warm if len(clients) == 1 else 2):
                await one(smtp)

        async def loop(smtp: Any) -> None:
            while meter.more():
                await one(smtp)
                meter.count += 1

        meter.begin()
        await asyncio.gather(*(loop(smtp) for smtp in clients))
        result = meter.result()
        for smtp in clients:
            await smtp.quit()
    finally:
        for smtp in clients:
            smtp.close()
    return result


def smtplib_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import smtplib

    scenario = spec["scenario"]
    port = spec["port"]
    to = roundtrips.recipients(spec["recipients"])
    meter = Meter(spec["seconds"])
    warm = warmup_count(scenario)
    email_scenario = SCENARIO_BY_NAME[scenario].email
    data = b"" if email_scenario else scenario_message(scenario)

    if scenario == "send":

        def send_one() -> None:
            with smtplib.SMTP(HOST, port, timeout=60) as smtp:
                smtp.sendmail(SENDER, to, data)

        for _ in range(warm):
            send_one()
        meter.begin()
        while meter.more():
            send_one()
            meter.count += 1
        return meter.result()

    one: Callable[[smtplib.SMTP], Any]
    if email_scenario:
        msg = scenario_email(scenario)
        one = lambda smtp: smtp.send_message(msg)  # noqa: E731
    else:
        one = lambda smtp: smtp.sendmail(SENDER, to, data)  # noqa: E731

    clients = [smtplib.SMTP(HOST, port, timeout=60) for _ in range(spec["connections"])]
    lock = threading.Lock()
    failures: list[BaseException] = []
    try:
        for smtp in clients:
            smtp.ehlo()
            for _ in range(warm if len(clients) == 1 else 2):
                one(smtp)

        def loop(smtp: smtplib.SMTP) -> None:
            try:
                while meter.more():
                    one(smtp)
                    with lock:
                        meter.count += 1
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        meter.begin()
        if len(clients) == 1:
            loop(clients[0])
        else:
            threads = [threading.Thread(target=loop, args=(smtp,)) for smtp in clients]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WORKER_TIMEOUT)
        result = meter.result()
        if failures:
            raise failures[0]
        for smtp in clients:
            smtp.quit()
    finally:
        for smtp in clients:
            smtp.close()
    return result


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["client"] == "smtplib":
        return smtplib_worker(spec)

    async def main() -> dict[str, Any]:
        return await async_worker(spec)

    if spec["loop"] == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


# -- sinks -------------------------------------------------------------------------------


async def serve_aiosmtpd(max_seconds: float) -> None:
    from aiosmtpd.smtp import SMTP as AiosmtpdSMTP

    class Discard:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 2.0.0 Ok: queued"

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: AiosmtpdSMTP(Discard(), data_size_limit=None), HOST, 0, backlog=256
    )
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    try:
        await asyncio.sleep(max_seconds)
    finally:
        server.close()


@contextlib.contextmanager
def start_sink(kind: str, prefix: Sequence[str]) -> Iterator[tuple[str, int, int]]:
    """Yield (description, port, pid); the sink runs under ``prefix`` (taskset)."""
    if kind != "aiosmtpd":
        with roundtrips.start_sink(kind, prefix) as (name, port):
            yield name, port, sink_pid(port)
        return
    proc = subprocess.Popen(
        [*prefix, sys.executable, str(SCRIPT), "--serve-aiosmtpd"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode().split()
        if len(first) != 2 or first[0] != "PORT":
            raise SystemExit(f"aiosmtpd sink did not report its port: {first}")
        yield "aiosmtpd 1.4 (Python, asyncio)", int(first[1]), proc.pid
    finally:
        roundtrips.stop_process(proc)


def sink_pid(port: int) -> int:
    """The pid listening on 127.0.0.1:port (for its CPU time), or 0 if not found."""
    inode = ""
    with open("/proc/net/tcp") as table:
        for row in table.readlines()[1:]:
            cols = row.split()
            if cols[1] == f"0100007F:{port:04X}" and cols[3] == "0A":
                inode = cols[9]
                break
    if not inode:
        return 0
    target = f"socket:[{inode}]"
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return int(pid)
    return 0


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (clock-tick resolution)."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- runner ------------------------------------------------------------------------------


def pin_prefix(cpu: int | None) -> list[str]:
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def client_cpu(pin: str, scenario: Scenario) -> int | None:
    if pin == "none":
        return None
    split = pin == "split" or (pin == "targets" and scenario.split)
    return 1 if split else 0


def pin_label(cpu: int | None) -> str:
    return "none" if cpu is None else ("same" if cpu == 0 else "split")


async def spawn(cmd: list[str]) -> tuple[bytes, float]:
    """Run ``cmd``; return its stdout and wall seconds. Killed after WORKER_TIMEOUT."""
    start = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *cmd,
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
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:6]} failed ({proc.returncode}):\n{err.decode(errors='replace')}")
    return out, wall


def children_cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime


async def run_smtp_source(
    scenario: Scenario, port: int, seconds: float, prefix: list[str], files: dict[str, str]
) -> dict[str, Any]:
    count = max(int(scenario.source_rate * seconds), 2 * scenario.connections)
    cmd = [*prefix, SMTP_SOURCE, "-m", str(count), "-s", str(scenario.connections)]
    if scenario.name != "send":
        cmd.append("-d")  # keep the connection for the next message
    if scenario.recipients > 1:
        cmd += ["-r", str(scenario.recipients)]
    cmd += ["-F", files[scenario.name], "-f", SENDER, "-t", "rcpt@example.com", f"{HOST}:{port}"]
    cpu_before, sys_before = children_cpu()
    _out, wall = await spawn(cmd)
    cpu_after, sys_after = children_cpu()
    return {
        "messages": count,
        "elapsed": wall,
        "cpu": cpu_after - cpu_before,
        "sys": sys_after - sys_before,
    }


def source_files(directory: str) -> dict[str, str]:
    """Message files for smtp-source -F: LF line ends (it sends each line + CRLF and
    stuffs dots itself). It also ends the body with an empty line: 2 bytes more."""
    files = {}
    for name, data in (("1k", message_1k()), ("dot10m", dot_message())):
        path = os.path.join(directory, f"{name}.txt")
        with open(path, "wb") as out:
            out.write(data.replace(b"\r\n", b"\n"))
        files[name] = path
    return {s.name: files["dot10m" if s.name == "dot10m" else "1k"] for s in SCENARIOS}


@dataclass
class Cell:
    rate: list[float] = field(default_factory=list)  # messages/s per run
    cpu_us: list[float] = field(default_factory=list)  # client CPU µs/message per run
    sink_us: list[float] = field(default_factory=list)  # sink CPU µs/message per run
    sys_share: list[float] = field(default_factory=list)  # kernel share of client CPU
    rt: list[float] = field(default_factory=list)  # round trips/message (delay scenarios)
    pin: str = ""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def run_all(
    args: argparse.Namespace, sink_port: int, sink_pid_: int, files: dict[str, str]
) -> dict[str, Any]:
    cells: dict[tuple[str, str, str], Cell] = {}
    rtts: list[float] = []
    started = time.monotonic()
    scenarios = [SCENARIO_BY_NAME[name] for name in args.scenarios]
    async with contextlib.AsyncExitStack() as stack:
        proxy: DelayProxy | None = None
        if any(s.delay for s in scenarios):
            proxy = await stack.enter_async_context(DelayProxy(sink_port, args.delay_ms / 1000))
        for run in range(args.runs):
            for scenario in scenarios:
                clients = [c for c in scenario.clients if c[0] in args.clients]
                shift = run % len(clients) if clients else 0
                order = clients[shift:] + clients[:shift]
                cpu = client_cpu(args.pin, scenario)
                prefix = pin_prefix(cpu)
                rtt = 0.0
                if scenario.delay:
                    assert proxy is not None
                    rtt = await roundtrips.measure_rtt(proxy.port)
                    rtts.append(rtt)
                for client, loop in order:
                    sink_before = process_cpu(sink_pid_)
                    if scenario.delay:
                        assert proxy is not None
                        spec = {
                            # roundtrips.py's "pool" client: SMTPPool(max_connections=1)
                            "client": "pool" if scenario.pool else client,
                            "loop": loop,
                            "scenario": "delay",
                            "port": proxy.port,
                            "rcpts": scenario.recipients,
                            "messages": args.delay_messages,
                        }
                        out, _ = await spawn(
                            [
                                *prefix,
                                sys.executable,
                                str(HERE / "roundtrips.py"),
                                "--worker",
                                json.dumps(spec),
                            ]
                        )
                        res = json.loads(out.decode().strip().splitlines()[-1])
                        per_msg = res["s_per_message"]
                        result = {
                            "messages": 1,
                            "elapsed": per_msg,
                            "cpu": 0.0,
                            "rt": per_msg / rtt,
                        }
                    elif client == "smtp-source":
                        result = await run_smtp_source(
                            scenario, sink_port, args.seconds, prefix, files
                        )
                    else:
                        spec = {
                            "client": client,
                            "loop": loop,
                            "scenario": scenario.name,
                            "port": sink_port,
                            "recipients": scenario.recipients,
                            "connections": scenario.connections,
                            "seconds": args.seconds,
                        }
                        out, _ = await spawn(
                            [*prefix, sys.executable, str(SCRIPT), "--worker", json.dumps(spec)]
                        )
                        result = json.loads(out.decode().strip().splitlines()[-1])
                    sink_cpu = process_cpu(sink_pid_) - sink_before
                    cell = cells.setdefault((scenario.name, client, loop), Cell())
                    cell.pin = pin_label(cpu)
                    n = result["messages"]
                    cell.rate.append(n / result["elapsed"])
                    cell.cpu_us.append(result["cpu"] / n * 1e6)
                    cell.sink_us.append(sink_cpu / n * 1e6)
                    if result["cpu"] > 0:
                        cell.sys_share.append(result.get("sys", 0.0) / result["cpu"])
                    if "rt" in result:
                        cell.rt.append(result["rt"])
                    log(
                        f"run {run + 1} {scenario.name:12} {client:11} {loop:7} "
                        f"{n / result['elapsed']:9.1f} msg/s "
                        + (
                            f"{result['rt']:5.2f} RT/msg"
                            if "rt" in result
                            else f"{result['cpu'] / n * 1e6:8.1f} us CPU/msg"
                        )
                    )
    return {
        "cells": cells,
        "rtt_ms": statistics.median(rtts) * 1000 if rtts else None,
        "elapsed_s": time.monotonic() - started,
    }


def median_ratio(values: list[float], base: list[float]) -> float | None:
    """Median of per-run ratios (each run measured both back to back)."""
    if not values or not base:
        return None
    pairs = list(zip(values, base, strict=False))
    return statistics.median(v / b for v, b in pairs)


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def cpu_ticks() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs from /proc/stat; (0, 0) where there is none."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> str:
    """Share of the machine's CPU time the hypervisor took away between two readings."""
    total = after[1] - before[1]
    return f"{(after[0] - before[0]) / total:.1%}" if total > 0 else "unknown"


def run_meta(args: argparse.Namespace, sink_name: str, steal: str) -> dict[str, Any]:
    """What the report's header line says about the run (kept in the saved JSON)."""
    return {
        "date": datetime.date.today().isoformat(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sink": sink_name,
        "steal": steal,
        "pin": args.pin,
        "runs": args.runs,
        "seconds": args.seconds,
        "delay_ms": args.delay_ms,
        "delay_messages": args.delay_messages,
    }


def results_data(
    args: argparse.Namespace, sink_name: str, res: dict[str, Any], steal: str
) -> dict[str, Any]:
    """The per-run values of every cell, as ``--save-json`` writes them."""
    cells: dict[tuple[str, str, str], Cell] = res["cells"]
    return {
        "format": 1,
        "meta": run_meta(args, sink_name, steal),
        "scenarios": [s.name for s in SCENARIOS if s.name in args.scenarios],
        # Bytes per message, for the MB/s column (what send_message flattens, for the _msg ones).
        "sizes": {name: len(scenario_message(name)) for name in args.scenarios},
        "rtt_ms": res["rtt_ms"],
        "elapsed_s": res["elapsed_s"],
        "cells": [
            {"scenario": scenario, "client": client, "loop": loop, **dataclasses.asdict(cell)}
            for (scenario, client, loop), cell in cells.items()
        ],
    }


def load_results(
    path: str, args: argparse.Namespace
) -> tuple[dict[str, Any], str, dict[str, Any], str]:
    """Read a ``--save-json`` file; see :func:`load_results_data`."""
    with open(path) as src:
        return load_results_data(json.load(src), args)


def load_results_data(
    data: dict[str, Any], args: argparse.Namespace
) -> tuple[dict[str, Any], str, dict[str, Any], str]:
    """Set ``args`` from saved results; return (data, sink, res, steal) for :func:`report`."""
    meta = data["meta"]
    args.scenarios = data["scenarios"]
    for name in ("pin", "runs", "seconds", "delay_ms", "delay_messages"):
        setattr(args, name, meta[name])
    cells = {
        (c["scenario"], c["client"], c["loop"]): Cell(
            **{f.name: c[f.name] for f in dataclasses.fields(Cell)}
        )
        for c in data["cells"]
    }
    res = {"cells": cells, "rtt_ms": data["rtt_ms"], "elapsed_s": data["elapsed_s"]}
    return data, meta["sink"], res, meta["steal"]


def report(
    args: argparse.Namespace,
    sink_name: str,
    res: dict[str, Any],
    steal: str = "unknown",
    meta: dict[str, Any] | None = None,
) -> str:
    cells: dict[tuple[str, str, str], Cell] = res["cells"]
    meta = meta or run_meta(args, sink_name, steal)
    lines = [
        f"{meta['date']} · {meta['cpus']} CPUs (shared; hypervisor "
        f"steal during the run: {steal}) · "
        f"Python {meta['python']} · sink: {sink_name} on CPU 0 · pin: {args.pin} "
        f"(same = client on CPU 0 with the sink, split = client on CPU 1) · runs: {args.runs} "
        f"(medians; ratios are medians of per-run ratios) · {args.seconds:g} s per cell",
        "",
        "| scenario | client | loop | pin | msg/s | MB/s | client CPU µs/msg | kernel % | "
        "sink CPU µs/msg | vs aiosmtplib | vs smtp-source | vs own sendmail |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    delay_lines = []
    for scenario in SCENARIOS:
        if scenario.name not in args.scenarios:
            continue
        size = len(scenario_message(scenario.name))
        anchor = cells.get((scenario.name, "smtp-source", "-"))
        for client, loop in scenario.clients:
            cell = cells.get((scenario.name, client, loop))
            if cell is None:
                continue
            if scenario.delay:
                base = cells.get((scenario.name, "aiosmtplib", loop))
                delay_lines.append(
                    f"| {scenario.title} | {client} | {loop} | {cell.pin} | "
                    f"{1000 / statistics.median(cell.rate):.1f} | "
                    f"{statistics.median(cell.rt):.2f} | "
                    f"{fmt_ratio(median_ratio(cell.rate, base.rate) if base else None)} |"
                )
                continue
            twin = cells.get((scenario.twin, client, loop)) if scenario.twin else None
            base_loop = loop if loop != "-" else "asyncio"
            base = cells.get((scenario.name, "aiosmtplib", base_loop))
            rate = statistics.median(cell.rate)
            vs_base = median_ratio(cell.rate, base.rate) if base else None
            vs_c = median_ratio(cell.rate, anchor.rate) if anchor else None
            lines.append(
                f"| {scenario.title} | {client} | {loop} | {cell.pin} | {rate:,.0f} | "
                f"{rate * size / 1e6:,.1f} | {statistics.median(cell.cpu_us):,.0f} | "
                f"{statistics.median(cell.sys_share) if cell.sys_share else 0:.0%} | "
                f"{statistics.median(cell.sink_us):,.0f} | {fmt_ratio(vs_base)} | "
                f"{fmt_ratio(vs_c)} | "
                f"{fmt_ratio(median_ratio(cell.rate, twin.rate) if twin else None)} |"
            )
        if scenario.pool and any(key[0] == scenario.name for key in cells):
            delay_lines.append(
                f"| {scenario.title} | aiosmtplib | - | - | - | - | n/a (aiosmtplib has no pool) |"
            )
    if delay_lines:
        lines += [
            "",
            f"Delay proxy {args.delay_ms:g} ms each way (NOOP RTT {res['rtt_ms']:.2f} ms, "
            f"median), {args.delay_messages} messages of 1 KiB on one connection, time per "
            "message = least-squares slope (roundtrips.py's worker):",
            "",
            "| scenario | client | loop | pin | ms/message | round trips/message | "
            "speed vs aiosmtplib |",
            "|---|---|---|---|---:|---:|---:|",
            *delay_lines,
        ]
    lines += ["", f"(total {res['elapsed_s']:.0f} s)"]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    names = [s.name for s in SCENARIOS]
    client_names = sorted({c for c, _ in CLIENTS})
    parser.add_argument("--scenarios", nargs="+", choices=names, default=names, metavar="NAME")
    parser.add_argument(
        "--clients", nargs="+", choices=client_names, default=client_names, metavar="NAME"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per cell (default 3)")
    parser.add_argument(
        "--seconds", type=float, default=0.6, help="timed part of each cell (default 0.6 s)"
    )
    parser.add_argument("--pin", choices=["targets", "same", "split", "none"], default="targets")
    parser.add_argument("--sink", choices=["smtp-sink", "python", "aiosmtpd"], default="smtp-sink")
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one way (default 10)")
    parser.add_argument("--delay-messages", type=int, default=20)
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
    parser.add_argument(
        "--pool",
        action="store_true",
        help="also run bench_pool.py: SMTPPool.send_many of 20,000 messages over 16 "
        "connections beside aiosmtplib with 16 hand-managed connections (~30 s)",
    )
    parser.add_argument(
        "--save-json", metavar="PATH", help="also write every cell's per-run values as JSON"
    )
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="measure nothing: report (and --chart) the results a --save-json run wrote",
    )
    parser.add_argument(
        "--chart",
        metavar="PATH",
        help="also draw the results as bar charts, .svg or .png (needs matplotlib: the bench "
        "extra; see chart.py)",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        return args
    if not 1 <= args.runs <= 50:
        parser.error("--runs must be 1..50")
    if not 0.1 <= args.seconds <= 60:
        parser.error("--seconds must be 0.1..60")
    if not 2 <= args.delay_messages <= 1000:
        parser.error("--delay-messages must be 2..1000")
    if not 0 < args.delay_ms <= 1000:
        parser.error("--delay-ms must be in (0, 1000]")
    if args.pin != "none" and (shutil.which("taskset") is None or (os.cpu_count() or 1) < 2):
        parser.error("pinning needs taskset and 2 CPUs (use --pin none)")
    if "smtp-source" in args.clients and not os.access(SMTP_SOURCE, os.X_OK):
        log(f"{SMTP_SOURCE} missing (benchmarks/install_postfix_tools.sh): skipping it")
        args.clients.remove("smtp-source")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        print(json.dumps(run_worker(json.loads(argv[1]))), flush=True)
        return 0
    if argv[:1] == ["--serve-aiosmtpd"]:
        asyncio.run(serve_aiosmtpd(1800.0))
        return 0
    args = parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:13} {s.title}  [{', '.join(f'{c}/{lp}' for c, lp in s.clients)}]")
        return 0
    if args.chart:
        import chart  # before measuring: a missing matplotlib says so now, not minutes later

        chart.require_matplotlib()
    if args.from_json:
        data, sink_name, result, steal = load_results(args.from_json, args)
        print(report(args, sink_name, result, steal, data["meta"]))
        print("\nREADME summary (benchmarks/summary.py):\n\n" + summary_table(data))
        if args.chart:
            chart.draw(data, args.chart)
            log(f"chart: {args.chart}")
        return 0
    sink_prefix = pin_prefix(None if args.pin == "none" else 0)
    with tempfile.TemporaryDirectory(prefix="fastsmtp-bench-") as tmp:
        files = source_files(tmp)
        with start_sink(args.sink, sink_prefix) as (sink_name, sink_port, pid):
            log(f"sink: {sink_name} on {HOST}:{sink_port} (pid {pid or '?'})")
            # Steal time says how much a noisy neighbour on the host took from this run.
            ticks = cpu_ticks()
            result = asyncio.run(run_all(args, sink_port, pid, files))
            steal = steal_share(ticks, cpu_ticks())
    print(report(args, sink_name, result, steal))
    data = results_data(args, sink_name, result, steal)
    print("\nREADME summary (benchmarks/summary.py):\n\n" + summary_table(data))
    if args.save_json or args.chart:
        if args.save_json:
            with open(args.save_json, "w") as out:
                json.dump(data, out, indent=1)
            log(f"results: {args.save_json}")
        if args.chart:
            chart.draw(data, args.chart)
            log(f"chart: {args.chart}")
    if args.pool:
        # Bulk sending through the pool (issue 7): its own script, its own sinks.
        log("pool: benchmarks/bench_pool.py (20,000 messages, 16 connections)")
        pool = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("bench_pool.py"))],
            check=True,
            capture_output=True,
            text=True,
        )
        print("\n" + pool.stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
