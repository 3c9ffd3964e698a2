"""A reactive SMTP server for transaction tests: replies come from a policy table.

Unlike the scripted kit, it answers whatever arrives, in order, with one write per read
(as a real RFC 2920 server does), so the same policy can serve a lockstep and a
pipelining client. It understands EHLO/HELO, MAIL, RCPT, DATA (+ body), BDAT, RSET,
NOOP and QUIT, records every byte, and keeps only the bodies it is told to keep.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import cast

__all__ = ["CLOSE", "Policy", "PolicyServer"]

#: Policy value: drop the connection instead of answering.
CLOSE = "<close>"


@dataclass
class Policy:
    """Replies by command. Keys: ``mail``, ``rcpt:<address>``, ``rcpt``, ``data``, ``end``
    (after the body), ``bdat:<n>`` (the n-th BDAT, 1-based), ``rset``. A value is a reply
    line such as ``"550 no"``, or :data:`CLOSE`; a reply starting with ``421`` also closes."""

    extensions: tuple[str, ...] = ("PIPELINING", "SIZE 100000000", "8BITMIME")
    replies: dict[str, str] = field(default_factory=dict)
    #: record bodies and raw bytes (off for huge messages: only sizes are kept)
    keep_bodies: bool = True
    #: answer DATA with 354 even when no recipient was accepted (a buggy server)
    lenient_data: bool = False


class _Session(asyncio.Protocol):
    def __init__(self, server: PolicyServer) -> None:
        self.server = server
        self.policy = server.policy
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.received = bytearray()
        self.in_data = False
        self.bdat_left = 0
        self.bdat_last = False
        self.bdat_count = 0
        self.bdat_failed = False
        self.body = bytearray()
        self.body_size = 0
        self.accepted_rcpts = 0
        self.mail_ok = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.server.sessions.append(self)
        self.transport.write(b"220 policy.test ESMTP\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.lost.set()

    def data_received(self, data: bytes) -> None:
        if self.policy.keep_bodies:
            self.received += data
        self.buffer += data
        out = bytearray()
        while not self.closed:
            if self.bdat_left:
                take = min(self.bdat_left, len(self.buffer))
                if not take:
                    break
                self._keep(bytes(self.buffer[:take]))
                del self.buffer[:take]
                self.bdat_left -= take
                if not self.bdat_left:
                    self._bdat_done(out)
                continue
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    keep = max(0, len(self.buffer) - 4)
                    self._keep(bytes(self.buffer[:keep]))
                    del self.buffer[:keep]
                    break
                self._keep(bytes(self.buffer[: end + 2]))
                del self.buffer[: end + 5]
                self.in_data = False
                self._answer(out, "end", "250 queued")
                if not self.closed:
                    self._deliver()
                continue
            newline = self.buffer.find(b"\r\n")
            if newline < 0:
                break
            line = bytes(self.buffer[:newline]).decode("utf-8", "replace")
            del self.buffer[: newline + 2]
            self._command(line, out)
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes(out))
        if self.closed and self.transport is not None:
            self.transport.close()

    def _bdat_done(self, out: bytearray) -> None:
        if self.bdat_failed:
            # RFC 3030 section 2: once a chunk failed, later ones are refused too.
            out += b"503 5.5.1 transaction already failed\r\n"
        else:
            before = len(out)
            self._answer(out, f"bdat:{self.bdat_count}", "250 chunk ok")
            self.bdat_failed = bytes(out[before : before + 1]) != b"2"
        if self.bdat_last:
            if not self.bdat_failed and not self.closed:
                self._deliver()
            self.bdat_failed = False
            self.body = bytearray()
            self.body_size = 0

    def _keep(self, data: bytes) -> None:
        self.body_size += len(data)
        if self.policy.keep_bodies:
            self.body += data

    def _deliver(self) -> None:
        self.mail_ok = False
        self.server.messages.append(bytes(self.body) if self.policy.keep_bodies else b"")
        self.server.sizes.append(self.body_size)
        self.body = bytearray()
        self.body_size = 0

    def _answer(self, out: bytearray, key: str, default: str) -> None:
        reply = self.policy.replies.get(key, default)
        if reply == CLOSE:
            self.closed = True
            return
        out += reply.encode() + b"\r\n"
        if reply.startswith("421"):
            self.closed = True

    def _command(self, line: str, out: bytearray) -> None:
        verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            items = ["policy.test", *self.policy.extensions] if verb == "EHLO" else ["hi"]
            out += "".join(
                f"250{'-' if i < len(items) - 1 else ' '}{item}\r\n" for i, item in enumerate(items)
            ).encode()
        elif verb == "MAIL":
            self.accepted_rcpts = 0
            self.bdat_count = 0
            self.bdat_failed = False
            before = len(out)
            self._answer(out, "mail", "250 sender ok")
            self.mail_ok = bytes(out[before : before + 1]) == b"2"
        elif verb == "RCPT" and not self.mail_ok:
            out += b"503 5.5.1 MAIL first\r\n"  # RFC 5321 section 4.1.4
        elif verb == "RCPT":
            address = line[line.index("<") + 1 : line.index(">")]
            reply = self.policy.replies.get(f"rcpt:{address}", self.policy.replies.get("rcpt"))
            before = len(out)
            self._answer(out, f"rcpt:{address}" if reply else "rcpt", reply or "250 rcpt ok")
            if bytes(out[before : before + 1]) == b"2":
                self.accepted_rcpts += 1
        elif verb == "DATA":
            if not self.accepted_rcpts and not self.policy.lenient_data:
                out += b"554 no valid recipients\r\n"
                return
            before = len(out)
            self._answer(out, "data", "354 go ahead")
            if bytes(out[before : before + 3]) == b"354":
                self.in_data = True
        elif verb == "BDAT":
            parts = line.split()
            self.bdat_left = int(parts[1])
            self.bdat_last = len(parts) > 2 and parts[2].upper() == "LAST"
            self.bdat_count += 1
            if self.bdat_left == 0:
                self._bdat_done(out)
        elif verb == "RSET":
            self.mail_ok = False
            self._answer(out, "rset", "250 reset")
        elif verb == "NOOP":
            out += b"250 ok\r\n"
        elif verb == "QUIT":
            out += b"221 bye\r\n"
            self.closed = True
        else:
            out += b"500 unknown command\r\n"


class PolicyServer:
    """``async with PolicyServer(policy) as server:`` on 127.0.0.1, port chosen by the OS."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.sessions: list[_Session] = []
        self.messages: list[bytes] = []
        self.sizes: list[int] = []
        self.lost = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def received(self) -> bytes:
        """Everything the first connection received."""
        return bytes(self.sessions[0].received) if self.sessions else b""

    async def __aenter__(self) -> PolicyServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Session(self), "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for session in self.sessions:
            if session.transport is not None:
                session.transport.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)
