"""fastsmtp against a real Postfix (SASL by Dovecot), checked in the delivered Maildir.

Each test uses its own recipients (the session's Postfix delivers every ``example.test``
address to one Maildir; Delivered-To tells the deliveries apart) and compares what was
delivered, after the trace fields, with what was sent, byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from email.utils import make_msgid

import pytest

import fastsmtp
from fastsmtp import SMTP, SMTPPool
from tests.client.test_one_write import record_writes

from .kit import Maildir, expected_bytes, wait_session_summary, wait_until
from .servers import MailServers, find_free_ports

SENDER = "sender@example.test"
CONNECT = re.compile(r"/smtpd\[\d+\]: connect from ", re.MULTILINE)
DISCONNECT = re.compile(r"/smtpd\[\d+\]: disconnect from ", re.MULTILINE)


def raw_message(subject: str, body: bytes = b"Hello from fastsmtp.\r\n") -> bytes:
    return (
        f"From: Sender <{SENDER}>\r\nTo: undisclosed-recipients:;\r\n"
        f"Subject: {subject}\r\nMessage-ID: {make_msgid(domain='example.test')}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode() + body


def client(servers: MailServers, **kwargs: object) -> SMTP:
    """A client for the STARTTLS port, verifying the server against the test CA."""
    options: dict[str, object] = {
        "hostname": servers.hostname,
        "port": servers.starttls_port,
        "tls_context": servers.tls_context(),
        "timeout": 30,
    }
    options.update(kwargs)
    return SMTP(**options)  # type: ignore[arg-type]


def local_port(smtp: SMTP) -> int:
    port = smtp.get_transport_info("sockname")[1]
    assert isinstance(port, int)
    return port


async def test_extensions_before_and_after_starttls(mail_servers: MailServers) -> None:
    """RFC 3207: AUTH (RFC 4954) only after STARTTLS; the ESMTP extensions the other
    tests rely on are offered, BINARYMIME (RFC 3030) is not."""
    async with client(mail_servers, start_tls=False) as smtp:
        await smtp.ehlo()
        assert smtp.supports_extension("starttls")
        assert not smtp.supports_extension("auth")
        await smtp.starttls()
        await smtp.ehlo()
        for extension in (
            "pipelining",
            "chunking",
            "8bitmime",
            "smtputf8",
            "dsn",
            "enhancedstatuscodes",
            "auth",
        ):
            assert smtp.supports_extension(extension), extension
        assert smtp.esmtp_extensions["size"] == str(mail_servers.message_size_limit)
        assert not smtp.supports_extension("binarymime")
        assert not smtp.supports_extension("starttls")
        assert {"plain", "login"} <= set(smtp.server_auth_methods)
        # Dovecot 2.3 offers SCRAM-SHA-256 (RFC 7677) and SCRAM-SHA-1; login() prefers them.
        assert "scram-sha-256" in smtp.server_auth_methods
        assert smtp.supported_auth_methods == ["scram-sha-256", "scram-sha-1", "plain", "login"]


@pytest.mark.parametrize("mechanism", ["plain", "login"])
async def test_starttls_auth_send_message(
    mail_servers: MailServers, inbox: Maildir, mechanism: str
) -> None:
    """STARTTLS, AUTH PLAIN / LOGIN, send_message: To, Cc and Bcc get it, Bcc is not in it."""
    message = EmailMessage()
    message["From"] = f"Sender <{SENDER}>"
    message["To"] = f"to-{mechanism}@example.test"
    message["Cc"] = f"Copy <cc-{mechanism}@example.test>"
    message["Bcc"] = f"bcc-{mechanism}@example.test"
    message["Subject"] = f"STARTTLS and AUTH {mechanism.upper()}"
    message["Message-ID"] = make_msgid(domain="example.test")
    message.set_content("A line.\n.A line with a dot.\n.\n..\nThe end.\n")
    recipients = [f"{kind}-{mechanism}@example.test" for kind in ("to", "cc", "bcc")]
    async with client(mail_servers) as smtp:
        assert smtp.get_transport_info("sslcontext") is not None  # STARTTLS happened
        await getattr(smtp, f"auth_{mechanism}")(mail_servers.username, mail_servers.password)
        port = local_port(smtp)
        refused, _ = await smtp.send_message(message)
    assert refused == {}
    delivered = await inbox.wait_for(recipients)
    assert sorted(d.recipient for d in delivered) == sorted(recipients)
    for copy_ in delivered:
        assert copy_.return_path == f"<{SENDER}>"
        assert copy_.content == expected_bytes(message)
        assert copy_.header("Bcc") is None
        assert b".A line with a dot.\n.\n..\nThe end.\n" in copy_.content
    summary = await wait_session_summary(mail_servers, port)
    assert "starttls=1" in summary and "auth=1" in summary
    assert re.search(
        rf"client=\S+:{port}, sasl_method={mechanism.upper()},", mail_servers.postfix_log()
    )


async def test_implicit_tls_html_with_binary_attachment(
    mail_servers: MailServers, inbox: Maildir
) -> None:
    """RFC 8314 implicit TLS with ``fastsmtp.send``: an HTML message with a binary
    attachment arrives byte for byte; the attachment decodes to the same bytes."""
    attachment = bytes(range(256)) * 64 + hashlib.sha256(b"fastsmtp").digest()
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = "html@example.test"
    message["Subject"] = "HTML and an attachment"
    message["Message-ID"] = make_msgid(domain="example.test")
    message.set_content("Plain text part.\n")
    message.add_alternative("<html><body><p>HTML <b>part</b>.</p></body></html>\n", subtype="html")
    message.add_attachment(
        attachment, maintype="application", subtype="octet-stream", filename="data.bin"
    )
    refused, _ = await fastsmtp.send(
        message,
        hostname=mail_servers.hostname,
        port=mail_servers.smtps_port,
        use_tls=True,
        tls_context=mail_servers.tls_context(),
        username=mail_servers.username,
        password=mail_servers.password,
    )
    assert refused == {}
    [delivered] = await inbox.wait_for(["html@example.test"])
    assert delivered.content == expected_bytes(message)
    parsed = BytesParser(policy=default_policy).parsebytes(delivered.content)
    assert isinstance(parsed, EmailMessage)
    parts = list(parsed.iter_attachments())
    assert [p.get_filename() for p in parts] == ["data.bin"]
    assert parts[0].get_content() == attachment
    html = parsed.get_body(preferencelist=("html",))
    assert html is not None and "<b>part</b>" in html.get_content()
    assert any("with ESMTPSA" in value for name, value in delivered.trace if name == "received")


async def test_hundred_recipients(mail_servers: MailServers, inbox: Maildir) -> None:
    """One message, 100 RCPTs (pipelined, RFC 2920): each recipient gets one copy."""
    recipients = [f"many-{i:03d}@example.test" for i in range(100)]
    message = raw_message("100 recipients")
    async with client(
        mail_servers, username=mail_servers.username, password=mail_servers.password
    ) as smtp:
        refused, reply = await smtp.sendmail(SENDER, recipients, message)
    assert refused == {}
    assert reply.startswith("2.0.0 Ok: queued")
    delivered = await inbox.wait_for(recipients)
    assert sorted(d.recipient for d in delivered) == recipients
    assert all(d.content == expected_bytes(message) for d in delivered)


async def test_ten_mib_with_dot_lines(mail_servers: MailServers, inbox: Maildir) -> None:
    """A 10 MiB message, every third line starting with "." (RFC 5321 section 4.5.2
    transparency): delivered byte for byte, no line lost, doubled or left stuffed."""
    lines, size, i = [], 0, 0
    while size <= 10 * 1024 * 1024:
        if i % 3 == 0:
            line = (".", "..", ". dot", ".x" + "." * (i % 7))[i % 4] + f" {i}"
        else:
            line = f"line {i:08d} " + "abcdefghijklmnopqrstuvwxyz0123456789" * (i % 2 + 1)
        lines.append(line)
        size += len(line) + 2
        i += 1
    body = ("\r\n".join(lines) + "\r\n.\r\n").encode()
    message = raw_message("10 MiB with dot lines", body)
    assert len(message) > 10 * 1024 * 1024
    async with client(
        mail_servers, username=mail_servers.username, password=mail_servers.password
    ) as smtp:
        refused, _ = await smtp.sendmail(SENDER, ["big@example.test"], message)
    assert refused == {}
    [delivered] = await inbox.wait_for(["big@example.test"])
    assert delivered.content == expected_bytes(message)


async def test_chunking_bdat(mail_servers: MailServers, inbox: Maildir) -> None:
    """``chunking=True`` sends BDAT (RFC 3030): Postfix logs BDAT and no DATA, and the
    message (dot lines unstuffed as sent) arrives intact."""
    message = raw_message("BDAT", b".one\r\n..two\r\nthree\r\n" * 5000)
    async with client(
        mail_servers, chunking=True, username=mail_servers.username, password=mail_servers.password
    ) as smtp:
        port = local_port(smtp)
        refused, _ = await smtp.sendmail(SENDER, ["bdat@example.test"], message)
    assert refused == {}
    [delivered] = await inbox.wait_for(["bdat@example.test"])
    assert delivered.content == expected_bytes(message)
    summary = await wait_session_summary(mail_servers, port)
    assert "bdat=" in summary and "data=" not in summary


@pytest.mark.parametrize("chunking", [True, None])
async def test_binarymime_not_offered(
    mail_servers: MailServers, inbox: Maildir, chunking: bool | None
) -> None:
    """Postfix has no BINARYMIME: fastsmtp raises SMTPNotSupported before MAIL, and the
    connection goes on working."""
    async with client(
        mail_servers,
        chunking=chunking,
        username=mail_servers.username,
        password=mail_servers.password,
    ) as smtp:
        assert not smtp.supports_extension("binarymime")
        port = local_port(smtp)
        with pytest.raises(fastsmtp.SMTPNotSupported, match="BINARYMIME"):
            await smtp.sendmail(
                SENDER,
                ["binary@example.test"],
                raw_message("binary"),
                mail_options=["BODY=BINARYMIME"],
            )
        message = raw_message("after BINARYMIME")
        await smtp.sendmail(SENDER, [f"binary-{chunking}@example.test"], message)
    summary = await wait_session_summary(mail_servers, port)
    assert "mail=1 " in summary  # only the second message's MAIL reached Postfix
    [delivered] = await inbox.wait_for([f"binary-{chunking}@example.test"])
    assert delivered.content == expected_bytes(message)


async def test_smtputf8_address(mail_servers: MailServers, inbox: Maildir) -> None:
    """SMTPUTF8 (RFC 6531): a UTF-8 local part and UTF-8 headers arrive as sent."""
    recipient = "jörg-ünïcødé@example.test"
    message = (
        f"From: Jörg <{SENDER}>\r\nTo: {recipient}\r\nSubject: Grüße, 你好\r\n"
        f"Message-ID: {make_msgid(domain='example.test')}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Ünïcødé body ✓\r\n"
    ).encode()
    async with client(
        mail_servers, username=mail_servers.username, password=mail_servers.password
    ) as smtp:
        refused, _ = await smtp.sendmail(SENDER, [recipient], message, mail_options=["SMTPUTF8"])
    assert refused == {}
    [delivered] = await inbox.wait_for([recipient])
    assert delivered.recipient == recipient
    assert delivered.content == expected_bytes(message)


async def test_over_the_size_limit(mail_servers: MailServers, inbox: Maildir) -> None:
    """SIZE (RFC 1870) on the small-limit port: a message of known size (bytes, or a stream
    with ``size=``) is refused with 552 (SMTPSenderRefused; by fastsmtp before MAIL, as
    Postfix refuses MAIL with SIZE=: test_postfix_extensions.py); a stream without
    ``size`` is refused after its end with 552 (SMTPDataError). The connection stays
    usable after each."""
    limit = mail_servers.small_size_limit
    big = raw_message("too big", (b"x" * 76 + b"\r\n") * (limit // 78 + 100))
    assert len(big) > limit

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    async with client(
        mail_servers,
        port=mail_servers.small_port,
        username=mail_servers.username,
        password=mail_servers.password,
    ) as smtp:
        assert smtp.esmtp_extensions["size"] == str(limit)
        with pytest.raises(fastsmtp.SMTPSenderRefused) as refused_at_mail:
            await smtp.sendmail(SENDER, ["size@example.test"], big)
        assert refused_at_mail.value.code == 552
        assert "5.3.4" in refused_at_mail.value.message
        with pytest.raises(fastsmtp.SMTPSenderRefused) as stream_refused_at_mail:
            await smtp.sendmail(SENDER, ["size@example.test"], stream(), size=len(big))
        assert stream_refused_at_mail.value.code == 552
        with pytest.raises(fastsmtp.SMTPDataError) as refused_at_end:
            await smtp.sendmail(SENDER, ["size@example.test"], stream())
        assert refused_at_end.value.code == 552
        assert smtp.is_connected
        small = raw_message("fits")
        refused, _ = await smtp.sendmail(SENDER, ["size-ok@example.test"], small)
        assert refused == {}
    [delivered] = await inbox.wait_for(["size-ok@example.test"])
    assert delivered.content == expected_bytes(small)
    assert inbox.for_recipients(["size@example.test"]) == []


async def test_refused_recipient_among_accepted(mail_servers: MailServers, inbox: Maildir) -> None:
    """A 550 at RCPT refuses that recipient only: it is in the refused dict, the others
    get the message."""
    recipients = ["accepted-1@example.test", mail_servers.refused, "accepted-2@example.test"]
    message = raw_message("one refused")
    async with client(
        mail_servers, username=mail_servers.username, password=mail_servers.password
    ) as smtp:
        refused, _ = await smtp.sendmail(SENDER, recipients, message)
    assert list(refused) == [mail_servers.refused]
    assert refused[mail_servers.refused].code == 550
    assert "5.1.1" in refused[mail_servers.refused].message
    delivered = await inbox.wait_for(["accepted-1@example.test", "accepted-2@example.test"])
    assert len(delivered) == 2
    assert all(d.content == expected_bytes(message) for d in delivered)
    assert inbox.for_recipients([mail_servers.refused]) == []


async def test_deferred_recipient(mail_servers: MailServers, inbox: Maildir) -> None:
    """A 450 at RCPT: among others it is in the refused dict; alone, sendmail raises
    SMTPRecipientsRefused with the 450, and the connection stays usable."""
    message = raw_message("one deferred")
    async with client(
        mail_servers, username=mail_servers.username, password=mail_servers.password
    ) as smtp:
        refused, _ = await smtp.sendmail(
            SENDER, ["not-deferred@example.test", mail_servers.deferred], message
        )
        assert list(refused) == [mail_servers.deferred]
        assert refused[mail_servers.deferred].code == 450
        with pytest.raises(fastsmtp.SMTPRecipientsRefused) as all_refused:
            await smtp.sendmail(SENDER, [mail_servers.deferred], message)
        [error] = all_refused.value.recipients
        assert (error.code, error.recipient) == (450, mail_servers.deferred)
        assert "4.2.0" in error.message
        await smtp.noop()
    [delivered] = await inbox.wait_for(["not-deferred@example.test"])
    assert delivered.content == expected_bytes(message)
    assert inbox.for_recipients([mail_servers.deferred]) == []


async def test_streamed_body_with_size_and_progress(
    mail_servers: MailServers, inbox: Maildir
) -> None:
    """A body from an async generator with ``size=`` (announced with SIZE, RFC 1870) and
    ``progress=``: every chunk is sent and delivered, progress counts up to the size."""
    message = raw_message(
        "streamed", b"".join(b"chunk %06d ..........\r\n" % i for i in range(40000))
    )
    calls: list[tuple[int, int | None]] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(message), 65536):
            yield message[start : start + 65536]

    refused, _ = await fastsmtp.send(
        chunks(),
        sender=SENDER,
        recipients=["streamed@example.test"],
        hostname=mail_servers.hostname,
        port=mail_servers.starttls_port,
        tls_context=mail_servers.tls_context(),
        username=mail_servers.username,
        password=mail_servers.password,
        size=len(message),
        progress=lambda sent, total: calls.append((sent, total)),
    )
    assert refused == {}
    assert len(calls) > 1
    assert calls[-1][0] == len(message)
    assert [sent for sent, _ in calls] == sorted(sent for sent, _ in calls)
    [delivered] = await inbox.wait_for(["streamed@example.test"])
    assert delivered.content == expected_bytes(message)


async def test_pool_send_many(mail_servers: MailServers, inbox: Maildir) -> None:
    """``SMTPPool.send_many``: 500 messages over at most 4 STARTTLS + AUTH connections,
    each delivered exactly once, each result with its message's queue id."""
    messages = []
    for i in range(500):
        message = EmailMessage()
        message["From"] = SENDER
        message["To"] = "bulk@example.test"
        message["Subject"] = f"bulk {i}"
        message["Message-ID"] = make_msgid(idstring=f"bulk{i}", domain="example.test")
        message.set_content(f"Message {i}.\n")
        messages.append(message)
    connects_before = len(CONNECT.findall(mail_servers.postfix_log()))
    async with SMTPPool(
        hostname=mail_servers.hostname,
        port=mail_servers.starttls_port,
        start_tls=True,
        tls_context=mail_servers.tls_context(),
        username=mail_servers.username,
        password=mail_servers.password,
        max_connections=4,
    ) as pool:
        results = await pool.send_many(messages)
        assert pool.connection_count <= 4
    assert [r.status for r in results] == [fastsmtp.SendStatus.SENT] * 500
    delivered = await inbox.wait_for(["bulk@example.test"], count=500, timeout=60)
    assert len(delivered) == 500
    ids = [d.header("Message-ID") for d in delivered]
    assert sorted(ids) == sorted(str(m["Message-ID"]) for m in messages)  # once each
    by_id = {str(m["Message-ID"]): m for m in messages}
    assert all(d.content == expected_bytes(by_id[d.header("Message-ID") or ""]) for d in delivered)
    # Each result carries its own message's Postfix queue id: the one in the Received field
    # Postfix added to that message (pipelined final replies paired with their messages).
    queue_ids = {str(m["Message-ID"]): r.queue_id for m, r in zip(messages, results, strict=True)}
    assert None not in queue_ids.values() and len(set(queue_ids.values())) == 500
    for copy_ in delivered:
        received = " ".join(value for name, value in copy_.trace if name == "received")
        assert re.search(rf"\bid {queue_ids[copy_.header('Message-ID') or '']}\b", received)
    # Every session has ended (and been logged): the pool opened at most 4.
    await wait_until(
        lambda: (
            len(CONNECT.findall(log := mail_servers.postfix_log())) == len(DISCONNECT.findall(log))
        ),
        "postfix to log the end of the pool's sessions",
    )
    assert 1 <= len(CONNECT.findall(mail_servers.postfix_log())) - connects_before <= 4


