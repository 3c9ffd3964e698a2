"""security.md §6: replies pair with commands; anything unasked closes the connection.

Unsolicited 250 between commands, a duplicated reply, a 354 injected ahead of a DATA whose
real answer is 503, an idle 421: the client closes the connection, the next command raises
``SMTPServerDisconnected``, and the message body is never sent without a 354 to this DATA.
"""

from __future__ import annotations

import pytest

from fastsmtp import SMTP
from fastsmtp.errors import SMTPDataError, SMTPServerDisconnected
from tests.hostile.kit import Expect, Hang, HostileServer, Send, ehlo_reply, reply

UNSOLICITED = "Connection closed: Unsolicited data from server; connection closed"
BODY = b"Subject: secret\r\n\r\nthe body\r\n"


def client_for(server: HostileServer) -> SMTP:
    return SMTP(
        hostname="127.0.0.1",
        port=server.port,
        start_tls=False,
        local_hostname="client.test",
        timeout=3,
    )


async def test_unsolicited_250_between_commands_closes() -> None:
    script = [Expect(b"EHLO"), ehlo_reply(), Send(b"250 unsolicited\r\n"), Hang()]
    async with HostileServer(script) as server:
        client = client_for(server)
        await client.connect()
        await client.ehlo()
        await server.conn.eof.wait()  # the client hung up on the unsolicited reply
        with pytest.raises(SMTPServerDisconnected) as info:
            await client.noop()
        await server.finished()
    # Once the close has completed the client has forgotten the connection (and why it
    # ended): "Server not connected". Either way, nothing more is written.
    assert info.value.message in (UNSOLICITED, "Server not connected")
    assert not client.is_connected
    assert bytes(server.conn.plain) == b"EHLO client.test\r\n"


async def test_duplicated_reply_closes_before_the_next_command() -> None:
    script = [Expect(b"EHLO"), ehlo_reply(), Expect(b"MAIL"), reply("250 ok", "250 ok"), Hang()]
    async with HostileServer(script) as server:
        client = client_for(server)
        await client.connect()
        with pytest.raises(SMTPServerDisconnected) as info:
            await client.sendmail("a@example.com", ["b@example.com"], BODY)
        await server.finished()
    assert info.value.message in (UNSOLICITED, "Connection lost")
    assert bytes(server.conn.plain) == b"EHLO client.test\r\nMAIL FROM:<a@example.com>\r\n"


async def test_354_injected_before_data_never_releases_the_body() -> None:
    # The 354 arrives glued to the RCPT reply, before DATA was sent; the real answer to
    # DATA would be 503. The client must not take the early 354 as its go-ahead.
    script = [
        Expect(b"EHLO"),
        ehlo_reply(),
        Expect(b"MAIL"),
        reply("250 ok"),
        Expect(b"RCPT"),
        reply("250 ok", "354 go ahead"),
        Expect(b"DATA"),
        reply("503 5.5.1 bad sequence"),
        Hang(),
    ]
    async with HostileServer(script) as server:
        client = client_for(server)
        await client.connect()
        with pytest.raises(SMTPServerDisconnected) as info:
            await client.sendmail("a@example.com", ["b@example.com"], BODY)
        await server.finished()
    assert info.value.message == UNSOLICITED
    received = bytes(server.conn.plain)
    assert received == (
        b"EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
    )
    assert b"secret" not in received


async def test_503_to_data_followed_by_354_never_releases_the_body() -> None:
    script = [
        Expect(b"EHLO"),
        ehlo_reply(),
        Expect(b"MAIL"),
        reply("250 ok"),
        Expect(b"RCPT"),
        reply("250 ok"),
        Expect(b"DATA"),
        reply("503 5.5.1 bad sequence", "354 go ahead"),
        Hang(),
    ]
    async with HostileServer(script) as server:
        client = client_for(server)
        await client.connect()
        with pytest.raises((SMTPDataError, SMTPServerDisconnected)) as info:
            await client.sendmail("a@example.com", ["b@example.com"], BODY)
        await server.finished()
    if isinstance(info.value, SMTPDataError):
        assert (info.value.code, info.value.message) == (503, "5.5.1 bad sequence")
    received = bytes(server.conn.plain)
    assert received.startswith(
        b"EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
    )
    assert b"secret" not in received
    assert not client.is_connected


async def test_idle_421_closes_and_the_next_command_raises() -> None:
    script = [Expect(b"EHLO"), ehlo_reply(), Send(b"421 4.3.2 shutting down\r\n"), Hang()]
    async with HostileServer(script) as server:
        client = client_for(server)
        await client.connect()
        await client.ehlo()
        await server.conn.eof.wait()  # the client closed the channel on the 421
        assert not client.is_connected
        with pytest.raises(SMTPServerDisconnected):
            await client.noop()
        await server.finished()
    assert bytes(server.conn.plain) == b"EHLO client.test\r\n"


async def test_421_answering_a_command_closes_cleanly() -> None:
    script = [Expect(b"EHLO"), ehlo_reply(), Expect(b"NOOP"), reply("421 4.3.2 bye"), Hang()]
    async with HostileServer(script) as server:
        client = client_for(server)
        await client.connect()
        await client.ehlo()
        with pytest.raises(Exception) as info:
            await client.noop()
        await server.conn.eof.wait()
        with pytest.raises(SMTPServerDisconnected):
            await client.noop()
        await server.finished()
    assert getattr(info.value, "code", None) == 421
    assert not client.is_connected
    assert bytes(server.conn.plain) == b"EHLO client.test\r\nNOOP\r\n"
