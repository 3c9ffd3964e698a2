"""The fleet examples (``# example-needs: redis``) run as a user would: a real
redis-server, a STARTTLS submission server (aiosmtpd, trustme certificate, AUTH only after
TLS), and for examples/fleet_taskiq.py a real ``taskiq worker`` process; the server must
receive exactly the messages each example says, once each."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests._servers import RecordingServer, ServerConfig

from .conftest import need
from .workers import ROOT, Worker

EXAMPLES = ROOT / "examples"
if not EXAMPLES.is_dir():  # cibuildwheel tests the wheel with a copy of tests/ alone
    pytest.skip("examples/ is not beside tests/ here", allow_module_level=True)


@dataclass
class Submission:
    server: RecordingServer
    env: dict[str, str]


@pytest.fixture
def submission(redis_url: str, tmp_path: Path) -> Iterator[Submission]:
    """The server, and the environment that points an example (or a worker) at it."""
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
        yield Submission(server, env)


def expected_messages(example: Path) -> int:
    source = example.read_text()
    assert "# example-needs: redis" in source
    found = re.search(r"^# expect-messages: (\d+)$", source, re.M)
    assert found is not None
    return int(found.group(1))


def run_example(example: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, str(example)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_fleet_send_once_example(submission: Submission) -> None:
    example = EXAMPLES / "fleet_send_once.py"
    out = run_example(example, submission.env)
    messages = submission.server.messages
    assert len(messages) == expected_messages(example)
    # Three different invoices, each once (the repeated send was answered by the ledger).
    assert sorted(m.rcpt_tos[0] for m in messages) == [
        "client0@example.org",
        "client1@example.org",
        "client2@example.org",
    ]
    assert "again: sent sent" in out
    assert out.count(" new sent ") == 3


@pytest.mark.timeout(180)
def test_fleet_taskiq_example(submission: Submission) -> None:
    need("taskiq", "test")
    need("taskiq_redis", "test")
    example = EXAMPLES / "fleet_taskiq.py"
    worker = Worker(
        "example",
        [sys.executable, "-m", "taskiq", "worker", "fleet_taskiq:broker", "--workers", "1",
         "--ack-type", "when_saved", "--log-level", "INFO"],
        {**submission.env, "PYTHONPATH": str(EXAMPLES)},
        ready_text="Listening started",
    )  # fmt: skip
    try:
        worker.wait_ready()
        out = run_example(example, submission.env)
    finally:
        worker.stop()
    messages = submission.server.messages
    assert len(messages) == expected_messages(example), worker.log()
    assert sorted(m.rcpt_tos[0] for m in messages) == [
        "member0@example.org",
        "member1@example.org",
        "member2@example.org",
    ]
    assert out.count(" new sent ") == 3
