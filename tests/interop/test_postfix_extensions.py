"""Issue 16 against a real Postfix: a typed DSN comes back as Postfix's delivery status
notification (RFC 3464) carrying the ENVID and ORCPT fastsmtp encoded; SIZE is checked
before MAIL on the small-limit port; without SMTPUTF8 an IDNA domain is what Postfix sees."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from fastsmtp import DSN, SMTP, DSNRecipient, SMTPNotSupported
from fastsmtp.errors import SMTPSizeRefusedLocally

from .kit import Maildir, wait_session_summary
from .servers import MailServers


def client(servers: MailServers, **kwargs: object) -> SMTP:
    """A client for the STARTTLS port, verified against the test CA, logged in."""
    options: dict[str, object] = {
        "hostname": servers.hostname,
        "port": servers.starttls_port,
        "tls_context": servers.tls_context(),
        "username": servers.username,
        "password": servers.password,
        "timeout": 30,
    }
    options.update(kwargs)
    return SMTP(**options)  # type: ignore[arg-type]


def raw(sender: str, subject: str, body: bytes = b"Hello from fastsmtp.\r\n") -> bytes:
    return (
        f"From: <{sender}>\r\nTo: undisclosed-recipients:;\r\nSubject: {subject}\r\n"
        f"Message-ID: {make_msgid(domain='example.test')}\r\n\r\n"
    ).encode() + body


async def test_dsn_success_notification_carries_envid_and_orcpt(
    mail_servers: MailServers, inbox: Maildir
) -> None:
    """NOTIFY=SUCCESS: Postfix sends the sender a success DSN whose fields are the decoded
    ENVID and ORCPT (xtext on the wire: "+" and "=" encoded). The second recipient asked
    for NEVER and gets no notification of its own."""
    sender = "dsn-sender@example.test"
    dsn = DSN(
        envid="fastsmtp+envid=1",
        notify={"SUCCESS"},
        orcpt=True,
        recipients={"dsn-quiet@example.test": DSNRecipient(notify="NEVER")},
    )
    async with client(mail_servers) as smtp:
        await smtp.ehlo()
        assert smtp.supports_extension("dsn")
        refused, _ = await smtp.sendmail(
            sender,
            ["dsn-rcpt+tag@example.test", "dsn-quiet@example.test"],
            raw(sender, "dsn"),
            dsn=dsn,
        )
    assert refused == {}
    await inbox.wait_for(["dsn-rcpt+tag@example.test", "dsn-quiet@example.test"])
    [report] = await inbox.wait_for([sender])
    text = report.content.decode("utf-8", "replace")
    assert report.return_path == "<>"  # a notification (RFC 3461 section 6.1)
    assert re.search(r"^Original-Envelope-Id: fastsmtp\+envid=1$", text, re.MULTILINE)
    assert re.search(
        r"^Original-Recipient: rfc822; ?dsn-rcpt\+tag@example\.test$", text, re.MULTILINE
    )
    assert re.search(r"^Action: delivered", text, re.MULTILINE)
    assert "dsn-quiet@example.test" not in text


@pytest.mark.parametrize("ret", ["HDRS", "FULL"])
async def test_dsn_failure_returns_what_ret_asked_for(
    mail_servers: MailServers, inbox: Maildir, ret: str
) -> None:
    """A recipient Postfix accepts and then bounces (servers.py: FILTER error:) brings
    the sender a failure DSN: RET=HDRS returns the headers only, RET=FULL the whole
    message (RFC 3461 section 4.3)."""
    sender = f"dsn-bounce-{ret.lower()}@example.test"
    body = b"The body comes back only with RET=FULL.\r\n"
    async with client(mail_servers) as smtp:
        await smtp.sendmail(
            sender,
            [mail_servers.bounced],
            raw(sender, f"dsn {ret}", body),
            dsn=DSN(ret=ret, notify={"FAILURE"}, envid=f"bounce-{ret}"),  # type: ignore[arg-type]
        )
    [report] = await inbox.wait_for([sender])
    text = report.content.decode("utf-8", "replace")
    assert report.return_path == "<>"
    assert re.search(rf"^Original-Envelope-Id: bounce-{ret}$", text, re.MULTILINE)
    assert re.search(r"^Action: failed", text, re.MULTILINE)
    if ret == "HDRS":
        assert "text/rfc822-headers" in text
        assert "The body comes back" not in text
    else:
        assert "message/rfc822" in text
        assert "The body comes back only with RET=FULL." in text


async def test_size_refused_before_mail(mail_servers: MailServers) -> None:
    """The small-limit port advertises SIZE n: a larger message (bytes, or a stream with
    size=) is refused by fastsmtp, and Postfix logs no MAIL for the session."""
    limit = mail_servers.small_size_limit
    big = raw("size@example.test", "too big", b"x" * (limit + 1))

    async def stream() -> AsyncIterator[bytes]:
        yield big

    async with client(mail_servers, port=mail_servers.small_port) as smtp:
        await smtp.ehlo()
        port = smtp.get_transport_info("sockname")[1]
        with pytest.raises(SMTPSizeRefusedLocally) as refused:
            await smtp.sendmail("size@example.test", ["size@example.test"], big)
        assert refused.value.code == 552
        with pytest.raises(SMTPSizeRefusedLocally):
            await smtp.sendmail("size@example.test", ["size@example.test"], stream(), size=len(big))
        await smtp.noop()
    summary = await wait_session_summary(mail_servers, port)
    assert "mail=" not in summary


async def test_idna_domain_without_smtputf8(mail_servers: MailServers, inbox: Maildir) -> None:
    """Postfix offers SMTPUTF8; with smtputf8=False the non-ASCII domain of the sender
    goes as A-labels (what Postfix records in Return-Path), and a non-ASCII local part is
    refused before MAIL."""
    message = EmailMessage()
    message["From"] = "Zo\u00eb <zoe@b\u00fccher.example>"
    message["To"] = "idna@example.test"
    message["Subject"] = "idna"
    message.set_content("IDNA in the envelope.")
    async with client(mail_servers) as smtp:
        await smtp.send_message(message, smtputf8=False)
        del message["To"]
        message["To"] = "j\u00f6rg@example.test"
        with pytest.raises(SMTPNotSupported, match="smtputf8=False"):
            await smtp.send_message(message, smtputf8=False)
    [delivered] = await inbox.wait_for(["idna@example.test"])
    assert delivered.return_path == "<zoe@xn--bcher-kva.example>"
