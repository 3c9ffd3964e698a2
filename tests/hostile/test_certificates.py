"""security.md §4: certificates are verified by default, on implicit TLS and on STARTTLS.

Self-signed, wrong name and expired certificates all fail with default settings (the CA of the
wrong-name and expired certificates is trusted, so the failure is the one under test), and the
server receives nothing after the failed handshake: only TLS records, never a command.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from fastsmtp import SMTP
from fastsmtp.errors import SMTPConnectError
from tests.hostile.kit import (
    Expect,
    HostileServer,
    Send,
    StartTLS,
    TLSFiles,
    ehlo_reply,
    is_tls_records,
    reply,
)

CASES = {
    "self-signed": ("self_signed", "self-signed certificate"),
    "wrong-name": ("wrong_name", "IP address mismatch, certificate is not valid for '127.0.0.1'"),
    "expired": ("expired", "certificate has expired"),
}


@pytest.fixture
def ca_file(pki: TLSFiles, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_bytes(pki.ca_pem)
    return str(path)


def assert_handshake_failed_and_nothing_followed(server: HostileServer) -> None:
    conn = server.conn
    assert not conn.handshake_done
    assert conn.handshake_error is not None
    assert bytes(conn.tls) == b""
    after = bytes(conn.raw_after_starttls)
    assert after[:1] == b"\x16"  # the ClientHello, then at most an alert
    assert is_tls_records(after), after


@pytest.mark.parametrize("kind", list(CASES))
async def test_implicit_tls_bad_certificate_fails(pki: TLSFiles, ca_file: str, kind: str) -> None:
    attribute, reason = CASES[kind]
    context: ssl.SSLContext = getattr(pki, attribute)
    async with HostileServer([Expect(b"EHLO")], implicit_tls=context) as server:
        client = SMTP(
            hostname="127.0.0.1",
            port=server.port,
            use_tls=True,
            cert_bundle=ca_file,
            local_hostname="client.test",
            timeout=3,
        )
        with pytest.raises(SMTPConnectError) as info:
            await client.connect()
        await server.finished()
    assert info.value.message.startswith(f"Error connecting to 127.0.0.1 on port {server.port}: ")
    assert reason in info.value.message
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    assert not client.is_connected
    assert bytes(server.conn.plain) == b""
    assert_handshake_failed_and_nothing_followed(server)


@pytest.mark.parametrize("kind", list(CASES))
async def test_starttls_bad_certificate_fails(pki: TLSFiles, ca_file: str, kind: str) -> None:
    attribute, reason = CASES[kind]
    context: ssl.SSLContext = getattr(pki, attribute)
    script = [
        Expect(b"EHLO"),
        ehlo_reply("STARTTLS"),
        Expect(b"STARTTLS"),
        reply("220 go"),
        StartTLS(context),
        Expect(b"EHLO"),
        Send(b"250 ok\r\n"),
    ]
    async with HostileServer(script) as server:
        client = SMTP(
            hostname="127.0.0.1",
            port=server.port,
            start_tls=True,
            cert_bundle=ca_file,
            username="alice",
            password="s3cret",
            local_hostname="client.test",
            timeout=3,
        )
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            await client.connect()
        await server.finished()
    assert reason in str(info.value)
    assert not client.is_connected
    assert bytes(server.conn.plain) == b"EHLO client.test\r\nSTARTTLS\r\n"
    assert_handshake_failed_and_nothing_followed(server)


async def test_starttls_default_hostname_is_verified(pki: TLSFiles, ca_file: str) -> None:
    # No hostname given to STARTTLS: the certificate is checked against the host connected to.
    script = [
        Expect(b"EHLO"),
        ehlo_reply("STARTTLS"),
        Expect(b"STARTTLS"),
        reply("220 go"),
        StartTLS(pki.wrong_name),
    ]
    async with HostileServer(script) as server:
        client = SMTP(
            hostname="127.0.0.1",
            port=server.port,
            start_tls=False,
            cert_bundle=ca_file,
            local_hostname="client.test",
            timeout=3,
        )
        await client.connect()
        with pytest.raises(ssl.SSLCertVerificationError):
            await client.starttls()
        await server.finished()
    assert not client.is_connected
    assert_handshake_failed_and_nothing_followed(server)
