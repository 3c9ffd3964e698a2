"""security.md §10: nothing lost, nothing doubled.

Refused recipients are always reported; a message counts as sent only after the final 250;
a timeout or disconnect after the body and before the final reply is "outcome unknown" and
is never retried. The flag is ``outcome_unknown`` on the exception raised by
``data()``/``sendmail()``/``send_message()``: True exactly when the whole body was written
and no final reply was read.
"""

from __future__ import annotations

import pytest

from fastsmtp import SMTP
from fastsmtp.errors import (
    SMTPDataError,
    SMTPReadTimeoutError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from fastsmtp.response import SMTPResponse
from tests.hostile.kit import (
    Expect,
    ExpectData,
    Hang,
    HostileServer,
    abort,
    ehlo_reply,
    reply,
)

ENVELOPE = [Expect(b"EHLO"), ehlo_reply(), Expect(b"MAIL"), reply("250 ok")]
UP_TO_BODY = [
    *ENVELOPE,
    Expect(b"RCPT"),
    reply("250 ok"),
    Expect(b"DATA"),
    reply("354 go ahead"),
    ExpectData(),
]


def client_for(server: HostileServer, timeout: float = 3.0) -> SMTP:
    return SMTP(
        hostname="127.0.0.1",
        port=server.port,
        start_tls=False,
        local_hostname="client.test",
        timeout=timeout,
    )


async def test_refused_recipients_are_reported() -> None:
    script = [
        *ENVELOPE,
        Expect(b"RCPT TO:<a@example.com>"),
        reply("250 ok"),
        Expect(b"RCPT TO:<b@example.com>"),
        reply("550 5.1.1 no such user"),
        Expect(b"RCPT TO:<c@example.com>"),
        reply("251 will forward"),
        Expect(b"RCPT TO:<d@example.com>"),
        reply("452 4.2.2 mailbox full"),
        Expect(b"DATA"),
        reply("354 go ahead"),
        ExpectData(),
        reply("250 2.0.0 queued as 42"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with HostileServer(script) as server:
        async with client_for(server) as client:
            refused, message = await client.sendmail(
                "s@example.com",
                ["a@example.com", "b@example.com", "c@example.com", "d@example.com"],
                b"hello\r\n",
            )
        await server.finished()
    assert refused == {
        "b@example.com": SMTPResponse(550, "5.1.1 no such user"),
        "d@example.com": SMTPResponse(452, "4.2.2 mailbox full"),
    }
    assert message == "2.0.0 queued as 42"
    assert server.conn.errors == []


async def test_all_recipients_refused_reports_each_and_sends_no_data() -> None:
    script = [
        *ENVELOPE,
        Expect(b"RCPT"),
        reply("550 5.1.1 nope"),
        Expect(b"RCPT"),
        reply("451 4.3.0 later"),
        Expect(b"RSET"),
        reply("250 ok"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with HostileServer(script) as server:
        async with client_for(server) as client:
            with pytest.raises(SMTPRecipientsRefused) as info:
                await client.sendmail("s@example.com", ["a@example.com", "b@example.com"], b"x")
        await server.finished()
    assert [(e.code, e.message, e.recipient) for e in info.value.recipients] == [
        (550, "5.1.1 nope", "a@example.com"),
        (451, "4.3.0 later", "b@example.com"),
    ]
    assert b"DATA" not in bytes(server.conn.plain)
    assert server.conn.errors == []


async def test_message_counts_as_sent_only_after_the_final_250() -> None:
    script = [*UP_TO_BODY, reply("451 4.3.0 try later"), Expect(b"RSET"), reply("250 ok")]
    async with HostileServer(script) as server:
        client = client_for(server)
        await client.connect()
        with pytest.raises(SMTPDataError) as info:
            await client.sendmail("s@example.com", ["a@example.com"], b"hello\r\n")
        client.close()
        await server.finished()
    assert (info.value.code, info.value.message) == (451, "4.3.0 try later")
    assert server.conn.messages == [b"hello"]


async def _timeout_after_body() -> tuple[BaseException, HostileServer]:
    async with HostileServer([*UP_TO_BODY, Hang()]) as server:
        client = client_for(server, timeout=0.5)
        await client.connect()
        with pytest.raises(SMTPReadTimeoutError) as info:
            await client.sendmail("s@example.com", ["a@example.com"], b"hello\r\n")
        await server.finished()
    return info.value, server


async def _disconnect_after_body() -> tuple[BaseException, HostileServer]:
    async with HostileServer([*UP_TO_BODY, abort()]) as server:
        client = client_for(server)
        await client.connect()
        with pytest.raises(SMTPServerDisconnected) as info:
            await client.sendmail("s@example.com", ["a@example.com"], b"hello\r\n")
        await server.finished()
    return info.value, server


async def test_timeout_after_the_body_is_raised_and_never_retried() -> None:
    error, server = await _timeout_after_body()
    assert str(error) == "Timed out waiting for server response"
    assert len(server.connections) == 1
    assert server.conn.messages == [b"hello"]
    assert bytes(server.conn.plain).endswith(b"DATA\r\nhello\r\n.\r\n")  # nothing after


async def test_disconnect_after_the_body_is_raised_and_never_retried() -> None:
    error, server = await _disconnect_after_body()
    assert isinstance(error, SMTPServerDisconnected)
    assert len(server.connections) == 1
    assert server.conn.messages == [b"hello"]


async def test_timeout_after_the_body_is_outcome_unknown() -> None:
    error, _ = await _timeout_after_body()
    assert getattr(error, "outcome_unknown", None) is True


async def test_disconnect_after_the_body_is_outcome_unknown() -> None:
    error, _ = await _disconnect_after_body()
    assert getattr(error, "outcome_unknown", None) is True


async def test_data_timeout_after_the_body_is_outcome_unknown() -> None:
    async with HostileServer([*UP_TO_BODY, Hang()]) as server:
        client = client_for(server, timeout=0.5)
        await client.connect()
        await client.mail("s@example.com")
        await client.rcpt("a@example.com")
        with pytest.raises(SMTPReadTimeoutError) as info:
            await client.data(b"hello\r\n")
        await server.finished()
    assert getattr(info.value, "outcome_unknown", None) is True


async def test_timeout_before_the_body_is_not_outcome_unknown() -> None:
    # The server never answers RCPT: the message was certainly not accepted.
    async with HostileServer([*ENVELOPE, Expect(b"RCPT"), Hang()]) as server:
        client = client_for(server, timeout=0.5)
        await client.connect()
        with pytest.raises(SMTPReadTimeoutError) as info:
            await client.sendmail("s@example.com", ["a@example.com"], b"hello\r\n")
        await server.finished()
    assert getattr(info.value, "outcome_unknown", False) is False
    assert b"DATA" not in bytes(server.conn.plain)


async def test_malformed_final_reply_is_outcome_unknown() -> None:
    # A garbled answer to the end of data says nothing about the message either.
    script = [*UP_TO_BODY, reply("2x0 garbled"), Hang()]
    async with HostileServer(script) as server:
        client = client_for(server, 2.0)
        await client.connect()
        with pytest.raises(SMTPResponseException) as raised:
            await client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nbody\r\n")
    assert raised.value.code == -1
    assert raised.value.outcome_unknown is True
    assert not client.is_connected
