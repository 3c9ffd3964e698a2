"""End to end against a real Postfix: fastsmtp vs aiosmtplib, one connection each.

Starts the Postfix + Dovecot of ``tests/interop/servers.py`` (needs root and the Debian
packages ``postfix dovecot-core dovecot-lmtpd dovecot-submissiond``; see ``.ci/run``),
then for each run and client: one connection to the STARTTLS port, STARTTLS, AUTH PLAIN
(through Dovecot), ``--messages`` sequential ``sendmail`` calls (each awaited: a real
queue, so every message's 250 means Postfix has it safely queued), QUIT. The clock runs
from the first MAIL to the last reply. Between runs the queue is left to drain (Postfix
delivering into the Maildir) so a run does not pay for the previous one's deliveries.
The clients alternate, fastsmtp first. Prints msg/s and client CPU per message, and
the fastsmtp/aiosmtplib ratio of the medians.

    python benchmarks/bench_postfix.py [--messages 2000] [--runs 3] [--loop asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.interop

import aiosmtplib
from tests.interop.servers import MailServers, ServerUnavailable, start_servers

import fastsmtp

SENDER = "bench@example.test"
RECIPIENT = "bench-rcpt@example.test"
BODY = b"".join(
    b"Line %02d of a small benchmark message, plain ASCII text.\r\n" % i for i in range(12)
)


def message(i: int) -> bytes:
    return (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: benchmark {i}\r\n"
        f"Message-ID: <bench-{i}@example.test>\r\n\r\n"
    ).encode() + BODY


async def one_run(servers: MailServers, kind: str, messages: list[bytes]) -> tuple[float, float]:
    """Seconds and client CPU seconds to send ``messages`` on one connection."""
    factory: Callable[..., Any] = fastsmtp.SMTP if kind == "fastsmtp" else aiosmtplib.SMTP
    client = factory(
        hostname=servers.hostname,
        port=servers.starttls_port,
        start_tls=True,
        tls_context=servers.tls_context(),
        username=servers.username,
        password=servers.password,
        timeout=60,
    )
    async with client:
        cpu, start = time.process_time(), time.perf_counter()
        for data in messages:
            refused, _ = await client.sendmail(SENDER, [RECIPIENT], data)
            assert not refused
        return time.perf_counter() - start, time.process_time() - cpu


def drain(servers: MailServers, timeout: float = 300.0) -> None:
    """Wait for Postfix to deliver everything queued, then empty the Maildir."""
    deadline = time.monotonic() + timeout
    while not servers.queue_is_empty():
        if time.monotonic() > deadline:
            raise SystemExit("Postfix did not deliver the previous run in time")
        time.sleep(0.1)
    for sub in ("new", "cur", "tmp"):
        for path in (servers.maildir / sub).glob("*"):
            path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    new_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if args.loop == "uvloop":
        import uvloop

        new_loop = uvloop.new_event_loop
    messages = [message(i) for i in range(args.messages)]
    try:
        servers = start_servers()
    except ServerUnavailable as exc:
        raise SystemExit(f"cannot start Postfix/Dovecot: {exc}") from None
    results: dict[str, list[tuple[float, float]]] = {"fastsmtp": [], "aiosmtplib": []}
    try:
        for run in range(args.runs):
            for kind in results:
                drain(servers)
                loop = new_loop()
                try:
                    elapsed, cpu = loop.run_until_complete(one_run(servers, kind, messages))
                finally:
                    loop.close()
                results[kind].append((elapsed, cpu))
                print(
                    f"run {run + 1} {kind:<10} {args.messages / elapsed:8.0f} msg/s "
                    f"{cpu / args.messages * 1e6:6.0f} us client CPU/msg",
                    flush=True,
                )
        drain(servers)
    finally:
        servers.stop()
        shutil.rmtree(servers.root, ignore_errors=True)
    print(
        f"\n{args.messages} messages x {args.runs} runs, one STARTTLS + AUTH PLAIN connection "
        f"each, {args.loop} loop, fastsmtp core: {fastsmtp._speedups.IMPLEMENTATION}"
    )
    rates = {}
    for kind, runs in results.items():
        rates[kind] = statistics.median(args.messages / elapsed for elapsed, _ in runs)
        cpu_us = statistics.median(cpu for _, cpu in runs) / args.messages * 1e6
        print(f"  {kind:<10} median {rates[kind]:8.0f} msg/s  {cpu_us:6.0f} us client CPU/msg")
    print(f"  fastsmtp / aiosmtplib: {rates['fastsmtp'] / rates['aiosmtplib']:.2f}x")


if __name__ == "__main__":
    main()
