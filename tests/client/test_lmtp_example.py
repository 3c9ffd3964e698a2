"""examples/lmtp_deliver.py (``# example-needs: lmtp``) run as a user would, against
aiosmtpd's LMTP server whose handler refuses one recipient at RCPT and finds another's
mailbox full after the message: the example must report each recipient's own fate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from tests.client.test_lmtp import Handler, TCPLMTPController

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lmtp_deliver.py"
if not EXAMPLE.exists():  # cibuildwheel tests the wheel with a copy of tests/ alone
    pytest.skip("examples/ is not beside tests/ here", allow_module_level=True)


class EnhancedHandler(Handler):
    """Also advertises ENHANCEDSTATUSCODES (RFC 2034), as Dovecot's LMTP does."""

    async def handle_EHLO(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        responses.insert(-1, "250-ENHANCEDSTATUSCODES")
        return responses


def test_lmtp_deliver_example() -> None:
    source = EXAMPLE.read_text()
    expected = re.search(r"^# expect-messages: (\d+)$", source, re.M)
    assert expected is not None and "# example-needs: lmtp" in source
    handler = EnhancedHandler(
        {"bob@example.com": "550 5.1.1 <bob@example.com> User doesn't exist"},
        {"carol@example.com": "452 4.2.2 <carol@example.com> Mailbox is full"},
    )
    controller = TCPLMTPController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        env = dict(os.environ, LMTP_HOST="127.0.0.1", LMTP_PORT=str(controller.port))
        done = subprocess.run(
            [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        controller.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert [rcpt for rcpt, _ in handler.delivered] == ["alice@example.com"]
    assert len(handler.delivered) == int(expected.group(1))
    out = done.stdout.splitlines()
    assert "alice@example.com delivered: 250 Q0id" in out
    assert "bob@example.com refused: 550 5.1.1 permanent" in out
    assert "carol@example.com refused: 452 4.2.2 temporary: try again later" in out
    assert out[-1] == "partially_sent"
