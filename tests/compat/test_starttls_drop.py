"""Issue 12: a server that drops the connection around STARTTLS gives SMTPServerDisconnected.

A socket error must never escape raw from ``starttls()``: code written for aiosmtplib catches
``SMTPServerDisconnected`` there (RFC 3207 section 4: the server may close instead of
negotiating). Certificate and TLS protocol errors stay the raw ``ssl.SSLError`` they are in
aiosmtplib (compat-api.md 3.6). Each scenario runs fastsmtp and aiosmtplib 5.1.3 against the
same scripted server, on the event loop of the run (asyncio or uvloop).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from typing import Any

import aiosmtplib
import pytest
from tests.client.conftest import _collect_garbage  # noqa: F401  (fixture)

import fastsmtp

SCENARIOS = {
    # the 220 to STARTTLS, then a clean close / a reset before the handshake
    "220-then-close": (True, "close", False),
    "220-then-reset": (True, "reset", False),
    # no reply to STARTTLS at all
    "no-reply-close": (False, "close", False),
    "no-reply-reset": (False, "reset", False),
    # the 220, then the ClientHello is read and the connection closed / reset
    "handshake-close": (True, "close", True),
    "handshake-reset": (True, "reset", True),
}


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0), as a crashing or hostile peer does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def drop_around_starttls(
    reply: bool,
    how: str,
    read_hello: bool,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    writer.write(b"220 drop.test ESMTP\r\n")
    await reader.readline()  # EHLO
    writer.write(b"250-drop.test\r\n250 STARTTLS\r\n")
    await reader.readline()  # STARTTLS
    if reply:
        writer.write(b"220 go ahead\r\n")
        await writer.drain()
    if read_hello:
        await reader.read(1)  # the ClientHello has arrived
    if how == "reset":
        reset(writer)
    else:
        writer.close()


async def attempt(lib: Any, handler: Any) -> BaseException:
    """Run ``starttls()`` of ``lib`` against a server playing ``handler``; its error."""
    writers: list[asyncio.StreamWriter] = []
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = lib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=5)
    try:
        await client.connect()
        with pytest.raises(BaseException) as info:
            await client.starttls(validate_certs=False)
        assert not client.is_connected
        return info.value
    finally:
        client.close()
        await done.wait()  # the handler has ended and closed its side
        server.close()
        await server.wait_closed()
        for writer in writers:
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_a_dropped_connection_around_starttls_is_smtp_server_disconnected(
    scenario: str,
) -> None:
    reply, how, read_hello = SCENARIOS[scenario]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await drop_around_starttls(reply, how, read_hello, reader, writer)

    fast = await attempt(fastsmtp, handler)
    aio = await attempt(aiosmtplib, handler)
    assert type(aio) is aiosmtplib.SMTPServerDisconnected
    assert type(fast) is fastsmtp.SMTPServerDisconnected
    assert isinstance(fast, ConnectionError)  # never a raw socket error
    # aiosmtplib's words: which one depends on whether the close is seen before the
    # handshake starts, a race the two clients need not lose in the same way.
    assert fast.args[0] in (
        "Connection lost",
        "Connection reset while upgrading transport",
        "Unexpected EOF received",
    )


async def test_a_tls_protocol_error_stays_the_raw_ssl_error_aiosmtplib_raises() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 drop.test ESMTP\r\n")
        await reader.readline()
        writer.write(b"250-drop.test\r\n250 STARTTLS\r\n")
        await reader.readline()
        writer.write(b"220 go ahead\r\n")
        await reader.read(1)
        writer.write(b"HTTP/1.0 400 this is not TLS\r\n\r\n" * 4)  # not a TLS record
        await writer.drain()
        await reader.read()  # until the client gives up

    fast = await attempt(fastsmtp, handler)
    aio = await attempt(aiosmtplib, handler)
    assert type(fast) is type(aio)
    assert isinstance(fast, ssl.SSLError)
