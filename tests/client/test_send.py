"""Mail transactions: ``send()``, ``sendmail()``, ``send_message()`` and their envelope rules."""

from __future__ import annotations

import asyncio
import email.message
from email.message import EmailMessage

import pytest

import fastsmtp
from fastsmtp import (
    SMTP,
    SMTPDataError,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponse,
    SMTPSenderRefused,
)
from tests._servers import RecordingServer
from tests.client.conftest import SmtpdFactory

RAW = "Subject: raw\r\n\r\nraw body\r\n"


def client_for(server: RecordingServer, **kwargs: object) -> SMTP:
    kwargs.setdefault("timeout", 5)
    return SMTP(hostname=server.host, port=server.port, **kwargs)  # type: ignore[arg-type]


def server_kwargs(server: RecordingServer) -> dict[str, object]:
    return {"hostname": server.host, "port": server.port, "timeout": 5}


def make_message(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Hello from the test suite.\n")
    return msg


def header_block(content: bytes) -> bytes:
    return content.split(b"\r\n\r\n", 1)[0] + b"\r\n"


# --- send() ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [RAW, RAW.encode()], ids=["str", "bytes"])
async def test_send_raw(smtpd: RecordingServer, body: str | bytes) -> None:
    errors, text = await fastsmtp.send(
        body, sender="a@example.com", recipients=["b@example.com"], **server_kwargs(smtpd)
    )
    assert errors == {}
    assert text == "2.0.0 Message accepted for delivery"
    (msg,) = smtpd.messages
    assert (msg.mail_from, msg.rcpt_tos) == ("a@example.com", ["b@example.com"])
    assert msg.content == RAW.encode()
    assert smtpd.verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


async def test_send_raw_single_recipient_string(smtpd: RecordingServer) -> None:
    await fastsmtp.send(
        RAW, sender="a@example.com", recipients="b@example.com", **server_kwargs(smtpd)
    )
    assert smtpd.messages[0].rcpt_tos == ["b@example.com"]


@pytest.mark.parametrize("recipients", [None, [], ""])
async def test_send_raw_needs_recipients_before_connecting(
    smtpd: RecordingServer, recipients: list[str] | str | None
) -> None:
    with pytest.raises(ValueError) as info:
        await fastsmtp.send(RAW, sender=None, recipients=recipients, **server_kwargs(smtpd))
    assert info.value.args == ("Recipients must be provided with raw messages.",)
    assert smtpd.connections == []


@pytest.mark.parametrize("sender", [None, ""])
async def test_send_raw_needs_sender_before_connecting(
    smtpd: RecordingServer, sender: str | None
) -> None:
    with pytest.raises(ValueError):
        await fastsmtp.send(
            RAW.encode(), sender=sender, recipients=["b@example.com"], **server_kwargs(smtpd)
        )
    assert smtpd.connections == []


async def test_send_email_message(smtpd: RecordingServer) -> None:
    msg = make_message(
        From="Alice <alice@example.com>",
        To="Bob <bob@example.com>, carol@example.com",
        Cc="dave@example.com",
        Bcc="eve@example.com",
        Subject="Greetings",
    )
    errors, _ = await fastsmtp.send(msg, **server_kwargs(smtpd))
    assert errors == {}
    (got,) = smtpd.messages
    assert got.mail_from == "alice@example.com"
    assert got.rcpt_tos == [
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
        "eve@example.com",
    ]
    headers = header_block(got.content)
    assert b"\r\nSubject: Greetings\r\n" in headers
    assert b"Bcc" not in headers
    assert b"eve@example.com" not in got.content
    assert b"Hello from the test suite.\r\n" in got.content
    # the caller's message is not modified
    assert msg["Bcc"] == "eve@example.com"


async def test_send_legacy_message(smtpd: RecordingServer) -> None:
    msg = email.message.Message()
    msg["From"] = "alice@example.com"
    msg["To"] = "bob@example.com"
    msg["Bcc"] = "hidden@example.com"
    msg["Subject"] = "legacy"
    msg.set_payload("line one\nline two\n")
    await fastsmtp.send(msg, **server_kwargs(smtpd))
    (got,) = smtpd.messages
    assert got.mail_from == "alice@example.com"
    assert got.rcpt_tos == ["bob@example.com", "hidden@example.com"]
    assert b"Subject: legacy\r\n" in got.content
    assert got.content.endswith(b"\r\n\r\nline one\r\nline two\r\n")
    assert b"hidden@example.com" not in got.content
    assert b"\n" not in got.content.replace(b"\r\n", b"")


async def test_send_message_overrides_sender_and_recipients(smtpd: RecordingServer) -> None:
    msg = make_message(From="alice@example.com", To="bob@example.com", Bcc="eve@example.com")
    await fastsmtp.send(
        msg, sender="bounce@example.com", recipients="only@example.com", **server_kwargs(smtpd)
    )
    (got,) = smtpd.messages
    assert got.mail_from == "bounce@example.com"
    assert got.rcpt_tos == ["only@example.com"]
    assert b"Bcc" not in header_block(got.content)
    assert b"To: bob@example.com\r\n" in got.content


async def test_send_message_sender_header_preferred(smtpd: RecordingServer) -> None:
    msg = make_message(From="alice@example.com", Sender="agent@example.com", To="b@example.com")
    async with client_for(smtpd) as client:
        await client.send_message(msg)
    assert smtpd.messages[0].mail_from == "agent@example.com"


async def test_send_message_without_from(smtpd: RecordingServer) -> None:
    msg = make_message(To="bob@example.com")
    async with client_for(smtpd) as client:
        with pytest.raises(ValueError) as info:
            await client.send_message(msg)
    assert info.value.args == ("No From header provided in message",)
    assert "MAIL" not in smtpd.verbs


async def test_send_message_without_recipients(smtpd: RecordingServer) -> None:
    msg = make_message(From="alice@example.com")
    async with client_for(smtpd) as client:
        with pytest.raises(ValueError) as info:
            await client.send_message(msg)
    assert info.value.args == ("No recipient headers provided in message",)
    assert "MAIL" not in smtpd.verbs


async def test_resent_headers(smtpd: RecordingServer) -> None:
    msg = make_message(From="alice@example.com", To="bob@example.com", Subject="fwd")
    msg["Resent-Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    msg["Resent-From"] = "forwarder@example.com"
    msg["Resent-To"] = "new@example.com"
    msg["Resent-Cc"] = "copy@example.com"
    msg["Resent-Bcc"] = "secret@example.com"
    async with client_for(smtpd) as client:
        await client.send_message(msg)
    (got,) = smtpd.messages
    assert got.mail_from == "forwarder@example.com"
    assert got.rcpt_tos == ["new@example.com", "copy@example.com", "secret@example.com"]
    headers = header_block(got.content)
    assert b"Resent-Bcc" not in headers
    assert b"secret@example.com" not in got.content
    assert b"Resent-To: new@example.com\r\n" in headers


async def test_multiple_resent_date_is_rejected(smtpd: RecordingServer) -> None:
    msg = make_message(From="alice@example.com", To="bob@example.com")
    msg["Resent-Date"] = "Mon, 02 Mar 2026 10:00:00 +0000"
    msg["Resent-From"] = "first@example.com"
    msg["Resent-Date"] = "Tue, 03 Mar 2026 10:00:00 +0000"
    async with client_for(smtpd) as client:
        with pytest.raises(ValueError):
            await client.send_message(msg)
    assert "MAIL" not in smtpd.verbs
    assert smtpd.messages == []


# --- refusals ----------------------------------------------------------------------------


async def test_sender_refused(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(refuse_senders={"bad@example.com": "550 5.7.1 Go away"})
    with pytest.raises(SMTPSenderRefused) as info:
        await fastsmtp.send(
            RAW, sender="bad@example.com", recipients=["b@example.com"], **server_kwargs(server)
        )
    assert info.value.args == (550, "5.7.1 Go away", "bad@example.com")
    assert info.value.sender == "bad@example.com"
    assert server.verbs == ["EHLO", "MAIL", "RSET", "QUIT"]


async def test_some_recipients_refused(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(refuse_recipients={"no@example.com": "550 5.1.1 Unknown user"})
    errors, text = await fastsmtp.send(
        RAW,
        sender="a@example.com",
        recipients=["yes@example.com", "no@example.com", "also@example.com"],
        **server_kwargs(server),
    )
    assert errors == {"no@example.com": SMTPResponse(550, "5.1.1 Unknown user")}
    assert text == "2.0.0 Message accepted for delivery"
    (got,) = server.messages
    assert got.rcpt_tos == ["yes@example.com", "also@example.com"]
    assert server.verbs == ["EHLO", "MAIL", "RCPT", "RCPT", "RCPT", "DATA", "QUIT"]


async def test_all_recipients_refused(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(
        refuse_recipients={
            "x@example.com": "550 5.1.1 No x",
            "y@example.com": "451 4.3.0 Try y later",
        }
    )
    async with client_for(server) as client:
        with pytest.raises(SMTPRecipientsRefused) as info:
            await client.sendmail("a@example.com", ["x@example.com", "y@example.com"], RAW)
        assert client.is_connected
    refused = info.value.recipients
    assert all(isinstance(r, SMTPRecipientRefused) for r in refused)
    assert [r.args for r in refused] == [
        (550, "5.1.1 No x", "x@example.com"),
        (451, "4.3.0 Try y later", "y@example.com"),
    ]
    assert info.value.args == (refused,)
    assert server.verbs == ["EHLO", "MAIL", "RCPT", "RCPT", "RSET", "QUIT"]
    assert server.messages == []


async def test_empty_recipient_list(smtpd: RecordingServer) -> None:
    async with client_for(smtpd) as client:
        with pytest.raises(SMTPRecipientsRefused) as info:
            await client.sendmail("a@example.com", [], RAW)
    assert info.value.recipients == []
    assert "DATA" not in smtpd.verbs
    assert "RCPT" not in smtpd.verbs
    assert smtpd.messages == []


async def test_data_refused_sends_rset(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(data_reply="554 5.7.1 Spam")
    async with client_for(server) as client:
        with pytest.raises(SMTPDataError) as info:
            await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert info.value.args == (554, "5.7.1 Spam")
    assert server.verbs == ["EHLO", "MAIL", "RCPT", "DATA", "RSET", "QUIT"]


async def test_second_transaction_after_refusal(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(refuse_senders={"bad@example.com": "553 5.1.8 Bad sender"})
    async with client_for(server) as client:
        with pytest.raises(SMTPSenderRefused):
            await client.sendmail("bad@example.com", ["b@example.com"], RAW)
        await client.sendmail("good@example.com", ["b@example.com"], RAW)
    assert [m.mail_from for m in server.messages] == ["good@example.com"]


# --- options, SIZE, 8BITMIME, SMTPUTF8 --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"abc", len(b"abc\r\n")),
        (b"a\nb\rc\r\n", len(b"a\r\nb\r\nc\r\n")),
        (b".dot\n..two\n", len(b".dot\r\n..two\r\n")),
        ("plain str\n", len(b"plain str\r\n")),
    ],
)
async def test_size_option(smtpd: RecordingServer, body: str | bytes, expected: int) -> None:
    async with client_for(smtpd) as client:
        await client.sendmail("a@example.com", ["b@example.com"], body)
    (got,) = smtpd.messages
    assert len(got.mail_options) == 1
    assert got.mail_options[0].lower() == f"size={expected}"


async def test_size_first_then_user_options(smtpd: RecordingServer) -> None:
    async with client_for(smtpd) as client:
        await client.sendmail(
            "a@example.com",
            ["b@example.com", "c@example.com"],
            b"x",
            mail_options=["RET=HDRS", "ENVID=e1"],
            rcpt_options=["NOTIFY=NEVER"],
        )
    (got,) = smtpd.messages
    assert [o.lower() for o in got.mail_options] == ["size=3", "ret=hdrs", "envid=e1"]
    assert got.mail_options[1:] == ["RET=HDRS", "ENVID=e1"]
    assert got.rcpt_options == [["NOTIFY=NEVER"], ["NOTIFY=NEVER"]]


async def test_no_size_when_not_advertised(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(size=None)
    async with client_for(server) as client:
        assert not client.supports_extension("size") or client.is_ehlo_or_helo_needed
        await client.sendmail("a@example.com", ["b@example.com"], b"x")
    assert server.messages[0].mail_options == []


async def test_sendmail_never_adds_body_8bitmime(smtpd: RecordingServer) -> None:
    async with client_for(smtpd) as client:
        await client.sendmail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\ny")
        assert client.supports_extension("8bitmime")
    options = [o.upper() for o in smtpd.messages[0].mail_options]
    assert not any(o.startswith("BODY") for o in options)


async def test_send_message_adds_body_8bitmime(smtpd: RecordingServer) -> None:
    msg = make_message(From="a@example.com", To="b@example.com", Subject="8bit")
    msg.set_content("Grüße aus dem Testlabor\n", cte="8bit")
    async with client_for(smtpd) as client:
        await client.send_message(msg, mail_options=["RET=FULL"])
    (got,) = smtpd.messages
    assert [o.upper() for o in got.mail_options[1:]] == ["RET=FULL", "BODY=8BITMIME"]
    assert got.mail_options[0].lower().startswith("size=")
    assert got.mail_options[0].lower() == f"size={len(got.content)}"
    assert "Grüße".encode() in got.content


async def test_send_message_without_8bitmime_uses_7bit(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(eightbitmime=False)
    msg = make_message(From="a@example.com", To="b@example.com", Subject="7bit")
    msg.set_content("Grüße aus dem Testlabor\n", cte="8bit")
    async with client_for(server) as client:
        await client.send_message(msg)
    (got,) = server.messages
    assert not any(o.upper().startswith("BODY") for o in got.mail_options)
    assert all(b < 0x80 for b in got.content)
    assert b"Content-Transfer-Encoding: 8bit" not in got.content


async def test_send_message_utf8_addresses(smtpd: RecordingServer) -> None:
    msg = make_message(From="jörg@bücher.example", To="zoë@example.com", Subject="utf8")
    async with client_for(smtpd) as client:
        await client.send_message(msg)
    (got,) = smtpd.messages
    assert got.mail_from == "jörg@bücher.example"
    assert got.rcpt_tos == ["zoë@example.com"]
    assert [o.upper() for o in got.mail_options[1:]] == ["SMTPUTF8", "BODY=8BITMIME"]
    assert "From: jörg@bücher.example".encode() in got.content
    assert "MAIL FROM:<jörg@bücher.example>".encode() in bytes(smtpd.connections[0].raw)


async def test_send_message_utf8_not_advertised(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(smtputf8=False)
    msg = make_message(From="jörg@bücher.example", To="b@example.com")
    async with client_for(server) as client:
        with pytest.raises(SMTPNotSupported) as info:
            await client.send_message(msg)
    # the contract fixes the type; 5.1.3's text here is longer than sendmail's
    assert "SMTPUTF8 is not supported by this server" in info.value.message
    assert "MAIL" not in server.verbs


async def test_sendmail_smtputf8_option(smtpd: RecordingServer) -> None:
    async with client_for(smtpd) as client:
        await client.sendmail(
            "zoë@example.com", ["ünï@example.com"], b"body", mail_options=["SMTPUTF8"]
        )
    (got,) = smtpd.messages
    assert got.mail_from == "zoë@example.com"
    assert got.rcpt_tos == ["ünï@example.com"]


async def test_sendmail_smtputf8_option_not_advertised(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(smtputf8=False)
    async with client_for(server) as client:
        with pytest.raises(SMTPNotSupported) as info:
            await client.sendmail(
                "a@example.com", ["b@example.com"], b"body", mail_options=["smtputf8"]
            )
    assert info.value.args == ("SMTPUTF8 is not supported by this server",)
    assert "MAIL" not in server.verbs


async def test_sendmail_non_ascii_address_without_smtputf8(smtpd: RecordingServer) -> None:
    async with client_for(smtpd) as client:
        with pytest.raises(ValueError):  # UnicodeEncodeError is a ValueError
            await client.sendmail("zoë@example.com", ["b@example.com"], b"body")
    raw = bytes(smtpd.connections[0].raw)
    assert "zoë".encode() not in raw
    assert smtpd.messages == []


async def test_sendmail_non_ascii_str_body(smtpd: RecordingServer) -> None:
    async with client_for(smtpd) as client:
        with pytest.raises(UnicodeEncodeError):
            await client.sendmail("a@example.com", ["b@example.com"], "Subject: café\r\n\r\n")
    assert smtpd.messages == []


async def test_concurrent_sendmail_on_one_client(smtpd: RecordingServer) -> None:
    async with client_for(smtpd) as client:
        results = await asyncio.gather(
            *(
                client.sendmail(f"s{i}@example.com", [f"r{i}@example.com"], f"Subject: {i}\n\n")
                for i in range(5)
            )
        )
    assert all(errors == {} for errors, _ in results)
    got = sorted((m.mail_from, tuple(m.rcpt_tos)) for m in smtpd.messages)
    assert got == [(f"s{i}@example.com", (f"r{i}@example.com",)) for i in range(5)]
    for m in smtpd.messages:
        n = m.mail_from[1]
        assert m.content == f"Subject: {n}\r\n\r\n".encode()
