"""A reactive SMTP server for the pool tests, in the test's own event loop.

It answers whatever arrives in order, one write per read (so pipelined groups work),
and records what a pool test needs: how many connections were open at once, every
connection's command lines and the time each arrived, the Message-ID of every message
accepted, and the logins. Faults are injected by subclassing and overriding the
``reply_*`` hooks; a hook returns a reply line, :data:`CLOSE` (drop the connection
without answering), :data:`SILENT` (never answer) or, for ``reply_end`` and
``reply_mail`` only, :data:`HOLD` (accept, but answer - and read on - only once
``server.release`` is set; ``server.holding`` counts the replies held so far).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

__all__ = ["CLOSE", "HOLD", "SILENT", "Delivery", "PoolServer", "Session"]

CLOSE = "<close>"
HOLD = "<hold>"
SILENT = "<silent>"

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass
class Delivery:
    """One message accepted with a final 250."""

    message_id: str
    sender: str
    recipients: list[str]
    connection: int


@dataclass
class Session:
    """What one connection did."""

    index: int
    lines: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # loop time each line arrived
    opened_at: float = 0.0
    logged_in: bool = False
    closed: bool = False
    quit: bool = False

    @property
    def verbs(self) -> list[str]:
        return [line.split(" ", 1)[0].split(":", 1)[0].upper() for line in self.lines]


class _Protocol(asyncio.Protocol):
    def __init__(self, server: PoolServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session = Session(len(server.sessions))
        self.buffer = bytearray()
        self.in_data = False
        self.sender = ""
        self.recipients: list[str] = []
        self.mail_ok = False
        self.stalled = False
        self.messages = 0
        self.closing = False
        self.held: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        self.session.opened_at = asyncio.get_running_loop().time()
        server.sessions.append(self.session)
        server.protocols.append(self)
        server.live += 1
        server.max_live = max(server.max_live, server.live)
        out = bytearray()
        self._respond(server.reply_greeting(self.session), out)
        self._flush(out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()

    def _gone(self) -> None:
        if not self.session.closed:
            self.session.closed = True
            if not self.session.quit:
                self.server.live -= 1
            self.server.changed.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = bytearray()
        while not self.closing and not self.stalled and self.held is None:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    break
                body = bytes(self.buffer[: end + 2])
                del self.buffer[: end + 5]
                self.in_data = False
                self.mail_ok = False
                self.server.bodies += 1
                self.server.changed.set()
                reply = self.server.reply_end(self.session, self.messages, body)
                if self.buffer and self.server.behind_end is not None:
                    # Commands came with the end of data, before its reply: a server
                    # like Dovecot submission 2.3.19 ends the session (or hangs).
                    self.server.broken_sessions.append(self.session.index)
                    reply = self.server.behind_end
                self.messages += 1
                if reply == HOLD:
                    self._flush(out)
                    out = bytearray()
                    self._hold("250 2.0.0 queued", body)
                    break
                if reply.startswith("250"):
                    self._deliver(body)
                self._respond(reply, out)
                continue
            newline = self.buffer.find(b"\r\n")
            if newline < 0:
                break
            line = bytes(self.buffer[:newline]).decode("utf-8", "replace")
            del self.buffer[: newline + 2]
            self.session.lines.append(line)
            self.session.times.append(asyncio.get_running_loop().time())
            self.server.changed.set()
            self._command(line, out)
        if self.stalled:
            self.buffer.clear()
        self._flush(out)

    def _hold(self, reply: str, body: bytes | None) -> None:
        """Stop reading; send ``reply`` (delivering ``body`` if any) on ``release``."""
        self.held = asyncio.ensure_future(self._held(reply, body))
        self.server.tasks.add(self.held)
        self.server.holding += 1
        self.server.changed.set()

    async def _held(self, reply: str, body: bytes | None) -> None:
        await self.server.release.wait()
        if self.transport is not None and not self.transport.is_closing():
            if body is not None:
                self._deliver(body)
            out = bytearray()
            self._respond(reply, out)
            self._flush(out)
        self.held = None
        if self.buffer:
            self.data_received(b"")

    def _flush(self, out: bytearray) -> None:
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes(out))
        if self.closing and self.transport is not None:
            self.transport.close()
            self._gone()

    def _deliver(self, body: bytes) -> None:
        match = _MESSAGE_ID.search(body)
        message_id = match.group(1).decode() if match else ""
        self.server.deliveries.append(
            Delivery(message_id, self.sender, list(self.recipients), self.session.index)
        )
        self.server.changed.set()

    def _respond(self, reply: str, out: bytearray) -> None:
        if reply == CLOSE:
            self.closing = True
            return
        if reply == SILENT:
            self.stalled = True  # like a hung server: read on, never answer again
            return
        out += reply.encode() + b"\r\n"
        if reply.startswith("421"):
            self.closing = True

    def _command(self, line: str, out: bytearray) -> None:
        server = self.server
        verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            items = ["pool.test", *server.extensions] if verb == "EHLO" else ["pool.test"]
            out += "".join(
                f"250{'-' if i < len(items) - 1 else ' '}{item}\r\n" for i, item in enumerate(items)
            ).encode()
        elif verb == "AUTH":
            self._respond(self._auth(line), out)
        elif verb == "MAIL":
            self.sender = line[line.index("<") + 1 : line.index(">")]
            self.recipients = []
            reply = server.reply_mail(self.session, self.messages)
            if reply == HOLD:
                self.mail_ok = True
                self._hold("250 2.1.0 sender ok", None)
                return
            self.mail_ok = reply.startswith("250")
            self._respond(reply, out)
        elif verb == "RCPT" and not self.mail_ok:
            out += b"503 5.5.1 MAIL first\r\n"  # RFC 5321 section 4.1.4
        elif verb == "RCPT":
            address = line[line.index("<") + 1 : line.index(">")]
            reply = server.reply_rcpt(self.session, address)
            if reply.startswith("25"):
                self.recipients.append(address)
            self._respond(reply, out)
        elif verb == "DATA":
            if not self.recipients:
                out += b"554 5.5.1 no valid recipients\r\n"
                return
            out += b"354 go ahead\r\n"
            self.in_data = True
        elif verb == "RSET":
            self.mail_ok = False
            self.recipients = []
            out += b"250 2.0.0 reset\r\n"
        elif verb == "NOOP":
            self._respond(server.reply_noop(self.session), out)
        elif verb == "QUIT":
            out += b"221 2.0.0 bye\r\n"
            self.session.quit = True
            server.live -= 1  # the client is done with it now
            self.closing = True
        else:
            out += b"502 5.5.2 unknown command\r\n"

    def _auth(self, line: str) -> str:
        parts = line.split()
        if len(parts) != 3 or parts[1].upper() != "PLAIN":
            return "504 5.5.4 only AUTH PLAIN with an initial response"
        reply = self.server.reply_auth(self.session)
        if not reply.startswith("235"):
            return reply
        _, user, password = base64.b64decode(parts[2]).split(b"\0")
        if (user.decode(), password.decode()) != self.server.credentials:
            return "535 5.7.8 bad credentials"
        self.session.logged_in = True
        self.server.logins += 1
        return reply


class PoolServer:
    """``async with PoolServer() as server:`` on 127.0.0.1, port chosen by the OS."""

    def __init__(
        self,
        *,
        extensions: tuple[str, ...] = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"),
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.extensions = extensions
        self.credentials = credentials
        if credentials is not None:
            self.extensions = (*extensions, "AUTH PLAIN")
        self.sessions: list[Session] = []
        self.protocols: list[_Protocol] = []
        self.deliveries: list[Delivery] = []
        self.bodies = 0  # complete message bodies received, answered or not
        self.holding = 0  # replies held back (HOLD) so far
        self.logins = 0
        #: The reply (CLOSE or SILENT) to an end of data that arrives together with
        #: more commands (pipelined behind it); None answers it as any other.
        self.behind_end: str | None = None
        self.broken_sessions: list[int] = []  # sessions that met behind_end
        self.live = 0
        self.max_live = 0
        self.changed = asyncio.Event()
        self.release = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None

    # -- hooks (override to inject faults) ----------------------------------------------

    def reply_greeting(self, session: Session) -> str:
        return "220 pool.test ESMTP"

    def reply_auth(self, session: Session) -> str:
        return "235 2.7.0 authenticated"

    def reply_mail(self, session: Session, message: int) -> str:
        return "250 2.1.0 sender ok"

    def reply_rcpt(self, session: Session, address: str) -> str:
        return "250 2.1.5 recipient ok"

    def reply_end(self, session: Session, message: int, body: bytes) -> str:
        """``message``: how many bodies this connection received before this one."""
        return "250 2.0.0 queued"

    def reply_noop(self, session: Session) -> str:
        return "250 2.0.0 ok"

    # -- results ------------------------------------------------------------------------

    def delivered(self) -> Counter[str]:
        """Message-ID -> how many times it was accepted."""
        return Counter(d.message_id for d in self.deliveries)

    async def wait_for(self, predicate: object) -> None:
        """Wait until ``predicate()`` is true (re-checked whenever the server changes)."""
        assert callable(predicate)
        while not predicate():
            self.changed.clear()
            await self.changed.wait()

    # -- life cycle ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> PoolServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Protocol(self), "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self.release.set()
        self._server.close()
        for proto in self.protocols:
            if proto.transport is not None:
                proto.transport.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)
