"""Fixtures for the end-to-end client tests: TLS material made with trustme, recording servers.

All fixtures are synchronous (the suite runs ``async def`` tests itself, without
pytest-asyncio); servers run in their own threads and are always stopped at teardown.
"""

from __future__ import annotations

import gc
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests._servers import RecordingServer, ServerConfig


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect garbage after each test so a leaked socket is reported by the test that leaked
    it (as a ResourceWarning turned error), not by whichever test happens to run a GC later."""
    yield
    gc.collect()


@dataclass
class TLSMaterial:
    ca: trustme.CA
    server_cert: trustme.LeafCert  # for localhost and 127.0.0.1
    other_cert: trustme.LeafCert  # valid chain, but for otherhost.example only
    client_cert: trustme.LeafCert
    untrusted_ca: trustme.CA
    untrusted_cert: trustme.LeafCert  # for localhost, issued by a CA nobody trusts

    def server_context(
        self, cert: trustme.LeafCert | None = None, *, want_client_cert: bool = False
    ) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (cert or self.server_cert).configure_cert(ctx)
        if want_client_cert:
            self.ca.configure_trust(ctx)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(ctx)
        return ctx


@pytest.fixture(scope="session")
def tls() -> TLSMaterial:
    ca = trustme.CA()
    untrusted_ca = trustme.CA()
    return TLSMaterial(
        ca=ca,
        server_cert=ca.issue_cert("localhost", "127.0.0.1"),
        other_cert=ca.issue_cert("otherhost.example"),
        client_cert=ca.issue_cert("client@fastsmtp.test", common_name="fastsmtp test client"),
        untrusted_ca=untrusted_ca,
        untrusted_cert=untrusted_ca.issue_cert("localhost", "127.0.0.1"),
    )


@pytest.fixture
def client_tls_context(tls: TLSMaterial) -> ssl.SSLContext:
    """A client context that trusts the test CA (hostname checking on)."""
    return tls.client_context()


@pytest.fixture
def cert_bundle(tls: TLSMaterial, tmp_path: Path) -> str:
    """Path of a PEM file holding the test CA certificate."""
    path = tmp_path / "ca.pem"
    tls.ca.cert_pem.write_to_path(str(path))
    return str(path)


@dataclass
class ClientCertFiles:
    cert: str
    key: str
    combined: str


@pytest.fixture
def client_cert_files(tls: TLSMaterial, tmp_path: Path) -> ClientCertFiles:
    leaf = tls.client_cert
    cert = tmp_path / "client.crt"
    key = tmp_path / "client.key"
    combined = tmp_path / "client.pem"
    with cert.open("wb") as f:
        for blob in leaf.cert_chain_pems:
            f.write(blob.bytes())
    leaf.private_key_pem.write_to_path(str(key))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(combined))
    return ClientCertFiles(str(cert), str(key), str(combined))


SmtpdFactory = Callable[..., RecordingServer]


@pytest.fixture
def smtpd_factory(tmp_path: Path) -> Iterator[SmtpdFactory]:
    """``smtpd_factory(**ServerConfig fields, unix=False)`` starts a recording server."""
    servers: list[RecordingServer] = []

    def start(*, unix: bool = False, **config: Any) -> RecordingServer:
        path = tmp_path / f"smtpd{len(servers)}.sock" if unix else None
        server = RecordingServer(ServerConfig(**config), unix_path=path)
        server.start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def smtpd(smtpd_factory: SmtpdFactory) -> RecordingServer:
    """A plain recording server: SIZE, 8BITMIME, SMTPUTF8, no TLS, no AUTH."""
    return smtpd_factory()


@pytest.fixture
def tls_smtpd(smtpd_factory: SmtpdFactory, tls: TLSMaterial) -> RecordingServer:
    """A server offering STARTTLS with a certificate for localhost/127.0.0.1."""
    return smtpd_factory(starttls_context=tls.server_context())


@pytest.fixture
def implicit_tls_smtpd(smtpd_factory: SmtpdFactory, tls: TLSMaterial) -> RecordingServer:
    """A server speaking TLS from the first byte (like port 465)."""
    return smtpd_factory(implicit_tls_context=tls.server_context())


@pytest.fixture
def auth_smtpd(smtpd_factory: SmtpdFactory) -> RecordingServer:
    """Plaintext loopback server offering CRAM-MD5, LOGIN, PLAIN and XOAUTH2."""
    return smtpd_factory(
        auth_mechanisms=("CRAM-MD5", "LOGIN", "PLAIN", "XOAUTH2"),
        users={"alice": "s3cret", "jörg": "pässword"},
        oauth_tokens={"alice": "tok-123"},
    )
