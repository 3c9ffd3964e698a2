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

``--concurrency N`` has N tasks calling ``sendmail`` at once on the one connection (each
awaiting its own reply), as an application sharing one client does: with PIPELINING the
next transaction's commands then go out behind each end of data (RFC 2920 section
3.1). ``--server smtp-sink`` sends to Postfix's ``smtp-sink`` (plain, no AUTH, nothing
queued) instead of the real Postfix.

    python benchmarks/bench_postfix.py [--messages 2000] [--runs 3] [--loop asyncio|uvloop]
        [--concurrency 8] [--server postfix|smtp-sink]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.interop
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for roundtrips

import aiosmtplib
from tests.interop.servers import MailServers, ServerUnavailable, start_servers

import fastsmtp
from roundtrips import start_sink

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


async def one_run(
    servers: MailServers | None, port: int, kind: str, messages: list[bytes], concurrency: int
) -> tuple[float, float]:
    """Seconds and client CPU seconds to send ``messages`` on one connection, with
    ``concurrency`` tasks calling ``sendmail``; to Postfix when ``servers`` is given
    (STARTTLS + AUTH), else plain to the sink on ``port``."""
    factory: Callable[..., Any] = fastsmtp.SMTP if kind == "fastsmtp" else aiosmtplib.SMTP
    if servers is not None:
        client = factory(
            hostname=servers.hostname,
            port=servers.starttls_port,
            start_tls=True,
            tls_context=servers.tls_context(),
            username=servers.username,
            password=servers.password,
            timeout=60,
        )
    else:
        client = factory(hostname="127.0.0.1", port=port, start_tls=False, timeout=60)
    queue = list(reversed(messages))

    async def sender() -> None:
        while queue:
            refused, _ = await client.sendmail(SENDER, [RECIPIENT], queue.pop())
            assert not refused

    async with client:
        cpu, start = time.process_time(), time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
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
    parser.add_argument("--concurrency", type=int, default=1, help="sendmail tasks (1)")
    parser.add_argument("--server", choices=("postfix", "smtp-sink"), default="postfix")
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 100:
        parser.error("--concurrency must be 1..100")
    new_loop: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if args.loop == "uvloop":
        import uvloop

        new_loop = uvloop.new_event_loop
    messages = [message(i) for i in range(args.messages)]
    with contextlib.ExitStack() as stack:
        servers: MailServers | None = None
        port = 0
        if args.server == "postfix":
            try:
                servers = start_servers()
            except ServerUnavailable as exc:
                raise SystemExit(f"cannot start Postfix/Dovecot: {exc}") from None
            stack.callback(shutil.rmtree, servers.root, ignore_errors=True)
            stack.callback(servers.stop)
        else:
            _name, port = stack.enter_context(start_sink("smtp-sink"))
        run_all(args, servers, port, messages, new_loop)


def run_all(
    args: argparse.Namespace,
    servers: MailServers | None,
    port: int,
    messages: list[bytes],
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    results: dict[str, list[tuple[float, float]]] = {"fastsmtp": [], "aiosmtplib": []}
    for run in range(args.runs):
        for kind in results:
            if servers is not None:
                drain(servers)
            loop = new_loop()
            try:
                elapsed, cpu = loop.run_until_complete(
                    one_run(servers, port, kind, messages, args.concurrency)
                )
            finally:
                loop.close()
            results[kind].append((elapsed, cpu))
            print(
                f"run {run + 1} {kind:<10} {args.messages / elapsed:8.0f} msg/s "
                f"{cpu / args.messages * 1e6:6.0f} us client CPU/msg",
                flush=True,
            )
    if servers is not None:
        drain(servers)
    where = "Postfix, one STARTTLS + AUTH" if servers is not None else "smtp-sink, one plain"
    print(
        f"\n{args.messages} messages x {args.runs} runs, {where} connection each, "
        f"{args.concurrency} sendmail task(s) on it, {args.loop} loop, "
        f"fastsmtp core: {fastsmtp._speedups.IMPLEMENTATION}"
    )
    rates = {}
    for kind, runs in results.items():
        rates[kind] = statistics.median(args.messages / elapsed for elapsed, _ in runs)
        cpu_us = statistics.median(cpu for _, cpu in runs) / args.messages * 1e6
        print(f"  {kind:<10} median {rates[kind]:8.0f} msg/s  {cpu_us:6.0f} us client CPU/msg")
    print(f"  fastsmtp / aiosmtplib: {rates['fastsmtp'] / rates['aiosmtplib']:.2f}x")


if __name__ == "__main__":
    main()
