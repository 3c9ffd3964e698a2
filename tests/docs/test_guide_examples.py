"""The guides' examples that need more than the examples harness gives, and what the guides
claim about them: a private CA through ``cert_bundle``, verification failing without it, OAuth
against a server offering XOAUTH2, and the AUTH exchange redacted in the DEBUG log.

Each script runs as a reader would run it (a subprocess of this interpreter), against
aiosmtpd on 127.0.0.1 with a trustme certificate (fixtures in ``conftest.py``).
"""

from __future__ import annotations

import base64
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests._servers import RecordingServer, ServerConfig

from .conftest import PASSWORD, USERNAME, Submission

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if not EXAMPLES.exists():  # cibuildwheel tests the wheel with a copy of tests/ alone
    pytest.skip("examples/ is not beside tests/ here", allow_module_level=True)
TOKEN = "ya29.a-token-for-the-test"


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=EXAMPLES,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_tls_with_cert_bundle_only(submission: Submission) -> None:
    """``SMTP_CA_FILE`` goes to ``cert_bundle``/``cafile``: the private CA is trusted through
    it alone (no ``SSL_CERT_FILE``)."""
    env = submission.environ()
    env["SMTP_CA_FILE"] = env.pop("SSL_CERT_FILE")
    done = run("tls_connect.py", env)
    assert done.returncode == 0, done.stderr
    assert len(submission.messages) == 3
    assert all(m.tls for m in submission.messages)


def test_tls_unknown_ca_is_refused(submission: Submission) -> None:
    """Without the CA, verification fails on the STARTTLS handshake (a raw
    ``ssl.SSLCertVerificationError``, as the TLS guide says) and nothing is sent."""
    env = submission.environ()
    del env["SSL_CERT_FILE"]
    done = run("tls_connect.py", env)
    assert done.returncode != 0
    assert "SSLCertVerificationError" in done.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr
    assert submission.messages == []
    assert "AUTH" not in submission.starttls.verbs


@pytest.fixture
def oauth_server(docs_ca: tuple[trustme.CA, Path]) -> Iterator[RecordingServer]:
    """A submission server offering XOAUTH2 after STARTTLS, accepting ``TOKEN``."""
    ca, _ = docs_ca
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    config = ServerConfig(
        auth_mechanisms=("XOAUTH2",),
        oauth_tokens={USERNAME: TOKEN},
        starttls_context=context,
        auth_require_tls=True,
    )
    with RecordingServer(config) as server:
        yield server


def test_oauth_example(
    oauth_server: RecordingServer, submission: Submission, docs_ca: tuple[trustme.CA, Path]
) -> None:
    env = submission.environ()
    env.update(SMTP_PORT=str(oauth_server.port), SMTP_OAUTH_TOKEN=TOKEN)
    done = run("oauth_token.py", env)
    assert done.returncode == 0, done.stderr
    assert "asked 1 time(s)" in done.stdout
    assert [m.tls for m in oauth_server.messages] == [True]
    assert [(a.mechanism, a.success) for a in oauth_server.auth_attempts] == [("XOAUTH2", True)]


def test_oauth_example_rejected_token(
    oauth_server: RecordingServer, submission: Submission
) -> None:
    """A token the server rejects is asked for again, once (the source here returns the same
    stale one), then the error is raised: nothing is sent."""
    env = submission.environ()
    env.update(SMTP_PORT=str(oauth_server.port), SMTP_OAUTH_TOKEN="stale")
    done = run("oauth_token.py", env)
    assert done.returncode != 0
    assert "SMTPAuthenticationError" in done.stderr
    assert oauth_server.messages == []
    assert [a.success for a in oauth_server.auth_attempts] == [False, False]
    assert "stale" not in done.stderr


def test_logging_example_redacts_auth(submission: Submission) -> None:
    done = run("logging_debug.py", submission.environ())
    assert done.returncode == 0, done.stderr
    log = done.stderr
    assert "fastsmtp DEBUG >> b'STARTTLS\\r\\n'" in log
    assert "[redacted]" in log
    plain = base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, plain, base64.b64encode(PASSWORD.encode()).decode()):
        assert secret not in log
    assert len(submission.messages) == 1


def test_otel_example_prints_spans(submission: Submission) -> None:
    """One ``smtp send`` CLIENT span per message, without addresses."""
    done = run("otel_pool.py", submission.environ())
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"name": "smtp send"') == 2
    assert done.stdout.count('"smtp.outcome": "sent"') == 2
    assert "alice@example.com" not in done.stdout
    assert len(submission.messages) == 2


def test_proxy_example_through_microsocks(submission: Submission, tmp_path: Path) -> None:
    """The proxy guide's example through a real SOCKS5 proxy with a password: STARTTLS and
    AUTH with the SMTP server through the tunnel, the proxy's password in no output."""
    from tests.proxy.conftest import PASSWORD as PROXY_PASSWORD
    from tests.proxy.conftest import USER as PROXY_USER
    from tests.proxy.conftest import unavailable
    from tests.proxy.daemons import DaemonUnavailable, start_microsocks

    try:
        proxy = start_microsocks(tmp_path / "microsocks", PROXY_USER, PROXY_PASSWORD)
    except DaemonUnavailable as exc:
        unavailable(f"proxy daemon unavailable: {exc}")
    try:
        env = submission.environ()
        env["SMTP_PROXY"] = proxy.url("socks5h")
        done = run("proxy_send.py", env)
        assert done.returncode == 0, done.stderr
        assert [m.tls for m in submission.messages] == [True]

        env["SMTP_PROXY"] = proxy.url("socks5h", password="wrong-" + PROXY_PASSWORD)
        refused = run("proxy_send.py", env)
    finally:
        proxy.stop()
    assert refused.returncode == 1
    assert "could not connect" in refused.stderr and "proxy refused" in refused.stderr
    assert PROXY_PASSWORD not in refused.stderr + refused.stdout
    assert len(submission.messages) == 1
