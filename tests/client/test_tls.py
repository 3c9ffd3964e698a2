"""TLS: STARTTLS (auto, forced, off, explicit), implicit TLS, certificates, client certificates."""

from __future__ import annotations

import ssl

import pytest

import fastsmtp
from fastsmtp import SMTP, SMTPConnectError, SMTPException
from tests._servers import RecordingServer
from tests.client.conftest import ClientCertFiles, SmtpdFactory, TLSMaterial

RAW = b"Subject: tls\r\n\r\nsecret body\r\n"


def client_for(server: RecordingServer, **kwargs: object) -> SMTP:
    kwargs.setdefault("timeout", 5)
    return SMTP(hostname=server.host, port=server.port, **kwargs)  # type: ignore[arg-type]


def is_tls(client: SMTP) -> bool:
    return client.get_transport_info("sslcontext") is not None


# --- STARTTLS policy on connect ----------------------------------------------------------


async def test_starttls_auto_upgrades_when_offered(
    tls_smtpd: RecordingServer, client_tls_context: ssl.SSLContext
) -> None:
    async with client_for(tls_smtpd, tls_context=client_tls_context) as client:
        assert is_tls(client)
        assert client.get_transport_info("ssl_object") is not None
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    (conn,) = tls_smtpd.connections
    assert [(c.verb, c.tls) for c in conn.commands] == [
        ("EHLO", False),
        ("STARTTLS", False),
        ("EHLO", True),
        ("MAIL", True),
        ("RCPT", True),
        ("DATA", True),
        ("QUIT", True),
    ]
    (msg,) = tls_smtpd.messages
    assert msg.tls
    assert msg.content == RAW


async def test_starttls_auto_continues_in_plaintext_when_not_offered(
    smtpd: RecordingServer, client_tls_context: ssl.SSLContext
) -> None:
    async with client_for(smtpd, tls_context=client_tls_context) as client:
        assert not is_tls(client)
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert "STARTTLS" not in smtpd.verbs
    assert not smtpd.messages[0].tls


async def test_starttls_forced(
    tls_smtpd: RecordingServer, client_tls_context: ssl.SSLContext
) -> None:
    async with client_for(tls_smtpd, start_tls=True, tls_context=client_tls_context) as client:
        assert is_tls(client)
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert tls_smtpd.verbs[:3] == ["EHLO", "STARTTLS", "EHLO"]
    assert tls_smtpd.messages[0].tls


async def test_starttls_forced_not_offered(
    smtpd: RecordingServer, client_tls_context: ssl.SSLContext
) -> None:
    client = client_for(smtpd, start_tls=True, tls_context=client_tls_context)
    with pytest.raises(SMTPException) as info:
        await client.connect()
    assert info.value.args == ("SMTP STARTTLS extension not supported by server.",)
    assert not client.is_connected
    assert "STARTTLS" not in smtpd.verbs
    assert "MAIL" not in smtpd.verbs


async def test_send_starttls_forced_not_offered_sends_nothing(
    smtpd: RecordingServer, client_tls_context: ssl.SSLContext
) -> None:
    with pytest.raises(SMTPException) as info:
        await fastsmtp.send(
            RAW,
            sender="a@example.com",
            recipients=["b@example.com"],
            hostname=smtpd.host,
            port=smtpd.port,
            start_tls=True,
            tls_context=client_tls_context,
            timeout=5,
        )
    assert info.value.args == ("SMTP STARTTLS extension not supported by server.",)
    assert smtpd.messages == []
    assert "MAIL" not in smtpd.verbs


async def test_starttls_off(tls_smtpd: RecordingServer) -> None:
    async with client_for(tls_smtpd, start_tls=False) as client:
        assert not is_tls(client)
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
        assert client.supports_extension("starttls")
    assert "STARTTLS" not in tls_smtpd.verbs
    assert not tls_smtpd.messages[0].tls


async def test_starttls_required_by_server(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial, client_tls_context: ssl.SSLContext
) -> None:
    server = smtpd_factory(starttls_context=tls.server_context(), require_starttls=True)
    await fastsmtp.send(
        RAW,
        sender="a@example.com",
        recipients=["b@example.com"],
        hostname=server.host,
        port=server.port,
        tls_context=client_tls_context,
        timeout=5,
    )
    assert server.messages[0].tls


