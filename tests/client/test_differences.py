"""fastsmtp's deliberate differences from aiosmtplib 5.1.3, end to end.

Each test cites the section of ``security.md`` (or the "do not copy" note of compat-api.md) it
proves. Some of these fail against aiosmtplib 5.1.3 by design.
"""

from __future__ import annotations

import ssl

import pytest

import fastsmtp
from fastsmtp import SMTP, SMTPException
from tests._servers import (
    GREETING,
    Expect,
    Hang,
    RecordingServer,
    ScriptedServer,
    ehlo_reply,
    reply,
)
from tests.client.conftest import SmtpdFactory, TLSMaterial

RAW = b"Subject: diff\r\n\r\nbody\r\n"


def assert_no_tls_commands(server: RecordingServer) -> None:
    assert not any(cmd.tls for cmd in server.commands)
    assert "MAIL" not in server.verbs
    assert server.messages == []


# --- security.md section 4 / compat-api.md section 3.6 ("5.1.3 bug, do not copy") -----------


async def test_starttls_verifies_defaulted_hostname(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial, cert_bundle: str
) -> None:
    """security.md 4: the certificate is checked against the host actually connected to, also
    when the hostname was defaulted to "localhost" and for STARTTLS. A trusted certificate for
    another name must be refused."""
    server = smtpd_factory(starttls_context=tls.server_context(tls.other_cert))
    client = SMTP(port=server.port, cert_bundle=cert_bundle, timeout=5)  # hostname not set
    with pytest.raises((ssl.SSLError, SMTPException)):
        await client.connect()
    assert not client.is_connected
    await server.wait_all_closed()
    assert server.verbs == ["EHLO", "STARTTLS"]
    assert_no_tls_commands(server)


async def test_send_starttls_verifies_defaulted_hostname(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial, cert_bundle: str
) -> None:
    """security.md 4, through send(): nothing is sent to a server with a certificate for
    another name."""
    server = smtpd_factory(starttls_context=tls.server_context(tls.other_cert))
    with pytest.raises((ssl.SSLError, SMTPException)):
        await fastsmtp.send(
            RAW,
            sender="a@example.com",
            recipients=["b@example.com"],
            port=server.port,
            cert_bundle=cert_bundle,
            start_tls=True,
            timeout=5,
        )
    await server.wait_all_closed()
    assert_no_tls_commands(server)


async def test_starttls_defaulted_hostname_accepts_matching_cert(
    tls_smtpd: RecordingServer, cert_bundle: str
) -> None:
    """security.md 4, the positive side: the defaulted host "localhost" matches the server's
    certificate, so the upgrade succeeds with verification on."""
    async with SMTP(port=tls_smtpd.port, cert_bundle=cert_bundle, timeout=5) as client:
        assert client.get_transport_info("sslcontext") is not None
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert tls_smtpd.messages[0].tls


async def test_implicit_tls_verifies_defaulted_hostname(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial, cert_bundle: str
) -> None:
    """security.md 4: the same on implicit TLS (aiosmtplib already does this one right)."""
    server = smtpd_factory(implicit_tls_context=tls.server_context(tls.other_cert))
    client = SMTP(port=server.port, use_tls=True, cert_bundle=cert_bundle, timeout=5)
    with pytest.raises((ssl.SSLError, SMTPException)):
        await client.connect()
    await server.wait_all_closed()
    assert server.verbs == []


# --- security.md section 3: start_tls=True means required -------------------------------------


async def test_start_tls_true_not_offered_never_continues(smtpd: RecordingServer) -> None:
    """security.md 3: STARTTLS not offered -> raise, never continue in plaintext."""
    with pytest.raises(SMTPException):
        await fastsmtp.send(
            RAW,
            sender="a@example.com",
            recipients=["b@example.com"],
            hostname=smtpd.host,
            port=smtpd.port,
            start_tls=True,
            timeout=5,
        )
    assert smtpd.messages == []
    assert "MAIL" not in smtpd.verbs


