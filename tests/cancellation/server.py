"""A scripted SMTP server for the cancellation tests, in the test's own event loop.

:class:`CancelServer` listens on 127.0.0.1 port 0 and speaks enough SMTP for every client
operation: the greeting, EHLO (extensions configurable), HELO, MAIL, RCPT, DATA and its body,
BDAT n [LAST], RSET, NOOP, VRFY, EXPN, HELP, QUIT, AUTH (PLAIN, LOGIN, CRAM-MD5, XOAUTH2, with
or without an initial response) and STARTTLS (a real upgrade with a trustme certificate, done
on the same socket through ``tests.hostile.kit``'s MemoryBIO channel, so it behaves the same
under asyncio and uvloop).

Every reply names what it answers, with a server-wide count per verb: ``250 2.1.0 MAIL#3
<a@x>``, ``250 2.0.0 NOOP#7``, ``250 2.0.0 queued END#2 id=<message-id>`` (the final reply of
a message names its Message-ID header), so a test can check that each reply the client hands
back belongs to the command that was sent.

Holds: ``hold = server.hold("RCPT")`` holds the reply to the next RCPT (``n=2``: the second
from now) until ``hold.release()``; ``await hold.reached.wait()`` tells the test the client is
waiting there (no sleeps). Kinds: a verb (``EHLO``, ``MAIL``, ``RCPT``, ``DATA`` - the 354,
``BDAT``, ``NOOP``, ``VRFY``, ``EXPN``, ``HELP``, ``RSET``, ``QUIT``, ``STARTTLS`` - the 220,
``AUTH`` - the reply to the AUTH line, a 334 challenge or the verdict), ``SASL`` (the reply to
a SASL response line), ``END`` (the final reply after a DATA body), ``GREETING`` and ``TLS``
(the handshake after the 220 to STARTTLS is stalled). While a reply is held the server keeps
reading (and buffering, in order) what the client sends, so it sees the connection close.

Recording, per connection (:class:`Conn`): ``lines`` - every ``(kind, text)`` the server
parsed, kind ``cmd`` (a command line), ``sasl`` (a SASL response), ``body`` (a complete DATA
body), ``bdat`` (a BDAT chunk), ``partial`` (a body cut short by EOF); ``bodies`` (complete
messages) and ``violations``: an unknown command or one not allowed in the current state
(DATA or BDAT without MAIL, RCPT without MAIL, a nested MAIL, AUTH or STARTTLS inside a
transaction; a pipelined group is fine), a body containing a line that looks like an SMTP
command (the tests' bodies contain none), a SASL response that is an SMTP command, plaintext
after STARTTLS.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.hostile.kit import HostileConnection, _Channel, is_tls_records

__all__ = ["CancelServer", "Conn", "Hold", "message_id_of"]

VERBS = (
    "EHLO", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "VRFY", "EXPN", "HELP",
    "QUIT", "AUTH", "STARTTLS",
)  # fmt: skip
_COMMAND = re.compile(
    rb"^(?:MAIL FROM:|RCPT TO:|QUIT\b|RSET\b|DATA\b|NOOP\b|EHLO\b|HELO\b|BDAT\b|AUTH\b"
    rb"|STARTTLS\b|VRFY\b|EXPN\b|HELP\b)",
    re.IGNORECASE | re.MULTILINE,
)
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
CRAM_CHALLENGE = b"<4711.1234567890@cancel.test>"


def message_id_of(body: bytes) -> str:
    match = _MESSAGE_ID.search(body)
    return match.group(1).decode() if match else ""


class _Closed(Exception):
    """The script ends this connection (the transport is aborted)."""


@dataclass(eq=False)
class Hold:
    """The reply to the ``n``-th ``kind`` from now is held until :meth:`release`."""

    kind: str
    skip: int
    close_on_quit: bool = False
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    conn: Conn | None = None
    #: ``len(conn.lines)`` when the hold was reached (the held command is before it).
    mark: int = 0

    def release(self) -> None:
        self.released.set()

    def after(self) -> list[tuple[str, str]]:
        """What the connection's script parsed after the held command."""
        assert self.conn is not None
        return self.conn.lines[self.mark :]


