"""security.md §5: hostile replies get a typed error quickly, and client memory stays bounded.

The flooding servers (100 MB without a line end, a million continuation lines) run in a
subprocess so tracemalloc measures the client alone; the small malformed replies come from
an in-process scripted server. Every case: ``SMTPResponseException(-1, ...)``, the connection
closed, nothing more written by the client, and a tracemalloc peak under 1 MiB.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastsmtp import SMTP
from fastsmtp.errors import SMTPResponseException
from tests.hostile.kit import Expect, Hang, HostileServer, Send, ehlo_reply

STREAM_SERVER = Path(__file__).with_name("_stream_server.py")
MiB = 1 << 20


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def client_for(port: int) -> SMTP:
    return SMTP(
        hostname="127.0.0.1", port=port, start_tls=False, local_hostname="client.test", timeout=10
    )


@pytest.mark.parametrize(
    ("mode", "message"),
    [("endless-line", "Response too long"), ("continuations", "Response too long")],
)
async def test_flood_fails_fast_with_bounded_memory(traced: None, mode: str, message: str) -> None:
    proc = subprocess.Popen(  # noqa: ASYNC220 - a server process; waited for off the loop
        [sys.executable, str(STREAM_SERVER), mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        client = client_for(port)
        await client.connect()
        await client.ehlo()
        tracemalloc.reset_peak()
        start = time.monotonic()
        with pytest.raises(SMTPResponseException) as info:
            await client.noop()
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
        # Off the loop: the client's socket closes in a loop callback.
        out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    summary = json.loads(out.splitlines()[-1])
    assert (info.value.code, info.value.message) == (-1, message)
    assert not client.is_connected
    assert elapsed < 2.0
    # The client hung up long before the server got its flood out.
    assert not summary["completed"], summary
    assert peak < MiB, f"client tracemalloc peak {peak} bytes"


MALFORMED = {
    "nul-bytes": (b"\x00" * 64 + b"\r\n", "Malformed SMTP response line: " + "\x00" * 64 + "\r\n"),
    "mismatched-codes": (b"250-a\r\n251 b\r\n", "Malformed SMTP response line: 251 b\r\n"),
    "code-2_5": (b"2_5 ok\r\n", "Malformed SMTP response line: 2_5 ok\r\n"),
    "code-+25": (b"+25 ok\r\n", "Malformed SMTP response line: +25 ok\r\n"),
    "code-25": (b"25 ok\r\n", "Malformed SMTP response line: 25 ok\r\n"),
    "code-2500": (b"2500 ok\r\n", "Malformed SMTP response line: 2500 ok\r\n"),
    "code-600": (b"600 ok\r\n", "Malformed SMTP response line: 600 ok\r\n"),
    "bad-separator": (b"250_ok\r\n", "Malformed SMTP response line: 250_ok\r\n"),
    "oversize-line": (b"250 " + b"y" * 9000 + b"\r\n", "Response too long"),
    "too-many-lines": (b"250-x\r\n" * 1100 + b"250 x\r\n", "Response too long"),
}


@pytest.mark.parametrize("payload", list(MALFORMED), ids=list(MALFORMED))
async def test_malformed_reply_is_a_typed_error(traced: None, payload: str) -> None:
    data, message = MALFORMED[payload]
    script = [
        Expect(b"EHLO"),
        ehlo_reply("SIZE 100"),
        Expect(b"NOOP"),
        Send(data),
        Expect(b"NOOP"),
        Send(b"250 ok\r\n"),
    ]
    async with HostileServer(script) as server:
        client = client_for(server.port)
        await client.connect()
        await client.ehlo()
        tracemalloc.reset_peak()
        with pytest.raises(SMTPResponseException) as info:
            await client.noop()
        _, peak = tracemalloc.get_traced_memory()
        await server.finished()
    assert (info.value.code, info.value.message) == (-1, message)
    assert not client.is_connected
    # The connection was dropped at once: no second NOOP, no QUIT.
    assert bytes(server.conn.plain) == b"EHLO client.test\r\nNOOP\r\n"
    assert peak < MiB


@pytest.mark.parametrize(
    "greeting",
    [b"2_0 hi\r\n", b"+22 hi\r\n", b"22 hi\r\n", b"\x00\x00\x00\r\n", b"220-a\r\n221 b\r\n"],
)
async def test_malformed_greeting_is_a_typed_error(greeting: bytes) -> None:
    async with HostileServer([Send(greeting), Hang()], greeting=False) as server:
        client = client_for(server.port)
        with pytest.raises(SMTPResponseException) as info:
            await client.connect()
        await server.finished()
    assert info.value.code == -1
    assert info.value.message.startswith("Malformed SMTP response line: ")
    assert not client.is_connected
    assert bytes(server.conn.plain) == b""


async def test_nul_inside_reply_text_is_kept_not_interpreted() -> None:
    # Documented core behaviour: text after a valid code is data (decoded, NUL kept).
    script = [
        Expect(b"EHLO"),
        ehlo_reply(),
        Expect(b"NOOP"),
        Send(b"250 o\x00k\r\n"),
        Expect(b"QUIT"),
        Send(b"221 bye\r\n"),
    ]
    async with HostileServer(script) as server:
        async with client_for(server.port) as client:
            response = await client.noop()
        await server.finished()
    assert (response.code, response.message) == (250, "o\x00k")
    assert server.conn.errors == []