async def test_wrong_password(mail_servers: MailServers) -> None:
    """A wrong password: SMTPAuthenticationError 535 (RFC 4954), connection still usable."""
    # From 127.0.0.2: Dovecot delays the next AUTH from an address that failed one (its
    # auth penalty), which would slow down the tests coming after this one.
    async with client(mail_servers, source_address=("127.0.0.2", 0)) as smtp:
        assert smtp.get_transport_info("sockname")[0] == "127.0.0.2"
        # One AUTH PLAIN: ``login()`` would go on to try LOGIN as well.
        with pytest.raises(fastsmtp.SMTPAuthenticationError) as failed:
            await smtp.auth_plain(mail_servers.username, "not-the-password")
        assert failed.value.code == 535
        assert "5.7.8" in failed.value.message
        await smtp.noop()


async def test_no_credentials_in_the_clear(mail_servers: MailServers) -> None:
    """``start_tls=False`` on the STARTTLS port: Postfix offers no AUTH before TLS, so
    fastsmtp raises SMTPException and no AUTH command ever reaches the server. (fastsmtp
    would allow AUTH in the clear to 127.0.0.1, which it treats as local, if offered.)"""
    [port] = find_free_ports(1)
    with pytest.raises(fastsmtp.SMTPException, match="AUTH extension is not supported"):
        await fastsmtp.send(
            raw_message("never sent"),
            sender=SENDER,
            recipients=["clear@example.test"],
            hostname=mail_servers.hostname,
            port=mail_servers.starttls_port,
            start_tls=False,
            source_address=("127.0.0.1", port),
            username=mail_servers.username,
            password=mail_servers.password,
        )
    summary = await wait_session_summary(mail_servers, port)
    assert "auth" not in summary and "mail" not in summary and "starttls" not in summary
    assert summary.startswith("ehlo=1 ")


