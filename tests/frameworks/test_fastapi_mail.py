"""fastapi-mail, unchanged, sends through fastsmtp (``install_as_aiosmtplib``).

fastapi-mail imports ``aiosmtplib`` at module level (``aiosmtplib.SMTP`` for its connection,
``aiosmtplib.api.DEFAULT_TIMEOUT`` for its config), connects with STARTTLS when told to,
logs in and sends with ``send_message``. Each test runs its send path end to end against
aiosmtpd on 127.0.0.1 and checks what the server received.
"""

from __future__ import annotations

import email
import email.policy
import importlib
from types import ModuleType
from typing import Any

import pytest

import fastsmtp
from tests._servers import RecordingServer
from tests.frameworks.conftest import USERS, real_aiosmtplib_loaded

SENDER = "app@example.com"


def _fastapi_mail(aiosmtplib: ModuleType) -> Any:
    module = importlib.import_module("fastapi_mail")
    # The framework's own module-level references are fastsmtp's objects.
    connection = importlib.import_module("fastapi_mail.connection")
    config = importlib.import_module("fastapi_mail.config")
    assert connection.aiosmtplib is aiosmtplib is fastsmtp
    assert config.DEFAULT_TIMEOUT is fastsmtp.api.DEFAULT_TIMEOUT
    return module


def _config(fm: Any, server: RecordingServer, **overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "MAIL_USERNAME": "alice",
        "MAIL_PASSWORD": USERS["alice"],
        "MAIL_FROM": SENDER,
        "MAIL_FROM_NAME": "The App",
        "MAIL_PORT": server.port,
        "MAIL_SERVER": server.host,
        "MAIL_STARTTLS": False,
        "MAIL_SSL_TLS": False,
        "USE_CREDENTIALS": True,
        "VALIDATE_CERTS": True,
        "TIMEOUT": 10,
    }
    settings.update(overrides)
    return fm.ConnectionConfig(**settings)


def _message(fm: Any, subject: str) -> Any:
    return fm.MessageSchema(
        subject=subject,
        recipients=["to@example.com"],
        cc=["cc@example.com"],
        bcc=["bcc@example.com"],
        body="Hello from fastapi-mail on fastsmtp.\n.a line starting with a dot\n",
        subtype=fm.MessageType.plain,
    )


def _check_received(server: RecordingServer, subject: str, *, tls: bool) -> None:
    assert [m.mail_from for m in server.messages] == [SENDER]
    received = server.messages[0]
    assert received.rcpt_tos == ["to@example.com", "cc@example.com", "bcc@example.com"]
    assert received.tls is tls
    message = email.message_from_bytes(received.content, policy=email.policy.default)
    assert message["Subject"] == subject
    assert message["From"] == f"The App <{SENDER}>"
    assert [a.addr_spec for a in message["To"].addresses] == ["to@example.com"]
    assert [a.addr_spec for a in message["Cc"].addresses] == ["cc@example.com"]
    assert message["Bcc"] is None  # never in what is sent
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content() == (
        "Hello from fastapi-mail on fastsmtp.\n.a line starting with a dot\n"
    )
    assert [(a.mechanism, a.login, a.success) for a in server.auth_attempts] == [
        ("PLAIN", b"alice", True)
    ]
    assert server.connections[-1].verbs[-1] == "QUIT"
    assert not real_aiosmtplib_loaded()


async def test_plain_with_login(
    aiosmtplib_is_fastsmtp: ModuleType, plain_server: RecordingServer
) -> None:
    fm = _fastapi_mail(aiosmtplib_is_fastsmtp)
    mail = fm.FastMail(_config(fm, plain_server))
    await mail.send_message(_message(fm, "plain"))
    await plain_server.wait_all_closed()
    _check_received(plain_server, "plain", tls=False)
    assert "STARTTLS" not in plain_server.connections[0].verbs


async def test_starttls_with_login_trusting_the_test_ca(
    aiosmtplib_is_fastsmtp: ModuleType, starttls_server: RecordingServer, cert_bundle: str
) -> None:
    fm = _fastapi_mail(aiosmtplib_is_fastsmtp)
    config = _config(fm, starttls_server, MAIL_STARTTLS=True, CERT_BUNDLE=cert_bundle)
    await fm.FastMail(config).send_message(_message(fm, "over TLS"))
    await starttls_server.wait_all_closed()
    _check_received(starttls_server, "over TLS", tls=True)
    commands = starttls_server.connections[0].commands
    assert [c.verb for c in commands][:2] == ["EHLO", "STARTTLS"]
    assert all(c.tls for c in commands[2:])  # AUTH, MAIL, RCPT, DATA, QUIT over TLS


async def test_starttls_refuses_a_certificate_from_another_ca(
    aiosmtplib_is_fastsmtp: ModuleType, starttls_server: RecordingServer
) -> None:
    # Verification is really on: without the test CA the handshake fails, nothing is sent.
    fm = _fastapi_mail(aiosmtplib_is_fastsmtp)
    config = _config(fm, starttls_server, MAIL_STARTTLS=True)
    with pytest.raises(fm.errors.ConnectionErrors, match="CERTIFICATE_VERIFY_FAILED"):
        await fm.FastMail(config).send_message(_message(fm, "never sent"))
    await starttls_server.wait_all_closed()
    assert starttls_server.messages == []
    assert starttls_server.auth_attempts == []
