"""Bulk sending: ``SMTPPool.send_many`` against aiosmtplib with hand-managed connections.

Run it (about 30 s with the defaults)::

    python benchmarks/bench_pool.py                       # 20,000 messages, 16 connections
    python benchmarks/bench_pool.py --sink python --loop asyncio --messages 5000

For each sink (Postfix ``smtp-sink`` and :mod:`sink`, both by default), each client runs
in its own subprocess on the chosen event loop and sends ``--messages`` messages of
1 KiB, each to one recipient, over ``--connections`` connections:

``fastsmtp``
    ``async with SMTPPool(max_connections=N) as pool: await pool.send_many(items)``,
    items being ``(bytes, sender, [recipient])`` tuples from a generator.
``aiosmtplib``
    What applications write today: N connected ``aiosmtplib.SMTP`` clients in an
    ``asyncio.Queue`` and N worker tasks, each taking a client from the queue for one
    ``sendmail`` and putting it back.

The time counted runs from before the first connection is opened to after the last
QUIT. Messages per second for both clients and the ratio are printed as markdown.
Everything listens on 127.0.0.1 with OS-chosen ports; every process started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from roundtrips import start_sink  # noqa: E402

HOST = "127.0.0.1"
SENDER = "sender@example.com"
RECIPIENT = "rcpt@example.com"


def message_1k(i: int) -> bytes:
    """A 1024-byte message with a unique Message-ID."""
    head = (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: pool benchmark\r\n"
        f"Message-ID: <{i:08d}@bench.example>\r\n\r\n"
    ).encode()
    line = b"x" * 70 + b"\r\n"
    body = line * ((1024 - len(head)) // len(line))
    return (head + body).ljust(1022, b"y") + b"\r\n"


def items(count: int) -> Iterator[tuple[bytes, str, list[str]]]:
    for i in range(count):
        yield message_1k(i), SENDER, [RECIPIENT]


async def run_fastsmtp(port: int, messages: int, connections: int) -> dict[str, Any]:
    from fastsmtp import SendStatus, SMTPPool

    started = time.perf_counter()
    async with SMTPPool(
        hostname=HOST, port=port, max_connections=connections, local_hostname="bench.local"
    ) as pool:
        results = await pool.send_many(items(messages))
    elapsed = time.perf_counter() - started
    sent = sum(r.status is SendStatus.SENT for r in results)
    return {"elapsed": elapsed, "sent": sent}


async def run_aiosmtplib(port: int, messages: int, connections: int) -> dict[str, Any]:
    import aiosmtplib

    started = time.perf_counter()
    clients: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
    opened = []
    for _ in range(connections):
        client = aiosmtplib.SMTP(hostname=HOST, port=port, local_hostname="bench.local")
        opened.append(client)
    await asyncio.gather(*(c.connect() for c in opened))
    for client in opened:
        clients.put_nowait(client)
    source = items(messages)
    sent = 0

    async def worker() -> None:
        nonlocal sent
        for message, sender, recipients in source:
            client = await clients.get()
            try:
                await client.sendmail(sender, recipients, message)
                sent += 1
            finally:
                clients.put_nowait(client)

    await asyncio.gather(*(worker() for _ in range(connections)))
    await asyncio.gather(*(c.quit() for c in opened))
    elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "sent": sent}


def worker_main(spec: dict[str, Any]) -> None:
    run = run_fastsmtp if spec["client"] == "fastsmtp" else run_aiosmtplib
    coro = run(spec["port"], spec["messages"], spec["connections"])
    if spec["loop"] == "uvloop":
        import uvloop

        result = uvloop.run(coro)
    else:
        result = asyncio.run(coro)
    print(json.dumps(result))


def spawn(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--sink", choices=["both", "smtp-sink", "python"], default="both")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(json.loads(args.worker))
        return 0
    sinks = ["smtp-sink", "python"] if args.sink == "both" else [args.sink]
    print(
        f"{args.messages} messages of 1 KiB, one recipient each, {args.connections} "
        f"connections, {args.loop}\n"
    )
    print(
        "| sink | fastsmtp SMTPPool.send_many msg/s | aiosmtplib (16 SMTP + queue) msg/s | ratio |"
    )
    print("|---|---|---|---|")
    for kind in sinks:
        with start_sink(kind) as (name, port):
            rates: dict[str, float] = {}
            for client in ("fastsmtp", "aiosmtplib"):
                spec = {
                    "client": client,
                    "port": port,
                    "messages": args.messages,
                    "connections": args.connections,
                    "loop": args.loop,
                }
                result = spawn(spec)
                if result["sent"] != args.messages:
                    raise SystemExit(f"{client}: only {result['sent']} messages sent")
                rates[client] = args.messages / result["elapsed"]
                print(f"  {name}: {client} {rates[client]:,.0f} msg/s", file=sys.stderr)
            ratio = rates["fastsmtp"] / rates["aiosmtplib"]
            print(
                f"| {name} | {rates['fastsmtp']:,.0f} | {rates['aiosmtplib']:,.0f} | {ratio:.2f}x |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
