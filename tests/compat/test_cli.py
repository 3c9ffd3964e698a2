"""``python -m fastsmtp`` behaves like ``python -m aiosmtplib`` (compat-api.md §4, CLI).

The test drives the interactive CLI through stdin against a local aiosmtpd server. It was
checked against ``python -m aiosmtplib`` by running it with ``FASTSMTP_CLI_MODULE=aiosmtplib``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

CLI_MODULE = os.environ.get("FASTSMTP_CLI_MODULE", "fastsmtp")


class RecordingHandler:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.envelopes.append((envelope.mail_from or "", list(envelope.rcpt_tos), content))
        return "250 2.0.0 Message accepted for delivery"


class LoopbackController(Controller):
    """aiosmtpd on 127.0.0.1 with an OS-chosen port (``self.port`` set once listening)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@pytest.fixture
def server() -> Iterator[tuple[LoopbackController, RecordingHandler]]:
    handler = RecordingHandler()
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def run_cli(stdin: str) -> subprocess.CompletedProcess[str]:
    env: dict[str, Any] = dict(os.environ)
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", CLI_MODULE],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_interactive_send(server: tuple[LoopbackController, RecordingHandler]) -> None:
    controller, handler = server
    stdin = f"127.0.0.1\n{controller.port}\nfrom@example.com\nto@example.com\nSubject: hi\n\nbody\n"
    result = run_cli(stdin)
    assert result.returncode == 0, result.stderr

    message = "Subject: hi\n\nbody"
    expected_prefix = (
        "SMTP server hostname [localhost]: "
        "SMTP server port [25]: "
        "From: "
        "To: "
        "Enter message, end with ^D:\n"
        f"Message length (bytes): {len(message.encode('utf-8'))}\n"
        "Server response: "
    )
    assert result.stdout.startswith(expected_prefix), result.stdout
    response = result.stdout[len(expected_prefix) :]
    assert re.fullmatch(r"2\.0\.0 Message accepted for delivery\n", response), response

    assert len(handler.envelopes) == 1
    sender, recipients, content = handler.envelopes[0]
    assert sender == "from@example.com"
    assert recipients == ["to@example.com"]
    assert content.replace(b"\r\n", b"\n").rstrip(b"\n") == message.encode()


def test_several_recipients(server: tuple[LoopbackController, RecordingHandler]) -> None:
    controller, handler = server
    stdin = f"127.0.0.1\n{controller.port}\nfrom@example.com\na@example.com,b@example.com\nhi\n"
    result = run_cli(stdin)
    assert result.returncode == 0, result.stderr
    assert "Message length (bytes): 2\n" in result.stdout
    assert handler.envelopes[0][1] == ["a@example.com", "b@example.com"]