async def test_progress_total_is_the_given_size(mail_servers: MailServers) -> None:
    """``progress(sent, total)``: ``total`` is "the size if known"; for a stream with
    ``size=`` the size is known, so the last call should be ``(size, size)``."""
    message = raw_message("progress total")
    calls: list[tuple[int, int | None]] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield message

    async with client(
        mail_servers, username=mail_servers.username, password=mail_servers.password
    ) as smtp:
        await smtp.sendmail(
            SENDER,
            ["progress@example.test"],
            chunks(),
            size=len(message),
            progress=lambda sent, total: calls.append((sent, total)),
        )
    assert calls[-1] == (len(message), len(message))


async def test_queue_id_is_postfixs(mail_servers: MailServers, inbox: Maildir) -> None:
    """The queue id read from Postfix's final reply (``250 2.0.0 Ok: queued as ...``) is the
    one Postfix logs the message under and writes in the Received field it adds; the
    reply's RFC 3463 code is there too."""
    message_id = make_msgid(domain="example.test")
    message = raw_message("queue id").replace(b"Message-ID: <", b"X-Old-ID: <", 1)
    message = f"Message-ID: {message_id}\r\n".encode() + message
    async with client(
        mail_servers, username=mail_servers.username, password=mail_servers.password
    ) as smtp:
        refused, text = await smtp.sendmail(SENDER, ["queue-id@example.test"], message)
    assert refused == {}
    queue_id = fastsmtp.queue_id(text)
    assert queue_id is not None and re.fullmatch(r"[0-9A-Za-z]+", queue_id), text
    assert fastsmtp.enhanced_status(text) == "2.0.0"
    [delivered] = await inbox.wait_for(["queue-id@example.test"])
    received = [value for name, value in delivered.trace if name == "received"]
    assert any(re.search(rf"\bid {queue_id}\b", value) for value in received), received
    logged = re.compile(rf"/cleanup\[\d+\]: {queue_id}: message-id={re.escape(message_id)}")
    await wait_until(
        lambda: logged.search(mail_servers.postfix_log()) is not None,
        f"Postfix to log queue id {queue_id}",
    )


