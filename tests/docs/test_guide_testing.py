"""Testing code that sends mail: the fixture of docs/guides/testing.rst, run as part of the suite.

The guide shows this file (``literalinclude``), so what it teaches is what runs here:
aiosmtpd serving on 127.0.0.1 with a port chosen by the OS, inside the test's own event
loop; messages captured by a small handler; refusals the application must handle; STARTTLS
with a certificate from a throwaway CA made by trustme.

With pytest-asyncio, mark the async tests ``@pytest.mark.asyncio`` (or set
``asyncio_mode = "auto"``); this project's suite runs ``async def`` tests itself.
"""

from __future__ import annotations

# [imports]
import asyncio
import contextlib
import email
import email.policy
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

import fastsmtp

# [imports]


# [app]
async def send_welcome(address: str, **smtp_options: Any) -> None:
    """The application code under test: one welcome message per new user."""
    message = EmailMessage()
    message["From"] = "welcome@example.com"
    message["To"] = address
    message["Subject"] = "Welcome!"
    message.set_content("Thanks for signing up.")
    await fastsmtp.send(message, **smtp_options)


# [app]

# [server]


@dataclass
class Received:
    """One message as the server got it: the envelope and the parsed message."""

    sender: str
    recipients: list[str]
    message: Message
    tls: bool


@dataclass
class MailCatcher:
    """An aiosmtpd handler that keeps every message, and can refuse chosen recipients."""

    refuse: dict[str, str] = field(default_factory=dict)  # address -> reply line
    messages: list[Received] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append(
            Received(
                sender=envelope.mail_from or "",
                recipients=list(envelope.rcpt_tos),
                message=email.message_from_bytes(content, policy=email.policy.default),
                tls=session.ssl is not None,
            )
        )
        return "250 OK"


@contextlib.asynccontextmanager
async def smtp_server(
    handler: MailCatcher | None = None, tls: ssl.SSLContext | None = None
) -> AsyncIterator[MailCatcher]:
    """aiosmtpd on 127.0.0.1, on a free port the OS picks, in the running event loop.
    With ``tls`` (a server-side context) it offers STARTTLS and requires it."""
    catcher = handler or MailCatcher()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTPServer(catcher, tls_context=tls, require_starttls=tls is not None),
        catcher.host,
        0,
    )
    catcher.port = server.sockets[0].getsockname()[1]
    try:
        yield catcher
    finally:
        server.close()
        await server.wait_closed()


# [server]

# [tests]


async def test_welcome_is_sent() -> None:
    async with smtp_server() as server:
        await send_welcome("new@example.com", hostname=server.host, port=server.port)

    [received] = server.messages
    assert received.sender == "welcome@example.com"
    assert received.recipients == ["new@example.com"]
    assert received.message["Subject"] == "Welcome!"
    assert received.message.get_content().rstrip() == "Thanks for signing up."


async def test_refused_recipient_raises() -> None:
    catcher = MailCatcher(refuse={"gone@example.com": "550 5.1.1 No such user"})
    async with smtp_server(catcher) as server:
        with pytest.raises(fastsmtp.SMTPRecipientsRefused) as caught:
            await send_welcome("gone@example.com", hostname=server.host, port=server.port)

    [refusal] = caught.value.recipients
    assert (refusal.code, refusal.recipient) == (550, "gone@example.com")
    assert server.messages == []


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority: nothing from the system's trust store."""
    return trustme.CA()


async def test_welcome_over_starttls(ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()  # verifying, as in production
    ca.configure_trust(client_context)

    async with smtp_server(tls=server_context) as server:
        await send_welcome(
            "new@example.com",
            hostname=server.host,
            port=server.port,
            start_tls=True,
            tls_context=client_context,
        )

    assert [m.tls for m in server.messages] == [True]


# [tests]
