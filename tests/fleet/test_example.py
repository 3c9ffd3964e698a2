"""examples/fleet_send_once.py (``# example-needs: redis``) run as a user would: a real
redis-server, and a STARTTLS submission server (aiosmtpd, trustme certificate, AUTH only
after TLS) that must receive exactly the messages the example says, once each."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
from pathlib import Path

import trustme

from tests._servers import RecordingServer, ServerConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet_send_once.py"


def test_fleet_send_once_example(redis_url: str, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    config = ServerConfig(
        auth_mechanisms=("PLAIN", "LOGIN"),
        users={"app@example.com": "app-password"},
        starttls_context=context,
        auth_require_tls=True,
    )
    source = EXAMPLE.read_text()
    expected = re.search(r"^# expect-messages: (\d+)$", source, re.M)
    assert expected is not None and "# example-needs: redis" in source
    with RecordingServer(config) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "SSL_"))}
        env.update(
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=str(server.port),
            SMTP_USERNAME="app@example.com",
            SMTP_PASSWORD="app-password",
            SSL_CERT_FILE=str(ca_file),
            REDIS_URL=redis_url,
        )
        done = subprocess.run(
            [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        messages = server.messages
    assert len(messages) == int(expected.group(1))
    # Three different invoices, each once (the repeated send was answered by the ledger).
    assert sorted(m.rcpt_tos[0] for m in messages) == [
        "client0@example.org",
        "client1@example.org",
        "client2@example.org",
    ]
    assert "again: sent sent" in done.stdout
    assert done.stdout.count(" new sent ") == 3