async def test_concurrent_sendmail_on_one_tls_connection(
    mail_servers: MailServers, inbox: Maildir
) -> None:
    """Eight ``sendmail`` calls at once on one STARTTLS + AUTH connection: each end of
    data goes out in one write with the next transaction's commands (RFC 2920 section
    3.1), through the TLS transport, and Postfix delivers every message once."""
    messages = [raw_message(f"concurrent {i}") for i in range(8)]
    smtp = client(
        mail_servers,
        start_tls=True,
        username=mail_servers.username,
        password=mail_servers.password,
    )
    async with smtp:
        recorder = record_writes(smtp._link.protocol)
        results = await asyncio.gather(
            *(smtp.sendmail(SENDER, ["concurrent@example.test"], m) for m in messages)
        )
        port = local_port(smtp)
    assert all(refused == {} for refused, _ in results)
    ends = [w for w in recorder.writes if b"\r\n.\r\n" in w]
    assert len(ends) == 8
    assert all(w.endswith(b"\r\nDATA\r\n") for w in ends[:7])
    assert ends[7].endswith(b"\r\n.\r\n")
    assert len(recorder.writes) == 10  # the first commands, 8 ends, QUIT
    delivered = await inbox.wait_for(["concurrent@example.test"], count=8)
    ids = sorted(d.header("Message-ID") or "" for d in delivered)
    assert ids == sorted(re.search(rb"Message-ID: (\S+)", m)[1].decode() for m in messages)  # type: ignore[index]
    summary = await wait_session_summary(mail_servers, port)
    assert "mail=8 rcpt=8 data=8" in summary