# --- explicit starttls() -----------------------------------------------------------------


async def test_explicit_starttls_resets_state(
    tls_smtpd: RecordingServer, client_tls_context: ssl.SSLContext
) -> None:
    async with client_for(tls_smtpd, start_tls=False) as client:
        await client.ehlo()
        assert client.supports_extension("starttls")
        response = await client.starttls(tls_context=client_tls_context)
        assert response.code == 220
        assert is_tls(client)
        assert client.is_ehlo_or_helo_needed
        assert client.esmtp_extensions == {}
        assert client.last_ehlo_response is None
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
        assert not client.supports_extension("starttls")
        with pytest.raises(SMTPException) as info:
            await client.starttls()
        assert info.value.args == ("Connection already using TLS",)
    assert tls_smtpd.verbs[:4] == ["EHLO", "STARTTLS", "EHLO", "MAIL"]


async def test_explicit_starttls_does_ehlo_first(
    tls_smtpd: RecordingServer, client_tls_context: ssl.SSLContext
) -> None:
    async with client_for(tls_smtpd, start_tls=False) as client:
        await client.starttls(tls_context=client_tls_context)
        assert is_tls(client)
    assert tls_smtpd.verbs[:2] == ["EHLO", "STARTTLS"]


async def test_explicit_starttls_not_offered(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        with pytest.raises(SMTPException) as info:
            await client.starttls()
        assert info.value.args == ("SMTP STARTTLS extension not supported by server.",)
    assert "STARTTLS" not in smtpd.verbs


async def test_explicit_starttls_with_cert_bundle(
    tls_smtpd: RecordingServer, cert_bundle: str
) -> None:
    async with client_for(tls_smtpd, start_tls=False) as client:
        await client.starttls(cert_bundle=cert_bundle)
        assert is_tls(client)
        assert client.cert_bundle == cert_bundle


async def test_explicit_starttls_validate_certs_false(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial
) -> None:
    server = smtpd_factory(starttls_context=tls.server_context(tls.untrusted_cert))
    async with client_for(server, start_tls=False) as client:
        await client.starttls(validate_certs=False)
        assert is_tls(client)
        assert client.validate_certs is False


# --- implicit TLS --------------------------------------------------------------------------


async def test_implicit_tls(
    implicit_tls_smtpd: RecordingServer, client_tls_context: ssl.SSLContext
) -> None:
    async with client_for(implicit_tls_smtpd, use_tls=True, tls_context=client_tls_context) as c:
        assert is_tls(c)
        await c.sendmail("a@example.com", ["b@example.com"], RAW)
    (conn,) = implicit_tls_smtpd.connections
    assert "STARTTLS" not in conn.verbs
    assert all(cmd.tls for cmd in conn.commands)
    assert implicit_tls_smtpd.messages[0].content == RAW


async def test_implicit_tls_with_send_and_cert_bundle(
    implicit_tls_smtpd: RecordingServer, cert_bundle: str
) -> None:
    errors, _ = await fastsmtp.send(
        RAW,
        sender="a@example.com",
        recipients=["b@example.com"],
        hostname=implicit_tls_smtpd.host,
        port=implicit_tls_smtpd.port,
        use_tls=True,
        cert_bundle=cert_bundle,
        timeout=5,
    )
    assert errors == {}
    assert implicit_tls_smtpd.messages[0].tls


async def test_implicit_tls_untrusted_cert_fails(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial
) -> None:
    server = smtpd_factory(implicit_tls_context=tls.server_context(tls.untrusted_cert))
    client = client_for(server, use_tls=True)
    with pytest.raises(SMTPConnectError) as info:
        await client.connect()
    assert info.value.message.startswith(f"Error connecting to 127.0.0.1 on port {server.port}: ")
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.message
    assert not client.is_connected
    await server.wait_all_closed()
    assert server.verbs == []


async def test_implicit_tls_wrong_hostname_fails(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial, cert_bundle: str
) -> None:
    server = smtpd_factory(implicit_tls_context=tls.server_context(tls.other_cert))
    client = client_for(server, use_tls=True, cert_bundle=cert_bundle)
    with pytest.raises(SMTPConnectError) as info:
        await client.connect()
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.message
    await server.wait_all_closed()
    assert server.verbs == []


async def test_implicit_tls_validate_certs_false(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial
) -> None:
    server = smtpd_factory(implicit_tls_context=tls.server_context(tls.untrusted_cert))
    async with client_for(server, use_tls=True, validate_certs=False) as client:
        assert is_tls(client)
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert server.messages[0].tls


async def test_implicit_tls_against_plain_server_fails(smtpd: RecordingServer) -> None:
    client = client_for(smtpd, use_tls=True, validate_certs=False, timeout=2)
    with pytest.raises(SMTPConnectError):
        await client.connect()
    assert not client.is_connected


# --- STARTTLS certificate failures --------------------------------------------------------


async def test_starttls_untrusted_cert_fails(smtpd_factory: SmtpdFactory, tls: TLSMaterial) -> None:
    server = smtpd_factory(starttls_context=tls.server_context(tls.untrusted_cert))
    client = client_for(server)
    with pytest.raises(ssl.SSLError) as info:
        await client.connect()
    assert isinstance(info.value, ssl.SSLCertVerificationError)
    assert not client.is_connected
    await server.wait_all_closed()
    assert server.verbs == ["EHLO", "STARTTLS"]
    assert not any(cmd.tls for cmd in server.commands)


async def test_starttls_wrong_hostname_fails(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial, cert_bundle: str
) -> None:
    server = smtpd_factory(starttls_context=tls.server_context(tls.other_cert))
    client = client_for(server, start_tls=True, cert_bundle=cert_bundle)
    with pytest.raises(ssl.SSLCertVerificationError):
        await client.connect()
    assert not client.is_connected
    await server.wait_all_closed()
    assert server.verbs == ["EHLO", "STARTTLS"]


async def test_starttls_validate_certs_false(smtpd_factory: SmtpdFactory, tls: TLSMaterial) -> None:
    server = smtpd_factory(starttls_context=tls.server_context(tls.untrusted_cert))
    async with client_for(server, validate_certs=False) as client:
        assert is_tls(client)
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert server.messages[0].tls


# --- client certificates -----------------------------------------------------------------


def client_subject(server: RecordingServer) -> dict[str, str]:
    (conn,) = server.connections
    assert conn.peercert is not None
    return {k: v for rdn in conn.peercert["subject"] for k, v in rdn}


async def test_client_cert_implicit_tls(
    smtpd_factory: SmtpdFactory,
    tls: TLSMaterial,
    cert_bundle: str,
    client_cert_files: ClientCertFiles,
) -> None:
    server = smtpd_factory(implicit_tls_context=tls.server_context(want_client_cert=True))
    async with client_for(
        server,
        use_tls=True,
        cert_bundle=cert_bundle,
        client_cert=client_cert_files.cert,
        client_key=client_cert_files.key,
    ) as client:
        await client.noop()
    assert client_subject(server)["commonName"] == "fastsmtp test client"


async def test_client_cert_starttls_combined_pem(
    smtpd_factory: SmtpdFactory,
    tls: TLSMaterial,
    cert_bundle: str,
    client_cert_files: ClientCertFiles,
) -> None:
    server = smtpd_factory(starttls_context=tls.server_context(want_client_cert=True))
    async with client_for(
        server, start_tls=True, cert_bundle=cert_bundle, client_cert=client_cert_files.combined
    ) as client:
        await client.noop()
    assert client_subject(server)["commonName"] == "fastsmtp test client"


async def test_no_client_cert_by_default(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial, cert_bundle: str
) -> None:
    server = smtpd_factory(implicit_tls_context=tls.server_context(want_client_cert=True))
    async with client_for(server, use_tls=True, cert_bundle=cert_bundle) as client:
        await client.noop()
    (conn,) = server.connections
    assert not conn.peercert
