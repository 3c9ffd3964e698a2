"""Argument forms and refusals checked on the wire, found missing by mutation testing (#19).

Each test drives the public client against a scripted server on 127.0.0.1 and asserts the
exact bytes the server received and the exact exception raised.
"""

from __future__ import annotations

import pytest

from fastsmtp import SMTP
from fastsmtp.errors import SMTPDataError, SMTPRecipientRefused, SMTPServerDisconnected
from tests.hostile.kit import (
    Expect,
    HostileServer,
    Respond,
    ehlo_reply,
    reply,
)

BODY = b"Subject: refused\r\n\r\nRCPT TO:<smuggled@example.com>\r\nbody line\r\n"


def client_for(server: HostileServer, **kwargs: object) -> SMTP:
    return SMTP(
        hostname="127.0.0.1",
        port=server.port,
        start_tls=False,
        local_hostname="client.test",
        timeout=5.0,
        **kwargs,  # type: ignore[arg-type]
    )


def sent_lines(server: HostileServer) -> list[bytes]:
    return [line for _, line in server.conn.lines]


# --- a refused DATA: SMTPDataError, and not one body byte -----------------------------------


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "lockstep"])
async def test_refused_data_raises_and_sends_no_body(pipelining: bool) -> None:
    if pipelining:
        envelope = [
            Expect(b"EHLO"),
            ehlo_reply("PIPELINING"),
            Expect(b"MAIL FROM:<s@example.com>"),
            Expect(b"RCPT TO:<r@example.com>"),
            Expect(b"DATA"),
            reply("250 ok", "250 ok", "554 5.7.1 no mail from you"),
        ]
    else:
        envelope = [
            Expect(b"EHLO"),
            ehlo_reply(),
            Expect(b"MAIL FROM:<s@example.com>"),
            reply("250 ok"),
            Expect(b"RCPT TO:<r@example.com>"),
            reply("250 ok"),
            Expect(b"DATA"),
            reply("554 5.7.1 no mail from you"),
        ]
    # From here on the server answers whatever comes, as a server in command mode would:
    # a body sent now would be executed line by line.
    async with HostileServer([*envelope, Respond()]) as server:
        async with client_for(server) as client:
            with pytest.raises(SMTPDataError) as info:
                await client.sendmail("s@example.com", ["r@example.com"], BODY)
            assert info.value.args == (554, "5.7.1 no mail from you")
            assert not info.value.outcome_unknown
            assert (await client.noop()).code == 250  # the connection is still in step
        await server.finished()
    lines = sent_lines(server)
    assert lines[-2:] == [b"NOOP\r\n", b"QUIT\r\n"]
    assert b"smuggled" not in server.conn.plain
    assert b"body line" not in server.conn.plain
    assert b"Subject" not in server.conn.plain
    assert server.conn.errors == []


# --- VRFY and EXPN argument forms (RFC 5321 section 3.5.3) ----------------------------------


@pytest.mark.parametrize("verb", ["vrfy", "expn"])
@pytest.mark.parametrize(
    ("argument", "wire"),
    [
        ("alice", b"alice"),
        ("  alice\t", b"alice"),
        ("a.user-name", b"a.user-name"),
        ("a@example.com", b"a@example.com"),
        ("<a@example.com>", b"a@example.com"),
        ("Alice Example <a@example.com>", b"a@example.com"),
        (" <a@example.com> ", b"a@example.com"),
    ],
)
async def test_vrfy_expn_argument_forms(verb: str, argument: str, wire: bytes) -> None:
    async with HostileServer([Expect(b"EHLO"), ehlo_reply(), Respond()]) as server:
        async with client_for(server) as client:
            response = await getattr(client, verb)(argument)
            assert response.code == 250
        await server.finished()
    assert sent_lines(server)[1] == verb.upper().encode() + b" " + wire + b"\r\n"


@pytest.mark.parametrize("verb", ["vrfy", "expn"])
async def test_vrfy_expn_options_follow_the_argument(verb: str) -> None:
    async with HostileServer([Expect(b"EHLO"), ehlo_reply(), Respond()]) as server:
        async with client_for(server) as client:
            await getattr(client, verb)("<a@example.com>", options=["X-ONE", "X-TWO=2"])
        await server.finished()
    assert sent_lines(server)[1] == verb.upper().encode() + b" a@example.com X-ONE X-TWO=2\r\n"


@pytest.mark.parametrize("verb", ["vrfy", "expn"])
@pytest.mark.parametrize(
    "argument",
    [
        "a b@example.com",
        "<a@example.com> SIZE=1",
        "<a@example.com",
        "alice>",
        "<alice",
        "j\u00f6rg",  # non-ASCII without SMTPUTF8
    ],
)
async def test_vrfy_expn_invalid_address_writes_nothing(verb: str, argument: str) -> None:
    async with HostileServer([Expect(b"EHLO"), ehlo_reply(), Respond()]) as server:
        async with client_for(server) as client:
            await client.ehlo()
            with pytest.raises(ValueError):
                await getattr(client, verb)(argument)
            await client.noop()
        await server.finished()
    assert sent_lines(server) == [b"EHLO client.test\r\n", b"NOOP\r\n", b"QUIT\r\n"]


