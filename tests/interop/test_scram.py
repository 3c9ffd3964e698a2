"""SCRAM (RFC 5802, RFC 7677) against a real Dovecot: its submission service and Postfix
through Dovecot's SASL. Dovecot 2.3 implements SCRAM-SHA-1 and SCRAM-SHA-256 but not the
-PLUS variants (channel binding came with 2.4): over TLS fastsmtp therefore sends the
gs2 flag "y" (RFC 5802 section 6), which Dovecot accepts. -PLUS is tested against the
aiosmtpd server of tests/client/test_scram.py."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from fastsmtp import SMTP, SMTPAuthenticationError
from fastsmtp.response import SMTPResponse
from fastsmtp.typing import Default, _default

from .kit import Maildir, expected_bytes
from .servers import MailServers

SENDER = "sender@example.test"


class TracingSMTP(SMTP):
    """Records the mechanism of every AUTH line (every AUTH line goes through here)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.mechanisms: list[str] = []

    async def execute_command(
        self, *args: bytes, timeout: float | Default | None = _default
    ) -> SMTPResponse:
        if args[0] == b"AUTH":
            self.mechanisms.append(args[1].decode())
        return await super().execute_command(*args, timeout=timeout)


def _message(recipient: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = recipient
    message["Subject"] = "SCRAM"
    message["Message-ID"] = make_msgid(domain="example.test")
    message.set_content("Sent after SCRAM.\n")
    return message


@pytest.mark.parametrize("server", ["submission", "postfix"])
async def test_login_chooses_scram_sha_256(
    mail_servers: MailServers, inbox: Maildir, server: str
) -> None:
    """login() on connect picks SCRAM-SHA-256 over STARTTLS; the server accepts the proof,
    fastsmtp accepts the server's signature, and the message is delivered."""
    port = mail_servers.submission_port if server == "submission" else mail_servers.starttls_port
    recipient = f"scram-{server}@example.test"
    message = _message(recipient)
    async with TracingSMTP(
        hostname=mail_servers.hostname,
        port=port,
        start_tls=True,
        tls_context=mail_servers.tls_context(),
        username=mail_servers.username,
        password=mail_servers.password,
        timeout=30,
    ) as smtp:
        assert {"scram-sha-256", "scram-sha-1"} <= set(smtp.server_auth_methods)
        assert "scram-sha-256-plus" not in smtp.server_auth_methods
        assert smtp.mechanisms == ["SCRAM-SHA-256"]
        refused, _ = await smtp.send_message(message)
    assert refused == {}
    [delivered] = await inbox.wait_for([recipient])
    assert delivered.content == expected_bytes(message)
    received = [value for name, value in delivered.trace if name == "received"]
    assert any("with ESMTPSA" in value for value in received)


async def test_scram_sha_1(mail_servers: MailServers) -> None:
    async with TracingSMTP(
        hostname=mail_servers.hostname,
        port=mail_servers.submission_port,
        start_tls=True,
        tls_context=mail_servers.tls_context(),
        timeout=30,
    ) as smtp:
        response = await smtp.auth_scramsha1(mail_servers.username, mail_servers.password)
        assert response.code == 235
        assert smtp.mechanisms == ["SCRAM-SHA-1"]
        assert (await smtp.noop()).code == 250


@pytest.mark.parametrize("method", ["auth_scramsha256", "auth_scramsha1"])
async def test_scram_wrong_password(mail_servers: MailServers, method: str) -> None:
    """A wrong password: Dovecot refuses the proof; the connection stays usable."""
    async with TracingSMTP(
        hostname=mail_servers.hostname,
        port=mail_servers.submission_port,
        start_tls=True,
        tls_context=mail_servers.tls_context(),
        timeout=30,
    ) as smtp:
        with pytest.raises(SMTPAuthenticationError) as info:
            await getattr(smtp, method)(mail_servers.username, "not-" + mail_servers.password)
        assert info.value.code == 535
        assert mail_servers.password not in str(info.value)
        assert (await smtp.noop()).code == 250
        # Another mechanism may still be tried on this connection.
        response = await smtp.auth_plain(mail_servers.username, mail_servers.password)
        assert response.code == 235
