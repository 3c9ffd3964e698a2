"""``python -m fastsmtp demo``: send real mail through an embedded local server.

Starts an aiosmtpd server on 127.0.0.1 (an OS-chosen port) inside this process, sends
four messages through fastsmtp -- plain text, HTML with a text alternative, one with
an attachment, one to several recipients -- and prints what the server received.
"""

from __future__ import annotations

import asyncio
import time
from email import message_from_bytes
from email.message import EmailMessage
from typing import Any, cast

from . import _speedups
from .smtp import SMTP


class _Inbox:
    """aiosmtpd handler that keeps every envelope it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(
            (envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
        )
        return "250 Message accepted for delivery"


def _messages() -> list[EmailMessage]:
    plain = EmailMessage()
    plain["From"] = "demo@example.com"
    plain["To"] = "alice@example.com"
    plain["Subject"] = "Plain text from fastsmtp"
    plain.set_content("Hello Alice,\n\nthis is a plain text message.\n.\nA line with a dot.\n")

    html = EmailMessage()
    html["From"] = "demo@example.com"
    html["To"] = "bob@example.com"
    html["Subject"] = "HTML with a text alternative"
    html.set_content("Hello Bob, this is the text part.")
    html.add_alternative("<p>Hello Bob, this is the <b>HTML</b> part.</p>", subtype="html")

    attachment = EmailMessage()
    attachment["From"] = "demo@example.com"
    attachment["To"] = "carol@example.com"
    attachment["Subject"] = "A message with an attachment"
    attachment.set_content("The report is attached.")
    attachment.add_attachment(
        b"id,value\n1,42\n2,43\n", maintype="text", subtype="csv", filename="report.csv"
    )

    group = EmailMessage()
    group["From"] = "demo@example.com"
    group["To"] = "dave@example.com, erin@example.com"
    group["Cc"] = "frank@example.com"
    group["Bcc"] = "grace@example.com"
    group["Subject"] = "One message, four recipients"
    group.set_content("Dave, Erin and Frank see each other; Grace is in Bcc.")
    return [plain, html, attachment, group]


async def _send_all(port: int) -> float:
    started = time.perf_counter()
    async with SMTP(hostname="127.0.0.1", port=port, start_tls=False) as client:
        for message in _messages():
            refused, reply = await client.send_message(message)
            print(f"  sent {message['Subject']!r}: {reply!r}, refused: {refused or 'none'}")
    return time.perf_counter() - started


def run_demo() -> int:
    """Run the demo; returns the exit status."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        print('The demo needs aiosmtpd: pip install "fastsmtplib[demo]"')
        return 1

    class LocalController(Controller):
        def _trigger_server(self) -> None:
            # Port 0 lets the OS choose; learn the real port before aiosmtpd's
            # start-up check connects to it.
            server = cast(asyncio.Server, self.server)
            self.port = server.sockets[0].getsockname()[1]
            super()._trigger_server()  # type: ignore[no-untyped-call]

    inbox = _Inbox()
    controller = LocalController(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        port = controller.port
        print(f"fastsmtp demo: aiosmtpd listening on 127.0.0.1:{port} "
              f"(core: {_speedups.IMPLEMENTATION})")
        elapsed = asyncio.run(_send_all(port))
    finally:
        controller.stop()
    print(f"\nThe server received {len(inbox.envelopes)} messages:")
    for mail_from, rcpt_tos, content in inbox.envelopes:
        parsed = message_from_bytes(content)
        parts = [part.get_content_type() for part in parsed.walk() if not part.is_multipart()]
        print(f"- from {mail_from} to {', '.join(rcpt_tos)}")
        print(f"  subject: {parsed['Subject']!r}; {len(content)} bytes; parts: {', '.join(parts)}")
        print(f"  Bcc header present: {'Bcc' in parsed}")
    print(f"\nSent {len(inbox.envelopes)} messages in {elapsed * 1000:.1f} ms over one connection.")
    return 0 if len(inbox.envelopes) == 4 else 1
