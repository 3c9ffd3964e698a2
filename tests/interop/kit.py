"""Reading what the real servers delivered, and what Postfix logged about a session."""

from __future__ import annotations

import asyncio
import copy
import email.generator
import email.policy
import io
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from .servers import MailServers

__all__ = [
    "TRACE_FIELDS",
    "Delivered",
    "Maildir",
    "expected_bytes",
    "parse_delivered",
    "session_summary",
    "wait_until",
]

#: Header fields the delivery adds above the message (RFC 5321 section 4.4 trace fields,
#: Postfix's X-Original-To and Delivered-To); everything after them is what was sent.
TRACE_FIELDS = frozenset({"return-path", "received", "x-original-to", "delivered-to"})


@dataclass(frozen=True)
class Delivered:
    """One delivered Maildir file, split into the trace fields and the message."""

    name: str
    trace: list[tuple[str, str]]  # (lowercase name, unfolded value), top first
    content: bytes  # the message as sent, with LF line ends (as Maildir stores it)

    @property
    def recipient(self) -> str:
        """The Delivered-To address ("" if none)."""
        return next((value for name, value in self.trace if name == "delivered-to"), "")

    @property
    def return_path(self) -> str:
        return next((value for name, value in self.trace if name == "return-path"), "")

    def header(self, name: str) -> str | None:
        """The first ``name`` field of the message itself (unfolded), or None."""
        match = re.search(
            rb"^" + re.escape(name.encode()) + rb":[ \t]*(.*(?:\n[ \t].*)*)",
            self.content.split(b"\n\n", 1)[0],
            re.IGNORECASE | re.MULTILINE,
        )
        return None if match is None else re.sub(rb"\n[ \t]+", b" ", match[1]).decode()


def parse_delivered(name: str, raw: bytes) -> Delivered:
    """Split a delivered file: the trace fields at the top, then the message."""
    trace: list[tuple[str, str]] = []
    position = 0
    while True:
        match = re.match(
            rb"([!-9;-~]+):[ \t]*(.*(?:\n[ \t].*)*)\n", raw[position : position + 8192]
        )
        if match is None or match[1].decode().lower() not in TRACE_FIELDS:
            break
        value = re.sub(rb"\n[ \t]+", b" ", match[2]).decode("utf-8")
        trace.append((match[1].decode().lower(), value))
        position += match.end()
    return Delivered(name, trace, raw[position:])


def expected_bytes(message: Message | bytes) -> bytes:
    """What the Maildir file holds after the trace fields for a message sent as
    ``message``: bytes as given, or a Message as the stdlib flattens it for SMTP
    (``policy.SMTP``, without Bcc/Resent-Bcc), with LF line ends."""
    if isinstance(message, Message):
        stripped = copy.copy(message)
        del stripped["Bcc"]
        del stripped["Resent-Bcc"]
        buffer = io.BytesIO()
        email.generator.BytesGenerator(buffer, policy=email.policy.SMTP).flatten(stripped)
        message = buffer.getvalue()
    return message.replace(b"\r\n", b"\n")


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` (an external process's progress) until true, at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Maildir:
    """The delivered messages of a Maildir, read incrementally (a file in ``new/`` is
    complete once it is there: the delivery agent renames it from ``tmp/``)."""

    def __init__(self, path: Path, servers: MailServers | None = None) -> None:
        self.path = path
        self.servers = servers
        self._seen: dict[str, Delivered] = {}

    def scan(self) -> list[Delivered]:
        """Every message delivered so far."""
        try:
            names = [p.name for p in (self.path / "new").iterdir()]
        except FileNotFoundError:
            names = []
        for name in names:
            if name not in self._seen:
                raw = (self.path / "new" / name).read_bytes()
                self._seen[name] = parse_delivered(name, raw)
        return list(self._seen.values())

    def for_recipients(self, recipients: Collection[str]) -> list[Delivered]:
        wanted = {r.lower() for r in recipients}
        return [d for d in self.scan() if d.recipient.lower() in wanted]

    async def wait_for(
        self, recipients: Collection[str], count: int | None = None, timeout: float = 30.0
    ) -> list[Delivered]:
        """The deliveries to ``recipients`` once there are ``count`` of them (default one
        each) and Postfix's queue is empty, so no further delivery is on its way."""
        want = len(set(recipients)) if count is None else count

        def done() -> bool:
            if len(self.for_recipients(recipients)) < want:
                return False
            return self.servers is None or self.servers.queue_is_empty()

        await wait_until(done, f"{want} deliveries to {sorted(recipients)[:3]}...", timeout)
        return self.for_recipients(recipients)


def session_summary(servers: MailServers, client_port: int) -> str | None:
    """Postfix's end-of-session line for the client at 127.0.0.1:``client_port``: the
    commands it received, e.g. ``ehlo=2 starttls=1 auth=1 mail=1 ... commands=7``."""
    pattern = re.compile(rf"disconnect from \S+\[127\.0\.0\.1\]:{client_port} (.*)$", re.MULTILINE)
    match = pattern.search(servers.postfix_log())
    return None if match is None else match[1]


async def wait_session_summary(servers: MailServers, client_port: int) -> str:
    """:func:`session_summary` once Postfix has logged it."""
    await wait_until(
        lambda: session_summary(servers, client_port) is not None,
        f"postfix's log of the session from port {client_port}",
        timeout=10,
    )
    summary = session_summary(servers, client_port)
    assert summary is not None
    return summary
