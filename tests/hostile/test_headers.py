"""security.md §9: header injection. ``send_message`` refuses (ValueError) a message with a
header line that is neither ``Name: value`` nor a folded continuation, before MAIL is sent.

Modern ``EmailMessage`` refuses CR/LF in ``msg[...] = ...`` and in ``Address`` itself on
current Pythons, so injection reaches it through ``set_raw`` (public API) and parsed
headers; the compat32 ``Message`` API accepts anything and is tested directly.
"""

from __future__ import annotations

import email.header
from email.message import EmailMessage, Message

import pytest

from fastsmtp import SMTP
from tests.hostile.kit import Expect, ExpectData, Hang, HostileServer, ehlo_reply, reply

BREAKS = ["\r\n", "\n", "\r\n\r\n", "\r"]
INJECTED = "Bcc: victim@example.com"


def modern(name: str, value: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@example.com"
    msg["To"] = "bob@example.com"
    msg.set_content("hello")
    if name == "Subject":
        msg.set_raw("Subject", value)
    else:
        del msg[name]
        msg.set_raw(name, value)
    return msg


def legacy(name: str, value: str | email.header.Header) -> Message:
    msg = Message()
    msg["From"] = "alice@example.com"
    msg["To"] = "bob@example.com"
    if name != "Subject":
        del msg[name]
    msg[name] = value
    msg.set_payload("hello")
    return msg


def cases() -> list[tuple[str, Message]]:
    out: list[tuple[str, Message]] = []
    for brk in BREAKS:
        label = repr(brk)[1:-1]
        subject = f"hello{brk}{INJECTED}"
        display = f'"Eve{brk}{INJECTED}" <alice@example.com>'
        out += [
            (f"EmailMessage-subject-{label}", modern("Subject", subject)),
            (f"EmailMessage-display-name-{label}", modern("From", display)),
            (f"Message-subject-{label}", legacy("Subject", subject)),
            (f"Message-display-name-{label}", legacy("From", display)),
            (f"Message-Header-subject-{label}", legacy("Subject", email.header.Header(subject))),
            (f"Message-trailing-break-{label}", legacy("Subject", f"hello{brk}")),
        ]
    return out


CASES = cases()


@pytest.mark.parametrize("message", [pytest.param(m, id=n) for n, m in CASES])
async def test_header_injection_is_refused_before_mail(message: Message) -> None:
    async with HostileServer([Hang()]) as server:
        client = SMTP(
            hostname="127.0.0.1",
            port=server.port,
            start_tls=False,
            local_hostname="client.test",
            timeout=3,
        )
        await client.connect()
        with pytest.raises(ValueError) as info:
            await client.send_message(message)
        assert client.is_connected  # refused at the edge: the session is intact
        client.close()
        await server.finished()
    assert "line break" in str(info.value) or "header injection" in str(info.value)
    assert bytes(server.conn.plain) == b""  # not even EHLO, let alone MAIL


def test_modern_api_refuses_line_breaks_itself() -> None:
    from email.headerregistry import Address

    msg = EmailMessage()
    for brk in BREAKS:
        with pytest.raises(ValueError):
            msg["Subject"] = f"hello{brk}{INJECTED}"
        with pytest.raises(ValueError):
            Address(display_name=f"Eve{brk}{INJECTED}", addr_spec="e@example.com")


async def test_folded_headers_are_accepted() -> None:
    msg = Message()
    msg["From"] = "alice@example.com"
    msg["To"] = "bob@example.com"
    msg["Subject"] = "a long subject\r\n folded properly"
    msg.set_payload("hello")
    script = [
        Expect(b"EHLO"),
        ehlo_reply(),
        Expect(b"MAIL"),
        reply("250 ok"),
        Expect(b"RCPT"),
        reply("250 ok"),
        Expect(b"DATA"),
        reply("354 go"),
        ExpectData(),
        reply("250 ok"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with HostileServer(script) as server:
        async with SMTP(
            hostname="127.0.0.1", port=server.port, start_tls=False, local_hostname="c.test"
        ) as client:
            await client.send_message(msg)
        await server.finished()
    assert server.conn.errors == []
    assert b"Subject: a long subject\r\n folded properly\r\n" in server.conn.messages[0]
