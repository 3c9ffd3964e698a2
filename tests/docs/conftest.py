"""Fixtures for the documentation tests: the submission servers the examples send to.

Every ``examples/*.py`` script takes its server from the environment (``SMTP_HOST``,
``SMTP_PORT`` for STARTTLS, ``SMTP_TLS_PORT`` for implicit TLS, ``SMTP_USERNAME``,
``SMTP_PASSWORD``) and verifies TLS normally; :func:`submission` starts one aiosmtpd server of
each kind on 127.0.0.1 with a trustme certificate and gives the environment that points an
example at them, with ``SSL_CERT_FILE`` naming the trustme CA (which
``ssl.create_default_context()`` honours).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests._servers import AuthAttempt, ReceivedMessage, RecordingServer, ServerConfig

USERNAME = "app@example.com"
PASSWORD = "app-password"

#: The variables an example reads; the harness sets them all (and never inherits them).
EXAMPLE_VARIABLES = (
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_TLS_PORT",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


@dataclass
class Submission:
    """A STARTTLS server (AUTH only after TLS, as real submission servers) and an implicit-TLS
    one, both accepting ``USERNAME``/``PASSWORD`` with AUTH PLAIN and LOGIN."""

    starttls: RecordingServer
    implicit_tls: RecordingServer
    ca_file: Path

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Every message either server accepted, in order per server."""
        return self.starttls.messages + self.implicit_tls.messages

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        """Every AUTH exchange either server saw."""
        return self.starttls.auth_attempts + self.implicit_tls.auth_attempts

    def environ(self) -> dict[str, str]:
        """The environment an example runs with: this process's, pointed at the servers."""
        env = {k: v for k, v in os.environ.items() if k not in EXAMPLE_VARIABLES}
        env.update(
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(self.starttls.port),
            SMTP_TLS_PORT=str(self.implicit_tls.port),
            SMTP_USERNAME=USERNAME,
            SMTP_PASSWORD=PASSWORD,
            SSL_CERT_FILE=str(self.ca_file),
        )
        return env


@pytest.fixture(scope="session")
def docs_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """A trustme CA and its certificate as a PEM file (for ``SSL_CERT_FILE``)."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("docs-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ca, path


@pytest.fixture
def submission(docs_ca: tuple[trustme.CA, Path]) -> Iterator[Submission]:
    """Both servers, fresh for each test (so each example's messages are counted alone)."""
    ca, ca_file = docs_ca
    cert = ca.issue_cert("localhost", "127.0.0.1")

    def context() -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        return ctx

    def server(**tls: ssl.SSLContext | bool) -> RecordingServer:
        config = ServerConfig(auth_mechanisms=("PLAIN", "LOGIN"), users={USERNAME: PASSWORD})
        for name, value in tls.items():
            setattr(config, name, value)
        return RecordingServer(config)

    starttls = server(starttls_context=context(), auth_require_tls=True)
    implicit_tls = server(implicit_tls_context=context())
    with starttls, implicit_tls:
        yield Submission(starttls, implicit_tls, ca_file)