@dataclass(eq=False)
class Conn:
    """One client connection, as the server saw it."""

    index: int
    raw: HostileConnection = field(default_factory=HostileConnection)
    lines: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    eof: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    tls: bool = False
    #: bytes read after an early reply / a stall was resumed, until EOF
    tail: bytearray = field(default_factory=bytearray)

    @property
    def commands(self) -> list[str]:
        return [text for kind, text in self.lines if kind == "cmd"]

    @property
    def verbs(self) -> list[str]:
        return [_verb(text) for text in self.commands]


def _verb(text: str) -> str:
    return text.split(" ", 1)[0].split(":", 1)[0].upper()


class CancelServer:
    """``async with CancelServer(...) as server:``; see the module docstring."""

    def __init__(
        self,
        *,
        extensions: tuple[str, ...] = ("PIPELINING", "8BITMIME", "SIZE 100000"),
        tls_context: ssl.SSLContext | None = None,
        early_reply: str | None = None,
        stall_body: bool = False,
        drop_after_end: int | None = None,
        latency: Callable[[], float] | None = None,
    ) -> None:
        self.extensions = tuple(extensions)
        if tls_context is not None and "STARTTLS" not in self.extensions:
            self.extensions += ("STARTTLS",)
        self.tls_context = tls_context
        #: after the first body bytes of a DATA: send this reply and stop reading until
        #: ``resume`` is set, then read to EOF into ``conn.tail``.
        self.early_reply = early_reply
        #: after the 354: stop reading until ``resume`` is set, then read to EOF.
        self.stall_body = stall_body
        #: abort the connection right after the n-th (server-wide) end of DATA, unanswered.
        self.drop_after_end = drop_after_end
        #: seconds to wait before each reply (e.g. a seeded random), to widen the windows
        #: in which a client's caller can be cancelled.
        self.latency = latency
        self.resume = asyncio.Event()
        self.conns: list[Conn] = []
        self.counts: Counter[str] = Counter()
        self.received: list[tuple[int, str]] = []  # (connection, Message-ID) of each body
        self.accepted: list[tuple[int, str]] = []  # ... answered with a final 250
        #: every command line and ``BODY <Message-ID>`` of every connection, in arrival order
        self.log: list[str] = []
        self.changed = asyncio.Event()
        self._holds: list[Hold] = []
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    # -- control ------------------------------------------------------------------------

    def hold(self, kind: str, n: int = 1, *, close_on_quit: bool = False) -> Hold:
        """Hold the reply to the ``n``-th ``kind`` from now (see the module docstring).

        ``close_on_quit``: if a QUIT arrives while held, close the connection at once
        without answering anything (the held reply is never sent)."""
        hold = Hold(kind.upper(), n - 1, close_on_quit)
        self._holds.append(hold)
        return hold

    def release_all(self) -> None:
        for hold in self._holds:
            hold.release()

    @property
    def conn(self) -> Conn:
        assert self.conns, "no client connected"
        return self.conns[0]

    @property
    def violations(self) -> list[str]:
        return [f"conn {c.index}: {v}" for c in self.conns for v in c.violations]

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def wait_logged(self, needle: str, start: int = 0) -> None:
        """Wait until a line of ``log`` from index ``start`` on contains ``needle``."""
        while True:
            if any(needle in line for line in self.log[start:]):
                return
            start = len(self.log)
            self.changed.clear()
            await self.changed.wait()

    async def wait_for(self, predicate: object, timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true (re-checked whenever the server changes)."""
        assert callable(predicate)

        async def wait() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)

    # -- life cycle ---------------------------------------------------------------------

    async def __aenter__(self) -> CancelServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self.release_all()
        self.resume.set()
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)

    # -- the connection -----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        conn = Conn(len(self.conns))
        self.conns.append(conn)
        self.changed.set()
        channel = _Channel(reader, writer, conn.raw)
        try:
            await self._session(channel, conn)
        except (_Closed, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # the server is shutting down
        finally:
            if conn.raw.raw_after_starttls and not is_tls_records(
                bytes(conn.raw.raw_after_starttls)
            ):
                conn.violations.append(
                    f"plaintext after STARTTLS: {bytes(conn.raw.raw_after_starttls)[:80]!r}"
                )
            conn.eof.set()
            conn.finished.set()
            self.changed.set()
            writer.transport.abort()
            self._tasks.discard(task)

    def _take_hold(self, kind: str) -> Hold | None:
        for hold in self._holds:
            if hold.kind == kind and not hold.reached.is_set():
                if hold.skip:
                    hold.skip -= 1
                    continue
                return hold
        return None

    async def _maybe_hold(self, channel: _Channel, conn: Conn, kind: str) -> None:
        if self.latency is not None:
            await asyncio.sleep(self.latency())
        hold = self._take_hold(kind)
        if hold is None:
            return
        hold.conn = conn
        hold.mark = len(conn.lines)
        hold.reached.set()
        self.changed.set()
        if kind == "TLS":  # the ClientHello must stay unread for the handshake
            await hold.released.wait()
            return
        await self._read_while_held(channel, conn, hold)

    async def _read_while_held(self, channel: _Channel, conn: Conn, hold: Hold) -> None:
        pending = bytearray(channel.buffer)
        channel.buffer.clear()
        released = asyncio.ensure_future(hold.released.wait())
        try:
            while not hold.released.is_set():
                read = asyncio.ensure_future(channel.read_some())
                await asyncio.wait({released, read}, return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    read.cancel()
                try:
                    data = await read
                except asyncio.CancelledError:
                    if not released.done():
                        raise
                    break
                if not data:
                    conn.eof.set()
                    self.changed.set()
                    break
                pending += data
                if hold.close_on_quit and re.search(rb"(?:^|\r\n)QUIT\r\n", bytes(pending)):
                    conn.lines.append(("cmd", "QUIT"))
                    raise _Closed
        finally:
            released.cancel()
            channel.buffer[:0] = pending

    async def _reply(self, channel: _Channel, conn: Conn, kind: str, text: str) -> None:
        await self._maybe_hold(channel, conn, kind)
        await channel.write(text.encode() + b"\r\n")

    def _tag(self, verb: str) -> str:
        self.counts[verb] += 1
        return f"{verb}#{self.counts[verb]}"

    async def _session(self, ch: _Channel, conn: Conn) -> None:
        await self._reply(ch, conn, "GREETING", f"220 cancel.test ESMTP {self._tag('GREETING')}")
        greeted = False
        mail = False
        rcpts = 0
        bdat_body = bytearray()
        bdat_refused = False
        while True:
            line = await ch.readline()
            if not line.endswith(b"\n"):
                if line:
                    conn.violations.append(f"partial line at EOF: {line[:80]!r}")
                conn.eof.set()
                return
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            conn.lines.append(("cmd", text))
            self.log.append(text)
            self.changed.set()
            verb = _verb(text)
            tag = self._tag(verb) if verb in VERBS else ""
            if verb in ("EHLO", "HELO"):
                greeted = True
                mail, rcpts = False, 0
                if verb == "HELO":
                    await self._reply(ch, conn, verb, f"250 cancel.test {tag}")
                    continue
                items = [f"cancel.test {tag}", *self.extensions]
                if conn.tls:
                    items = [i for i in items if i != "STARTTLS"]
                await self._maybe_hold(ch, conn, verb)
                await ch.write(
                    "".join(
                        f"250{'-' if i < len(items) - 1 else ' '}{item}\r\n"
                        for i, item in enumerate(items)
                    ).encode()
                )
            elif verb == "MAIL":
                if not greeted:
                    conn.violations.append(f"MAIL before EHLO/HELO: {text!r}")
                if mail:
                    conn.violations.append(f"nested MAIL: {text!r}")
                    await self._reply(ch, conn, verb, f"503 5.5.1 nested MAIL {tag}")
                    continue
                mail, rcpts = True, 0
                bdat_body.clear()
                bdat_refused = False
                sender = text[text.find("<") + 1 : text.find(">")]
                await self._reply(ch, conn, verb, f"250 2.1.0 {tag} <{sender}>")
            elif verb == "RCPT":
                if not mail:
                    conn.violations.append(f"RCPT without MAIL: {text!r}")
                    await self._reply(ch, conn, verb, f"503 5.5.1 MAIL first {tag}")
                    continue
                rcpts += 1
                address = text[text.find("<") + 1 : text.find(">")]
                await self._reply(ch, conn, verb, f"250 2.1.5 {tag} <{address}>")
            elif verb == "DATA":
                if not mail:
                    conn.violations.append(f"DATA without MAIL: {text!r}")
                    await self._reply(ch, conn, verb, f"503 5.5.1 MAIL first {tag}")
                    continue
                if not rcpts:
                    mail = False
                    await self._reply(ch, conn, verb, f"554 5.5.1 no valid recipients {tag}")
                    continue
                await self._reply(ch, conn, verb, f"354 go ahead {tag}")
                body = await self._read_body(ch, conn)
                mail, rcpts = False, 0
                if body is None:
                    return
                await self._end(ch, conn, body, "END")
            elif verb == "BDAT":
                parts = text.split()
                try:
                    size = int(parts[1])
                    last = len(parts) == 3 and parts[2].upper() == "LAST"
                    if len(parts) not in (2, 3) or (len(parts) == 3 and not last):
                        raise ValueError
                except (IndexError, ValueError):
                    conn.violations.append(f"malformed BDAT: {text!r}")
                    raise _Closed from None
                chunk = await self._read_exactly(ch, size)
                if chunk is None:
                    conn.lines.append(("partial", f"{size} octets announced"))
                    return
                conn.lines.append(("bdat", f"{len(chunk)}{' LAST' if last else ''}"))
                self._check_body(conn, chunk, "BDAT chunk")
                if not mail:
                    conn.violations.append(f"BDAT without MAIL: {text!r}")
                    bdat_refused = True
                elif not rcpts:
                    bdat_refused = True
                bdat_body += chunk
                if not last:
                    await self._reply(ch, conn, "BDAT", f"250 2.0.0 {tag} {size} octets")
                    continue
                body = bytes(bdat_body)
                bdat_body.clear()
                mail, rcpts = False, 0
                if bdat_refused:
                    await self._reply(ch, conn, "BDAT", f"554 5.5.1 no valid recipients {tag}")
                    continue
                await self._end(ch, conn, body, "BDAT", tag)
            elif verb == "RSET":
                mail, rcpts = False, 0
                bdat_body.clear()
                await self._reply(ch, conn, verb, f"250 2.0.0 {tag}")
            elif verb == "NOOP":
                await self._reply(ch, conn, verb, f"250 2.0.0 {tag}")
            elif verb == "VRFY":
                await self._reply(ch, conn, verb, f"252 2.1.5 {tag} {text[5:]}")
            elif verb == "EXPN":
                await self._reply(ch, conn, verb, f"250 2.1.5 {tag} {text[5:]}")
            elif verb == "HELP":
                await self._reply(ch, conn, verb, f"214 2.0.0 {tag} see RFC 5321")
            elif verb == "QUIT":
                await self._reply(ch, conn, verb, f"221 2.0.0 bye {tag}")
                return
            elif verb == "AUTH":
                if mail:
                    conn.violations.append(f"AUTH inside a transaction: {text!r}")
                await self._auth(ch, conn, text, tag)
            elif verb == "STARTTLS":
                if mail:
                    conn.violations.append(f"STARTTLS inside a transaction: {text!r}")
                if self.tls_context is None or conn.tls:
                    await self._reply(ch, conn, verb, f"454 4.7.0 no TLS {tag}")
                    continue
                await self._reply(ch, conn, verb, f"220 2.0.0 go ahead {tag}")
                await self._maybe_hold(ch, conn, "TLS")
                await ch.start_tls(self.tls_context)
                conn.tls = True
                greeted = mail = False
                rcpts = 0
            else:
                conn.violations.append(f"unknown command: {text[:80]!r}")
                await ch.write(b"500 5.5.2 unknown command\r\n")

    async def _end(
        self, ch: _Channel, conn: Conn, body: bytes, kind: str, tag: str | None = None
    ) -> None:
        """A message is complete: record it, then (maybe held) the final 250."""
        message_id = message_id_of(body)
        conn.bodies.append(body)
        self.log.append(f"BODY {message_id}")
        self.received.append((conn.index, message_id))
        self.changed.set()
        if self.drop_after_end is not None and len(self.received) == self.drop_after_end:
            raise _Closed
        tag = tag or self._tag("END")
        await self._maybe_hold(ch, conn, kind)
        await ch.write(f"250 2.0.0 queued {tag} id={message_id}\r\n".encode())
        self.accepted.append((conn.index, message_id))
        self.changed.set()

    def _check_body(self, conn: Conn, body: bytes, what: str) -> None:
        for match in _COMMAND.finditer(body):
            end = body.find(b"\n", match.start())
            line = body[match.start() : end if end >= 0 else None]
            conn.violations.append(f"SMTP command in a {what}: {line[:80]!r}")

    async def _read_body(self, ch: _Channel, conn: Conn) -> bytes | None:
        """A DATA body up to CRLF.CRLF (un-stuffed); None at EOF (recorded as partial)."""
        buf = bytearray(b"\r\n")  # so an empty body (".\r\n" at once) ends too
        buf += ch.buffer
        ch.buffer.clear()
        early_sent = False
        if self.stall_body:
            await self._stall(ch, conn)
            return None
        while True:
            end = buf.find(b"\r\n.\r\n")
            if end >= 0:
                body = bytes(buf[2 : end + 2])
                ch.buffer[:0] = buf[end + 5 :]
                body = re.sub(rb"(?m)^\.", b"", body)
                conn.lines.append(("body", f"{len(body)} octets"))
                self._check_body(conn, body, "DATA body")
                return body
            if self.early_reply is not None and len(buf) > 2 and not early_sent:
                early_sent = True
                await ch.write(self.early_reply.encode() + b"\r\n")
                await self._stall(ch, conn, buf[2:])
                return None
            data = await ch.read_some()
            if not data:
                partial = bytes(buf[2:])
                conn.lines.append(("partial", f"{len(partial)} octets"))
                self._check_body(conn, partial, "DATA body cut short")
                conn.eof.set()
                return None
            buf += data

    async def _stall(self, ch: _Channel, conn: Conn, head: bytes = b"") -> None:
        """Stop reading until ``resume``; then read everything to EOF into ``conn.tail``."""
        transport = ch.writer.transport
        transport.pause_reading()
        await self.resume.wait()
        transport.resume_reading()
        conn.tail += head
        while True:
            data = await ch.read_some()
            if not data:
                break
            conn.tail += data
            self.changed.set()
        conn.eof.set()
        self.changed.set()

    async def _read_exactly(self, ch: _Channel, size: int) -> bytes | None:
        buf = bytearray(ch.buffer)
        ch.buffer.clear()
        while len(buf) < size:
            data = await ch.read_some()
            if not data:
                return None
            buf += data
        ch.buffer[:0] = buf[size:]
        return bytes(buf[:size])

    async def _sasl_line(self, ch: _Channel, conn: Conn) -> str:
        line = await ch.readline()
        if not line.endswith(b"\n"):
            raise _Closed
        text = line.rstrip(b"\r\n").decode("utf-8", "replace")
        conn.lines.append(("sasl", text))
        self.changed.set()
        if _COMMAND.match(text.encode()):
            conn.violations.append(f"SMTP command read as a SASL response: {text[:80]!r}")
        return text

    async def _challenge(self, ch: _Channel, conn: Conn, kind: str, challenge: bytes) -> str:
        await self._reply(ch, conn, kind, "334 " + base64.b64encode(challenge).decode())
        return await self._sasl_line(ch, conn)

    async def _auth(self, ch: _Channel, conn: Conn, text: str, tag: str) -> None:
        parts = text.split()
        mechanism = parts[1].upper() if len(parts) > 1 else ""
        initial = parts[2] if len(parts) > 2 else None
        kind = "AUTH"  # the reply to the AUTH line; later replies are "SASL"
        if mechanism == "PLAIN":
            if initial is None:
                initial = await self._challenge(ch, conn, kind, b"")
                kind = "SASL"
        elif mechanism == "LOGIN":
            if initial is None:
                initial = await self._challenge(ch, conn, kind, b"Username:")
                kind = "SASL"
            await self._challenge(ch, conn, kind, b"Password:")
            kind = "SASL"
        elif mechanism == "CRAM-MD5":
            await self._challenge(ch, conn, kind, CRAM_CHALLENGE)
            kind = "SASL"
        elif mechanism == "XOAUTH2":
            if initial is None:
                await self._challenge(ch, conn, kind, b"")
                kind = "SASL"
        else:
            await self._reply(ch, conn, kind, f"504 5.5.4 unknown mechanism {tag}")
            return
        if conn.lines[-1] == ("sasl", "*"):
            await self._reply(ch, conn, kind, f"501 5.7.0 cancelled {tag}")
            return
        await self._reply(ch, conn, kind, f"235 2.7.0 authenticated {tag}")
