"""security.md §10 (protocol logs): commands and replies are logged at DEBUG on the
``fastsmtp`` logger with their direction; AUTH exchanges are redacted for every mechanism;
nothing is logged unless the application enables DEBUG for that logger."""

from __future__ import annotations

import base64
import logging

import pytest

from fastsmtp import SMTP
from tests._servers import RecordingServer, ServerConfig

USER, PASSWORD, TOKEN = "alice-logtest", "s3cret-pw-9", "tok-xyz-123"


def secrets_of() -> list[str]:
    """Every form a credential could leak in."""
    forms = [USER, PASSWORD, TOKEN]
    for blob in (
        f"\0{USER}\0{PASSWORD}",
        USER,
        PASSWORD,
        f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01",
    ):
        forms.append(base64.b64encode(blob.encode()).decode())
    return forms


def server() -> RecordingServer:
    return RecordingServer(
        ServerConfig(
            auth_mechanisms=("CRAM-MD5", "LOGIN", "PLAIN", "XOAUTH2"),
            users={USER: PASSWORD},
            oauth_tokens={USER: TOKEN},
        )
    )


async def authenticate(mechanism: str, port: int) -> None:
    async with SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=5) as client:
        await client.ehlo()
        if mechanism == "XOAUTH2":
            response = await client.auth_xoauth2(USER, TOKEN)
        else:
            method = getattr(client, "auth_" + mechanism.lower().replace("-", ""))
            response = await method(USER, PASSWORD)
        assert response.code == 235
        await client.noop()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"])
async def test_auth_is_redacted_and_traffic_is_logged_with_direction(
    caplog: pytest.LogCaptureFixture, mechanism: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="fastsmtp")
    with server() as smtpd:
        await authenticate(mechanism, smtpd.port)
        await smtpd.wait_all_closed()
    records = [r for r in caplog.records if r.name == "fastsmtp"]
    messages = [r.getMessage() for r in records]
    assert all(r.levelno == logging.DEBUG for r in records)
    assert any(m.startswith(">> ") and "EHLO" in m for m in messages)
    assert any(m.startswith(">> ") and "NOOP" in m for m in messages)
    assert any(m.startswith("<< ") and "220" in m for m in messages)
    assert any(m.startswith("<< ") for m in messages[1:])
    assert all(m.startswith((">> ", "<< ")) for m in messages), messages
    assert any("[redacted]" in m and m.startswith(">> ") for m in messages)
    assert any("[redacted]" in m and m.startswith("<< ") for m in messages)
    text = "\n".join(messages) + "\n".join(str(r.args) + str(r.msg) for r in records)
    for secret in secrets_of():
        assert secret not in text, (secret, messages)


async def test_nothing_is_logged_unless_debug_is_enabled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fastsmtp")
    with server() as smtpd:
        await authenticate("PLAIN", smtpd.port)
        await smtpd.wait_all_closed()
    assert [r for r in caplog.records if r.name == "fastsmtp"] == []
