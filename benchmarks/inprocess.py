"""Client CPU per message with no sockets: fastsmtp over an in-memory transport.

Run it::

    python benchmarks/inprocess.py sendmail            # 1 KiB, one recipient
    python benchmarks/inprocess.py rcpt100 --messages 2000
    python benchmarks/inprocess.py send_message
    python benchmarks/inprocess.py send_message_rcpt100 --client aiosmtplib
    python benchmarks/inprocess.py sendmail --loop uvloop

Modes: ``sendmail`` (1 KiB bytes, one recipient), ``rcpt100`` (the same to 100),
``dot10m`` (10 MiB, every other line starts with "."), and their ``send_message`` forms
(an ``EmailMessage`` whose To header names the 100 recipients, or whose text body is the
10 MiB): ``send_message``, ``send_message_rcpt100``, ``send_message_dot10m``.
``--client aiosmtplib`` runs aiosmtplib over the same in-memory transport.

Instruction counts are steadier than times on a busy machine (the warm-up is the same
in both runs, so it cancels)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python benchmarks/inprocess.py sendmail --messages 3000 --repeat 1
    # minus the same with --messages 1, divided by 2999

The "server" is a few lines that answer each command line at once (EHLO advertises
PIPELINING and 8BITMIME) from ``loop.call_soon``; no kernel, no sink process, so what is
measured is the client's own Python and C work per message, on asyncio's loop. That is
the number to compare two versions of fastsmtp by (run it with each one's interpreter,
alternately, a few times, and take the best of each): end-to-end runs on a shared 2-core
machine swing by 20 % or more between runs of the same code. It says nothing about
throughput against a real server; ``run.py`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from email.message import EmailMessage
from typing import Any

import fastsmtp


class _MemoryTransport(asyncio.Transport):
    """Answers every command line of the client at once, by the next loop iteration."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._buffer = b""
        self._in_data = False
        self._closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 25), "sockname": ("127.0.0.1", 5555)}.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += bytes(data)
        out = []
        while True:
            if self._in_data:
                end = self._buffer.find(b"\r\n.\r\n")
                if end < 0:
                    # Only the tail can begin the end of data: a large body is not
                    # copied again with each write.
                    self._buffer = self._buffer[-4:]
                    break
                self._buffer = self._buffer[end + 5 :]
                self._in_data = False
                out.append(b"250 ok queued\r\n")
                continue
            end = self._buffer.find(b"\r\n")
            if end < 0:
                break
            line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            verb = line[:4].upper()
            if verb == b"EHLO":
                out.append(b"250-memory\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                out.append(b"354 go ahead\r\n")
                self._in_data = True
            elif verb == b"QUIT":
                out.append(b"221 bye\r\n")
            else:
                out.append(b"250 ok\r\n")
        if out:
            self._loop.call_soon(self._protocol.data_received, b"".join(out))


async def _connect_in_memory(factory: Any, *args: Any, **kwargs: Any) -> Any:
    loop = asyncio.get_running_loop()
    protocol = factory()
    transport = _MemoryTransport(loop, protocol)
    protocol.connection_made(transport)
    loop.call_soon(protocol.data_received, b"220 memory ESMTP\r\n")
    return transport, protocol


def _dot_text(size: int) -> str:
    """About ``size`` characters of text lines, every other one starting with "."."""
    pair = "x" * 76 + "\n" + "." + "y" * 75 + "\n"
    return pair * (size // len(pair))


def _email(scenario: str, recipients: list[str]) -> EmailMessage:
    email = EmailMessage()
    email["From"] = "a@example.com"
    email["To"] = ", ".join(recipients) if scenario.endswith("rcpt100") else "r@example.com"
    email["Subject"] = "hi"
    email.set_content(_dot_text(10 * 1024 * 1024) if scenario.endswith("dot10m") else "z" * 1000)
    return email


async def _run(scenario: str, messages: int, client_name: str = "fastsmtp") -> float:
    loop = asyncio.get_running_loop()
    loop.create_connection = _connect_in_memory  # type: ignore[method-assign]
    if scenario.endswith("dot10m"):
        body = b"Subject: s\r\n\r\n" + _dot_text(10 * 1024 * 1024).replace("\n", "\r\n").encode()
    else:
        body = b"Subject: s\r\n\r\n" + b"z" * 1000 + b"\r\n"
    count = 100 if scenario.endswith("rcpt100") else 1
    recipients = [f"r{i}@example.com" for i in range(count)]
    email = _email(scenario, recipients)
    module: Any = fastsmtp
    if client_name == "aiosmtplib":
        import aiosmtplib

        module = aiosmtplib
    # A socket given as sock= goes straight to loop.create_connection (replaced above); it
    # is never used for I/O. (A hostname and port would be resolved and dialled first.)
    unused, peer = socket.socketpair()
    client = module.SMTP(
        hostname="127.0.0.1", sock=unused, local_hostname="me.example.com", start_tls=False
    )
    await client.connect()
    for _ in range(2 if scenario.endswith("dot10m") else 200):  # warm up
        await client.sendmail("a@example.com", recipients, body)
    start = time.process_time()
    if scenario.startswith("send_message"):
        for _ in range(messages):
            await client.send_message(email)
    else:
        for _ in range(messages):
            await client.sendmail("a@example.com", recipients, body)
    elapsed = time.process_time() - start
    client.close()
    unused.close()
    peer.close()
    return elapsed / messages * 1e6


SCENARIOS = (
    "sendmail",
    "rcpt100",
    "dot10m",
    "send_message",
    "send_message_rcpt100",
    "send_message_dot10m",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--client", choices=["fastsmtp", "aiosmtplib"], default="fastsmtp")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="best of N (default 5)")
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default="asyncio", help="(asyncio's own)"
    )
    args = parser.parse_args()
    if not 1 <= args.messages <= 1_000_000 or not 1 <= args.repeat <= 50:
        parser.error("--messages 1..1000000, --repeat 1..50")
    if args.loop == "uvloop":
        import uvloop

        run: Any = uvloop.run
    else:
        run = asyncio.run
    best = min(run(_run(args.scenario, args.messages, args.client)) for _ in range(args.repeat))
    print(
        f"{args.client} {args.scenario}: {best:.1f} us of client CPU per message"
        f" (best of {args.repeat}, {args.loop} loop)"
    )


if __name__ == "__main__":
    main()