async def test_start_tls_true_refused_never_continues() -> None:
    """security.md 3: STARTTLS answered with anything but 220 -> raise, nothing more is sent."""
    script = [GREETING, Expect(b"EHLO"), ehlo_reply("STARTTLS"), Expect(b"STARTTLS")]
    script += [reply("454 4.7.0 TLS not available due to temporary reason"), Hang()]
    async with ScriptedServer(script) as server:
        with pytest.raises(SMTPException):
            await fastsmtp.send(
                RAW,
                sender="a@example.com",
                recipients=["b@example.com"],
                hostname=server.host,
                port=server.port,
                start_tls=True,
                username="alice",
                password="secret",
                timeout=5,
            )
        received = bytes(server.connections[0].received)
        assert b"MAIL" not in received
        assert b"AUTH" not in received
        assert b"secret" not in received


# --- security.md section 2: state reset after STARTTLS ----------------------------------------


async def test_starttls_resets_state_and_ehlos_again(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial, client_tls_context: ssl.SSLContext
) -> None:
    """security.md 2: after the handshake all server state is dropped and EHLO runs again;
    the extensions are exactly those of the post-TLS EHLO."""
    server = smtpd_factory(
        starttls_context=tls.server_context(),
        extra_ehlo=["X-PLAINTEXT-ONLY", "PIPELINING"],
        extra_ehlo_tls=["X-TLS-ONLY"],
    )
    async with SMTP(
        hostname=server.host, port=server.port, tls_context=client_tls_context, timeout=5
    ) as client:
        assert client.get_transport_info("sslcontext") is not None
        # whatever was learnt in plaintext is gone; the next command (here EHLO) re-learns
        assert not client.supports_extension("x-plaintext-only")
        await client.ehlo()
        assert client.supports_extension("x-tls-only")
        assert not client.supports_extension("x-plaintext-only")
        assert not client.supports_extension("pipelining")
        assert not client.supports_extension("starttls")
        assert client.last_ehlo_response is not None
        assert "X-TLS-ONLY" in client.last_ehlo_response.message
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    (conn,) = server.connections
    assert [(c.verb, c.tls) for c in conn.commands][:3] == [
        ("EHLO", False),
        ("STARTTLS", False),
        ("EHLO", True),
    ]


async def test_auth_mechanisms_only_from_post_tls_ehlo(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial, client_tls_context: ssl.SSLContext
) -> None:
    """security.md 3: mechanisms come only from the post-TLS EHLO. The plaintext EHLO
    advertises CRAM-MD5 (a lie); over TLS only PLAIN is offered, and only PLAIN is tried."""
    server = smtpd_factory(
        starttls_context=tls.server_context(),
        auth_mechanisms=("PLAIN",),
        auth_require_tls=True,
        users={"alice": "s3cret"},
        extra_ehlo=["AUTH CRAM-MD5 LOGIN"],
    )
    async with SMTP(
        hostname=server.host,
        port=server.port,
        tls_context=client_tls_context,
        username="alice",
        password="s3cret",
        timeout=5,
    ) as client:
        assert client.server_auth_methods == ["plain"]
        assert client.supported_auth_methods == ["plain"]
    auth = [c for c in server.commands if c.verb == "AUTH"]
    assert [c.arg.split()[0] if c.arg else "" for c in auth] == ["PLAIN"]
    assert all(c.tls for c in auth)
    assert [(a.mechanism, a.success) for a in server.auth_attempts] == [("PLAIN", True)]


# --- security.md section 1: strict envelope addresses -----------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "a@b.example> RET=FULL ENVID=x",
        "<a@b.example> SIZE=1",
        "a@b.example> AUTH=<x@y>",
        "a@b.example\r\nRSET",
        "a<b@example.com",
    ],
)
async def test_smuggled_envelope_parameters_rejected(smtpd: RecordingServer, address: str) -> None:
    """security.md 1: `a@b.com> RET=FULL ENVID=x` must raise on every Python version; never
    fall back to a truncated or raw address (5.1.3 silently sends `<a@b.example>` for some)."""
    async with SMTP(hostname=smtpd.host, port=smtpd.port, timeout=5) as client:
        await client.ehlo()
        with pytest.raises(ValueError):
            await client.mail(address)
        with pytest.raises(ValueError):
            await client.sendmail("a@example.com", [address], b"x")
        with pytest.raises(ValueError):
            await client.sendmail(address, ["b@example.com"], b"x")
    assert "MAIL" not in smtpd.verbs
    assert "RCPT" not in smtpd.verbs
    assert b"RSET" not in bytes(smtpd.connections[0].raw)
    assert smtpd.messages == []
