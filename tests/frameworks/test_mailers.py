"""mailers (``mailers[smtp]``), unchanged, sends through fastsmtp (``install_as_aiosmtplib``).

mailers' ``SMTPTransport`` imports ``aiosmtplib`` when it sends and calls
``aiosmtplib.send(message, ..., cert_bundle=..., validate_certs=...)``, which upgrades with
STARTTLS when the server offers it. Each test runs its send path end to end against aiosmtpd
on 127.0.0.1 and checks what the server received.
"""

from __future__ import annotations

import email
import email.policy
import importlib
import sys
from types import ModuleType
from typing import Any

import pytest

import fastsmtp
from tests._servers import RecordingServer
from tests.frameworks.conftest import USERS, real_aiosmtplib_loaded

SENDER = "app@example.com"
TEXT = "Hello from mailers on fastsmtp.\n.a line starting with a dot\n"


def _mailer(server: RecordingServer, **transport: Any) -> Any:
    mailers = importlib.import_module("mailers")
    settings: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "user": "alice",
        "password": USERS["alice"],
        "timeout": 10,
    }
    settings.update(transport)
    return mailers.Mailer(mailers.SMTPTransport(**settings), from_address=SENDER)


def _email(subject: str) -> Any:
    mailers = importlib.import_module("mailers")
    return mailers.Email(
        to="to@example.com", cc="cc@example.com", bcc="bcc@example.com", subject=subject, text=TEXT
    )


def _check_received(server: RecordingServer, subject: str, *, tls: bool) -> None:
    # mailers imported aiosmtplib while sending: it got fastsmtp, and nothing of the real one.
    assert sys.modules["aiosmtplib"] is fastsmtp
    assert sys.modules["aiosmtplib.api"] is fastsmtp.api
    assert not real_aiosmtplib_loaded()
    assert [m.mail_from for m in server.messages] == [SENDER]
    received = server.messages[0]
    assert received.rcpt_tos == ["to@example.com", "cc@example.com", "bcc@example.com"]
    assert received.tls is tls
    message = email.message_from_bytes(received.content, policy=email.policy.default)
    assert message["Subject"] == subject
    assert message["From"] == SENDER
    assert message["To"] == "to@example.com"
    assert message["Cc"] == "cc@example.com"
    assert message["Bcc"] is None  # never in what is sent
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == TEXT
    # on the wire the line starting with "." was dot-stuffed (RFC 5321 section 4.5.2)
    assert b"..a line starting with a dot" in server.connections[-1].raw_lines
    assert [(a.mechanism, a.login, a.success) for a in server.auth_attempts] == [
        ("PLAIN", b"alice", True)
    ]
    assert server.connections[-1].verbs[-1] == "QUIT"


async def test_plain_with_login(
    aiosmtplib_is_fastsmtp: ModuleType, plain_server: RecordingServer
) -> None:
    await _mailer(plain_server).send(_email("plain"))
    await plain_server.wait_all_closed()
    _check_received(plain_server, "plain", tls=False)
    assert "STARTTLS" not in plain_server.connections[0].verbs


async def test_starttls_with_login_trusting_the_test_ca(
    aiosmtplib_is_fastsmtp: ModuleType, starttls_server: RecordingServer, cert_bundle: str
) -> None:
    mailer = _mailer(starttls_server, cert_bundle=cert_bundle, validate_certs=True)
    await mailer.send(_email("over TLS"))
    await starttls_server.wait_all_closed()
    _check_received(starttls_server, "over TLS", tls=True)
    commands = starttls_server.connections[0].commands
    assert [c.verb for c in commands][:2] == ["EHLO", "STARTTLS"]
    assert all(c.tls for c in commands[2:])  # AUTH, MAIL, RCPT, DATA, QUIT over TLS


async def test_starttls_refuses_a_certificate_from_another_ca(
    aiosmtplib_is_fastsmtp: ModuleType, starttls_server: RecordingServer
) -> None:
    # Verification is really on: without the test CA the handshake fails, nothing is sent.
    mailers = importlib.import_module("mailers")
    with pytest.raises(mailers.exceptions.DeliveryError) as info:
        await _mailer(starttls_server, validate_certs=True).send(_email("never sent"))
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value.__cause__)
    await starttls_server.wait_all_closed()
    assert starttls_server.messages == []
    assert starttls_server.auth_attempts == []


async def test_wrong_password_raises_what_aiosmtplib_code_catches(
    aiosmtplib_is_fastsmtp: ModuleType, plain_server: RecordingServer
) -> None:
    mailers = importlib.import_module("mailers")
    with pytest.raises(mailers.exceptions.DeliveryError) as info:
        await _mailer(plain_server, password="wrong").send(_email("never sent"))
    cause = info.value.__cause__
    # what an `except aiosmtplib.SMTPAuthenticationError` around such code would catch
    assert isinstance(cause, sys.modules["aiosmtplib"].SMTPAuthenticationError)
    assert cause.code == 535
    await plain_server.wait_all_closed()  # send() closed the connection
    assert plain_server.messages == []
    # as aiosmtplib's login(): each offered method is tried, the last refusal raised
    assert [(a.mechanism, a.success) for a in plain_server.auth_attempts] == [
        ("PLAIN", False),
        ("LOGIN", False),
    ]
