"""The floor under any SMTP client on asyncio's own loop: a client that does nothing else.

Run it::

    python benchmarks/loop_floor.py                    # asyncio's loop, 3 runs
    python benchmarks/loop_floor.py --loop uvloop --runs 5

Against Postfix's ``smtp-sink`` (client and sink on CPU 0, as ``run.py``'s "same" pin),
one connection, the 1 KiB message of ``run.py``, this measures msg/s and client CPU per
message of three SMTP clients with no parsing, no checks and no bookkeeping beyond
counting reply lines, each doing two round trips per message as every pipelining client
must (MAIL/RCPT/DATA, then the body after the 354; RFC 2920 section 3.1):

- ``task4``: a task awaits the 354, writes the body, awaits the final reply: four turns
  of the loop per message (two reads, two task wake-ups), what fastsmtp did before
  ``fastsmtp._go_ahead``;
- ``task3``: the body is written from the read that brings the 354, the task awaits only
  the final reply: three turns, what ``sendmail`` does now;
- ``callbacks``: no task at all, every write made from a read callback: two turns, the
  least any asyncio code can do (and no ``await sendmail()`` API can: its caller runs
  in a task);

beside ``smtp-source`` and fastsmtp's ``sendmail``, in the same minutes. If the floor is
below ``smtp-source``, no asyncio client reaches it on that loop.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import roundtrips  # noqa: E402
import run  # noqa: E402

MESSAGE = run.message_1k()
BODY = MESSAGE + b".\r\n"  # message_1k ends with CRLF and has no line starting with "."
COMMANDS = b"MAIL FROM:<a@example.com>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\n"
CLIENTS = ("task4", "task3", "callbacks", "fastsmtp", "smtp-source")


class Floor(asyncio.Protocol):
    """Counts complete reply lines (``NNN text``) and hands them to ``on_replies``."""

    def __init__(self, mode: str, messages: int) -> None:
        self.mode = mode
        self.left = messages
        self.transport: asyncio.Transport | None = None
        self.owed = 1  # the greeting, which may come before anyone awaits it
        self.waiter: asyncio.Future[None] | None = asyncio.get_running_loop().create_future()
        self.greeted = self.waiter
        self.tail = b""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        data = self.tail + data
        end = data.rfind(b"\n") + 1
        self.tail = data[end:]
        for line in data[:end].split(b"\r\n")[:-1]:
            if line[3:4] != b"-":
                self.owed -= 1
        if self.owed == 0:
            self.replies_in()

    def replies_in(self) -> None:
        transport = self.transport
        assert transport is not None
        if self.mode == "callbacks" and self.waiter is None:
            if self.phase_body:
                self.phase_body = False
                self.owed = 1
                transport.write(BODY)
                return
            self.left -= 1
            if self.left <= 0:
                self.done.set_result(None)
                return
            self.phase_body = True
            self.owed = 3
            transport.write(COMMANDS)
            return
        if self.mode == "task3" and self.phase_body:
            self.phase_body = False
            self.owed = 1
            transport.write(BODY)
            return
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter.set_result(None)

    phase_body = False

    async def exchange(self, data: bytes, owed: int) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        self.owed = owed
        if data:
            assert self.transport is not None
            self.transport.write(data)
        await self.waiter


async def floor_client(mode: str, port: int, messages: int) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: Floor(mode, messages), run.HOST, port)
    await proto.greeted
    await proto.exchange(b"EHLO me.example.com\r\n", 1)
    start, wall = time.process_time(), time.perf_counter()
    if mode == "callbacks":
        proto.phase_body = True
        proto.owed = 3
        assert proto.transport is not None
        proto.transport.write(COMMANDS)
        await proto.done
    else:
        for _ in range(messages):
            if mode == "task4":
                await proto.exchange(COMMANDS, 3)
                await proto.exchange(BODY, 1)
            else:
                proto.phase_body = True
                await proto.exchange(COMMANDS, 3)  # the body goes from the callback
    cpu, wall = time.process_time() - start, time.perf_counter() - wall
    assert proto.transport is not None
    proto.transport.close()
    return cpu, wall


async def fastsmtp_client(port: int, messages: int) -> tuple[float, float]:
    import fastsmtp

    async with fastsmtp.SMTP(hostname=run.HOST, port=port, start_tls=False) as smtp:
        for _ in range(200):
            await smtp.sendmail(run.SENDER, ["rcpt@example.com"], MESSAGE)
        start, wall = time.process_time(), time.perf_counter()
        for _ in range(messages):
            await smtp.sendmail(run.SENDER, ["rcpt@example.com"], MESSAGE)
        return time.process_time() - start, time.perf_counter() - wall


def worker(mode: str, port: int, messages: int, loop_name: str) -> None:
    if mode == "fastsmtp":
        coro = fastsmtp_client(port, messages)
    else:
        coro = floor_client(mode, port, messages)
    if loop_name == "uvloop":
        import uvloop

        cpu, wall = uvloop.run(coro)
    else:
        cpu, wall = asyncio.run(coro)
    print(cpu, wall)


def measure(
    mode: str, port: int, messages: int, loop_name: str, source_file: str
) -> tuple[float, float]:
    """(msg/s, client CPU µs/msg) of one run pinned to CPU 0."""
    prefix = run.pin_prefix(0)
    if mode == "smtp-source":
        cmd = [*prefix, run.SMTP_SOURCE, "-m", str(messages), "-s", "1", "-d", "-F", source_file]
        cmd += ["-f", run.SENDER, "-t", "rcpt@example.com", f"{run.HOST}:{port}"]
        before = run.children_cpu()[0]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        return messages / wall, (run.children_cpu()[0] - before) / messages * 1e6
    cmd = [*prefix, sys.executable, __file__, "--worker", mode, str(port), str(messages), loop_name]
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    cpu, wall = (float(word) for word in out.split())
    return messages / wall, cpu / messages * 1e6


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in CLIENTS}
    with (
        tempfile.TemporaryDirectory() as tmp,
        roundtrips.start_sink("smtp-sink", run.pin_prefix(0)) as (_name, port),
    ):
        source_file = str(Path(tmp) / "1k.txt")
        Path(source_file).write_bytes(MESSAGE.replace(b"\r\n", b"\n"))
        for _ in range(args.runs):
            for name in CLIENTS:  # interleaved, so load changes hit every client
                results[name].append(measure(name, port, args.messages, args.loop, source_file))
    source_rate = statistics.median(r for r, _ in results["smtp-source"])
    print(f"{args.messages} messages, {args.runs} runs, medians, {args.loop} loop, CPU 0")
    print("| client | msg/s | client CPU µs/msg | vs smtp-source |")
    print("|---|---:|---:|---:|")
    for name, rows in results.items():
        rate = statistics.median(r for r, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(f"| {name} | {rate:,.0f} | {cpu:.1f} | {rate / source_rate:.2f}x |")


if __name__ == "__main__":
    main()