@pytest.mark.parametrize("verb", ["vrfy", "expn"])
@pytest.mark.parametrize("argument", ["a@b@example.com", "a@", ""])
async def test_vrfy_expn_harmless_malformed_argument_goes_out_as_given(
    verb: str, argument: str
) -> None:
    """Issue 12: an argument that cannot inject reaches the server as aiosmtplib sends it."""
    async with HostileServer([Expect(b"EHLO"), ehlo_reply(), Respond()]) as server:
        async with client_for(server) as client:
            await client.ehlo()
            response = await getattr(client, verb)(argument)
            assert response.code == 250
        await server.finished()
    line = f"{verb.upper()} {argument}\r\n".encode()
    assert sent_lines(server) == [b"EHLO client.test\r\n", line, b"QUIT\r\n"]


# --- the null sender and Postmaster through the command builders ---------------------------


@pytest.mark.parametrize("sender", ["", "<>", "  <>  "])
async def test_null_sender_through_mail_and_sendmail(sender: str) -> None:
    async with HostileServer([Expect(b"EHLO"), ehlo_reply(), Respond()]) as server:
        async with client_for(server) as client:
            assert (await client.mail(sender)).code == 250
            await client.rset()
            refused, _ = await client.sendmail(sender, ["r@example.com"], b"bounce\r\n")
            assert refused == {}
        await server.finished()
    lines = sent_lines(server)
    assert lines[1:3] == [b"MAIL FROM:<>\r\n", b"RSET\r\n"]
    assert lines[3:5] == [b"MAIL FROM:<>\r\n", b"RCPT TO:<r@example.com>\r\n"]


@pytest.mark.parametrize("recipient", ["Postmaster", "postmaster", "<POSTMASTER>"])
async def test_postmaster_through_rcpt_and_sendmail(recipient: str) -> None:
    bare = recipient.strip("<>")
    async with HostileServer([Expect(b"EHLO"), ehlo_reply(), Respond()]) as server:
        async with client_for(server) as client:
            await client.mail("s@example.com")
            assert (await client.rcpt(recipient)).code == 250
            await client.rset()
            refused, _ = await client.sendmail("s@example.com", [recipient], b"hi\r\n")
            assert refused == {}
        await server.finished()
    lines = sent_lines(server)
    rcpt = b"RCPT TO:<" + bare.encode() + b">\r\n"
    assert lines[2] == rcpt
    assert lines[4:6] == [b"MAIL FROM:<s@example.com>\r\n", rcpt]


@pytest.mark.parametrize(
    ("call", "argument"),
    [("mail", "Postmaster"), ("rcpt", ""), ("rcpt", "<>")],
)
async def test_null_recipient_and_postmaster_sender_write_nothing(call: str, argument: str) -> None:
    async with HostileServer([Expect(b"EHLO"), ehlo_reply(), Respond()]) as server:
        async with client_for(server) as client:
            await client.ehlo()
            if call == "rcpt":
                await client.mail("s@example.com")
            with pytest.raises(ValueError):
                await getattr(client, call)(argument)
        await server.finished()
    assert not [line for line in sent_lines(server) if b"Postmaster" in line or b"<>" in line]


# --- a 421 mid-transaction names the failure as lockstep does --------------------------------


async def test_421_to_data_then_the_error_is_exactly_server_disconnected() -> None:
    script = [
        Expect(b"EHLO"),
        ehlo_reply("PIPELINING"),
        Expect(b"MAIL"),
        Expect(b"RCPT"),
        Expect(b"DATA"),
        reply("250 ok", "250 ok", "421 4.3.2 shutting down"),
    ]
    async with HostileServer(script) as server:
        client = client_for(server)
        await client.connect()
        with pytest.raises(SMTPDataError) as info:
            await client.sendmail("s@example.com", ["r@example.com"], BODY)
        assert info.value.args == (421, "4.3.2 shutting down")
        with pytest.raises(SMTPServerDisconnected) as gone:
            await client.noop()
        assert str(gone.value) == "Server not connected"
        client.close()
    assert b"smuggled" not in server.conn.plain


async def test_421_to_the_last_rcpt_then_data_by_hand() -> None:
    script = [
        Expect(b"EHLO"),
        ehlo_reply(),
        Expect(b"MAIL"),
        reply("250 ok"),
        Expect(b"RCPT"),
        reply("250 ok"),
        Expect(b"RCPT"),
        reply("421 4.3.2 shutting down"),
    ]
    async with HostileServer(script) as server:
        client = client_for(server)
        await client.connect()
        await client.mail("s@example.com")
        await client.rcpt("a@example.com")
        with pytest.raises(SMTPRecipientRefused) as refused:
            await client.rcpt("b@example.com")
        assert refused.value.args == (421, "4.3.2 shutting down", "b@example.com")
        # As a lockstep client finds it: DATA after the 421 meets a lost connection.
        with pytest.raises(SMTPServerDisconnected) as gone:
            await client.data(BODY)
        assert str(gone.value) == "Connection lost"
        client.close()
    assert b"DATA" not in server.conn.plain
