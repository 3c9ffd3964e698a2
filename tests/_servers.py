"""Test servers for the end-to-end client tests.

Two kits live here:

* :class:`RecordingServer` - a real SMTP server (aiosmtpd, in its own thread and event loop)
  on 127.0.0.1 port 0 or on a Unix socket. It records every connection (raw bytes received,
  the commands seen, whether each arrived over TLS) and every accepted message envelope, and
  can be configured to refuse senders/recipients/DATA, to advertise or hide extensions, to offer
  or require STARTTLS, to speak implicit TLS and to offer AUTH (PLAIN, LOGIN, CRAM-MD5, XOAUTH2).
* :class:`ScriptedServer` - a tiny asyncio server in the test's own loop that plays a script of
  steps (send bytes, expect a line, hang, close, stop reading) and records every byte it gets.
  Used for misbehaving servers: greetings that never come, disconnects in any phase, odd replies.

Both stop everything they started, so no socket or thread outlives a test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import json
import ssl
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "AUTH_MECHANISMS",
    "Close",
    "Command",
    "Connection",
    "Expect",
    "ExpectData",
    "Hang",
    "ReceivedMessage",
    "RecordingHandler",
    "RecordingServer",
    "ScriptedConnection",
    "ScriptedServer",
    "Send",
    "ServerConfig",
    "Step",
    "StopReading",
    "ehlo_reply",
    "reply",
]

AUTH_MECHANISMS = ("CRAM-MD5", "LOGIN", "PLAIN", "XOAUTH2")
#: Mechanisms a handler given to :class:`RecordingServer` may add (offered only when
#: named in ``auth_mechanisms``, like the ones above).
EXTRA_AUTH_MECHANISMS = (
    "OAUTHBEARER",
    "SCRAM-SHA-1",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-256-PLUS",
)
CRAM_MD5_CHALLENGE = b"<1896.697170952@fastsmtp.test>"
SERVER_NAME = "recording.test"


# --------------------------------------------------------------------------------------------
# Recording aiosmtpd server
# --------------------------------------------------------------------------------------------


@dataclass
class ServerConfig:
    """How a :class:`RecordingServer` behaves. Every field has a well-behaved default."""

    #: sender address -> full reply line used to refuse ``MAIL FROM`` (e.g. ``"550 5.1.0 no"``).
    refuse_senders: dict[str, str] = field(default_factory=dict)
    #: recipient address -> full reply line used to refuse ``RCPT TO``.
    refuse_recipients: dict[str, str] = field(default_factory=dict)
    #: if set, the reply to the end of DATA (the message is then not recorded).
    data_reply: str | None = None
    #: if set, the reply to every EHLO (e.g. ``"502 no EHLO here"`` to force HELO).
    ehlo_reply: str | None = None
    #: advertise SMTPUTF8 (and accept the MAIL parameter).
    smtputf8: bool = True
    #: advertise 8BITMIME.
    eightbitmime: bool = True
    #: advertised SIZE limit; ``None`` hides the SIZE extension.
    size: int | None = 33554432
    #: extra EHLO keywords sent in plaintext / over TLS.
    extra_ehlo: Sequence[str] = ()
    extra_ehlo_tls: Sequence[str] = ()
    #: STARTTLS: server context (offered when set) and whether it is required.
    starttls_context: ssl.SSLContext | None = None
    require_starttls: bool = False
    #: implicit TLS (the listening socket speaks TLS from the first byte).
    implicit_tls_context: ssl.SSLContext | None = None
    #: AUTH: mechanisms offered (None = no AUTH at all), users (name -> password),
    #: XOAUTH2 tokens (name -> token), mechanisms that always answer 535.
    auth_mechanisms: Sequence[str] | None = None
    users: dict[str, str] = field(default_factory=dict)
    oauth_tokens: dict[str, str] = field(default_factory=dict)
    broken_mechanisms: Sequence[str] = ()
    #: offer AUTH only after TLS (aiosmtpd's ``auth_require_tls``).
    auth_require_tls: bool = False


@dataclass
class Command:
    """One command line the server parsed."""

    verb: str
    arg: str | None
    tls: bool

    @property
    def line(self) -> str:
        return self.verb if self.arg is None else f"{self.verb} {self.arg}"


@dataclass
class ReceivedMessage:
    """One message accepted at the end of DATA."""

    mail_from: str
    rcpt_tos: list[str]
    #: MAIL/RCPT parameters exactly as the client wrote them (case kept).
    mail_options: list[str]
    rcpt_options: list[list[str]]
    content: bytes
    tls: bool


@dataclass
class AuthAttempt:
    mechanism: str
    login: bytes | None
    success: bool


class Connection:
    """What the server saw on one client connection."""

    def __init__(self) -> None:
        self.raw = bytearray()
        self.commands: list[Command] = []
        self.peername: Any = None
        self.peercert: dict[str, Any] | None = None
        self.closed = threading.Event()

    @property
    def verbs(self) -> list[str]:
        return [c.verb for c in self.commands]

    @property
    def lines(self) -> list[str]:
        """The command lines aiosmtpd dispatched (unknown commands and DATA payload excluded)."""
        return [c.line for c in self.commands]

    @property
    def raw_lines(self) -> list[bytes]:
        """Every CRLF-terminated line received, in order (DATA payload included)."""
        return bytes(self.raw).split(b"\r\n")[:-1]


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connections: list[Connection] = []
        self.messages: list[ReceivedMessage] = []
        self.auth_attempts: list[AuthAttempt] = []
        self.live: set[_RecordingSMTP] = set()


def _is_tls(transport: asyncio.BaseTransport | None) -> bool:
    return transport is not None and transport.get_extra_info("sslcontext") is not None


def _raw_options(arg: str | None) -> list[str]:
    """The parameters after the ``<address>`` of a MAIL/RCPT argument, case kept."""
    if not arg:
        return []
    _, sep, rest = arg.partition(">")
    return rest.split() if sep else []


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP protocol, recording bytes and commands, lenient about ESMTP params."""

    def __init__(self, handler: Any, *, recorder: _Recorder, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._recorder = recorder
        self._conn = Connection()
        self.last_mail_arg: str | None = None
        self.rcpt_args: list[str | None] = []
        for verb, method in list(self._smtp_methods.items()):
            self._smtp_methods[verb] = self._recording(verb, method)

    @property
    def conn(self) -> Connection:
        return self._conn

    def _recording(self, verb: str, method: Any) -> Any:
        @functools.wraps(method)
        async def wrapper(arg: str | None) -> Any:
            tls = _is_tls(self.transport)
            self._conn.commands.append(Command(verb, arg, tls))
            if tls and self._conn.peercert is None and self.transport is not None:
                self._conn.peercert = self.transport.get_extra_info("peercert")
            if verb == "MAIL":
                self.last_mail_arg = arg
            elif verb == "RCPT":
                self.rcpt_args.append(arg)
            elif verb in ("RSET", "EHLO", "HELO"):
                self.rcpt_args = []
            return await method(arg)

        return wrapper

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self._conn.peername = transport.get_extra_info("peername")
            self._conn.peercert = transport.get_extra_info("peercert")
            with self._recorder.lock:
                self._recorder.connections.append(self._conn)
                self._recorder.live.add(self)

    def data_received(self, data: bytes) -> None:
        self._conn.raw += data
        super().data_received(data)

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            with self._recorder.lock:
                self._recorder.live.discard(self)
            self._conn.closed.set()

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        # Accept (and ignore) parameters aiosmtpd does not know, e.g. DSN's NOTIFY/ORCPT/RET,
        # so that option pass-through can be tested; the raw command log keeps them.
        result = super()._getparams(params)
        if result is None:
            return None
        return {k: v for k, v in result.items() if k in ("BODY", "SMTPUTF8", "SIZE")}


class _Handler:
    def __init__(self, config: ServerConfig, recorder: _Recorder) -> None:
        self.config = config
        self.recorder = recorder

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        cfg = self.config
        if cfg.ehlo_reply is not None:
            return [cfg.ehlo_reply]
        session.host_name = hostname
        drop = set()
        if not cfg.smtputf8:
            drop.add("SMTPUTF8")
        if not cfg.eightbitmime:
            drop.add("8BITMIME")
        if cfg.size is None:
            drop.add("SIZE")
        keywords = [r[4:] for r in responses[1:-1] if r[4:].split(" ")[0].upper() not in drop]
        keywords += list(cfg.extra_ehlo_tls if _is_tls(server.transport) else cfg.extra_ehlo)
        keywords.append("HELP")
        lines = [SERVER_NAME, *keywords]
        return [f"250-{k}" for k in lines[:-1]] + [f"250 {lines[-1]}"]

    async def handle_MAIL(
        self,
        server: _RecordingSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        refusal = self.config.refuse_senders.get(address)
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self,
        server: _RecordingSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self.config.refuse_recipients.get(address)
        if refusal is not None:
            if server.rcpt_args:
                server.rcpt_args.pop()
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(
        self, server: _RecordingSMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.config.data_reply is not None:
            return self.config.data_reply
        assert envelope.original_content is not None
        message = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            mail_options=_raw_options(server.last_mail_arg),
            rcpt_options=[_raw_options(a) for a in server.rcpt_args],
            content=bytes(envelope.original_content),
            tls=_is_tls(server.transport),
        )
        server.rcpt_args = []
        with self.recorder.lock:
            self.recorder.messages.append(message)
        return "250 2.0.0 Message accepted for delivery"

    # --- AUTH ------------------------------------------------------------------------------

    def authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        ok = mechanism not in self.config.broken_mechanisms and self._check(
            auth_data.login, auth_data.password
        )
        self._record(mechanism, auth_data.login, ok)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def _check(self, login: bytes, password: bytes) -> bool:
        for user, pw in self.config.users.items():
            if login == user.encode() and password == pw.encode():
                return True
        return False

    def _record(self, mechanism: str, login: bytes | None, success: bool) -> None:
        with self.recorder.lock:
            self.recorder.auth_attempts.append(AuthAttempt(mechanism, login, success))

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) != 1:
            await server.push("501 5.5.2 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        answer = await server.challenge_auth(CRAM_MD5_CHALLENGE)
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        assert isinstance(answer, bytes)
        login, _, digest = answer.rpartition(b" ")
        ok = "CRAM-MD5" not in self.config.broken_mechanisms and any(
            login == user.encode()
            and hmac.compare_digest(
                digest,
                hmac.new(pw.encode(), CRAM_MD5_CHALLENGE, hashlib.md5).hexdigest().encode(),
            )
            for user, pw in self.config.users.items()
        )
        self._record("CRAM-MD5", login, ok)
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(login, b""))

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) != 2:
            await server.push("501 5.5.2 XOAUTH2 needs an initial response")
            return AuthResult(success=False, handled=True)
        try:
            blob = base64.b64decode(args[1], validate=True)
        except ValueError:
            await server.push("501 5.5.2 Can't decode base64")
            return AuthResult(success=False, handled=True)
        fields = dict(part.split(b"=", 1) for part in blob.split(b"\x01") if b"=" in part)
        login = fields.get(b"user")
        ok = "XOAUTH2" not in self.config.broken_mechanisms and any(
            login == user.encode() and fields.get(b"auth") == b"Bearer " + token.encode()
            for user, token in self.config.oauth_tokens.items()
        )
        self._record("XOAUTH2", login, ok)
        if not ok:
            # RFC 7628 style: an error challenge the client must answer with an empty line.
            error = json.dumps({"status": "401", "schemes": "bearer"}).encode()
            if await server.challenge_auth(error) is MISSING:
                return AuthResult(success=False, handled=True)
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(login or b"", b""))


#: The handler class, for tests that add mechanisms to it (see ``handler=``).
RecordingHandler = _Handler


class _TCPController(Controller):
    def __init__(self, recorder: _Recorder, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=0, **kwargs)
        self._recorder = recorder

    def factory(self) -> SMTP:
        return _RecordingSMTP(self.handler, recorder=self._recorder, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _UnixController(UnixSocketController):
    def __init__(self, recorder: _Recorder, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._recorder = recorder

    def factory(self) -> SMTP:
        return _RecordingSMTP(self.handler, recorder=self._recorder, **self.SMTP_kwargs)


class RecordingServer:
    """An aiosmtpd server on 127.0.0.1:0 (or a Unix socket) that records what it receives.

    Use :meth:`start` / :meth:`stop` (or the ``smtpd_factory`` fixture, which always stops).
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        unix_path: Path | None = None,
        handler: Callable[[ServerConfig, _Recorder], _Handler] | None = None,
    ):
        self.config = config or ServerConfig()
        self.unix_path = unix_path
        self._recorder = _Recorder()
        self.handler = (handler or _Handler)(self.config, self._recorder)
        handler = self.handler
        cfg = self.config
        kwargs: dict[str, Any] = {
            "server_hostname": SERVER_NAME,
            "enable_SMTPUTF8": True,
            "data_size_limit": cfg.size if cfg.size is not None else 0,
            "ssl_context": cfg.implicit_tls_context,
            "tls_context": cfg.starttls_context,
            "require_starttls": cfg.require_starttls,
            "ident": "fastsmtp test server",
        }
        if cfg.auth_mechanisms is not None:
            kwargs["authenticator"] = handler.authenticate
            kwargs["auth_require_tls"] = cfg.auth_require_tls
            kwargs["auth_exclude_mechanism"] = [
                m for m in AUTH_MECHANISMS + EXTRA_AUTH_MECHANISMS if m not in cfg.auth_mechanisms
            ]
        else:
            kwargs["auth_exclude_mechanism"] = list(AUTH_MECHANISMS + EXTRA_AUTH_MECHANISMS)
        self._controller: Controller | UnixSocketController
        if unix_path is not None:
            self._controller = _UnixController(
                self._recorder, handler, unix_socket=unix_path, **kwargs
            )
        else:
            self._controller = _TCPController(self._recorder, handler, **kwargs)
        self._running = False

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> RecordingServer:
        self._controller.start()
        self._running = True
        # Forget the controller's own start-up probe connection.
        with self._recorder.lock:
            self._recorder.connections.clear()
        return self

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        loop = self._controller.loop

        async def close_connections() -> None:
            with self._recorder.lock:
                live = list(self._recorder.live)
            for proto in live:
                if proto.transport is not None:
                    proto.transport.close()
            for proto in live:
                await asyncio.to_thread(proto.conn.closed.wait, 2.0)

        try:
            asyncio.run_coroutine_threadsafe(close_connections(), loop).result(5.0)
        finally:
            self._controller.stop()

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addressing ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        assert isinstance(self._controller, _TCPController)
        return self._controller.port

    # -- what was recorded --------------------------------------------------------------------

    @property
    def connections(self) -> list[Connection]:
        with self._recorder.lock:
            return list(self._recorder.connections)

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._recorder.lock:
            return list(self._recorder.messages)

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        with self._recorder.lock:
            return list(self._recorder.auth_attempts)

    @property
    def commands(self) -> list[Command]:
        return [c for conn in self.connections for c in conn.commands]

    @property
    def verbs(self) -> list[str]:
        return [c.verb for c in self.commands]

    async def wait_all_closed(self, timeout: float = 5.0) -> None:
        """Wait (without blocking the caller's loop) until the server saw every client leave."""
        for conn in self.connections:
            if not await asyncio.to_thread(conn.closed.wait, timeout):
                raise AssertionError("a client connection was not closed")


# --------------------------------------------------------------------------------------------
# Scripted asyncio server
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Write these bytes as they are."""

    data: bytes


@dataclass(frozen=True)
class Expect:
    """Read one line; it must start with ``prefix`` (case-insensitive), else the connection
    is closed and the mismatch recorded in ``errors``."""

    prefix: bytes = b""


@dataclass(frozen=True)
class ExpectData:
    """Read a DATA payload up to and including the ``.\\r\\n`` terminator line."""


@dataclass(frozen=True)
class Hang:
    """Never answer again: keep reading (and recording) until the client closes."""


@dataclass(frozen=True)
class Close:
    """Close the connection."""


@dataclass(frozen=True)
class Delay:
    """Wait this many seconds before the next step: a slow server (timeout tests only)."""

    seconds: float


@dataclass(frozen=True)
class StopReading:
    """Stop reading from the socket (the client's writes back up) until the server exits."""


Step = Send | Expect | ExpectData | Hang | Close | StopReading | Delay


def reply(*lines: str) -> Send:
    """A (multi-line) reply: ``reply("250-a", "250 b")`` -> ``250-a\\r\\n250 b\\r\\n``."""
    return Send("".join(line + "\r\n" for line in lines).encode())


def ehlo_reply(*keywords: str, host: str = "scripted.test") -> Send:
    """A 250 EHLO reply advertising ``keywords``."""
    items = [host, *keywords]
    return reply(*[f"250-{k}" for k in items[:-1]], f"250 {items[-1]}")


GREETING = reply("220 scripted.test ESMTP ready")


class ScriptedConnection:
    """What one scripted connection received."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.lines: list[bytes] = []
        self.errors: list[str] = []
        self.eof = asyncio.Event()
        self.finished = asyncio.Event()


class ScriptedServer:
    """``async with ScriptedServer(script, ...) as server:`` - plays one script per connection.

    The n-th connection plays the n-th script (the last script repeats). Everything the client
    sends is recorded in ``server.connections[i]``. Leaving the block closes the server and every
    connection it accepted.
    """

    def __init__(self, *scripts: Iterable[Step], host: str = "127.0.0.1") -> None:
        if not scripts:
            raise ValueError("at least one script is needed")
        self.scripts = [list(s) for s in scripts]
        self.host = host
        self.connections: list[ScriptedConnection] = []
        self.connected = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._stopping = asyncio.Event()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        # Closing the transports ends every handler (reads see EOF, writes fail); cancelling
        # is only a fallback, as a cancelled handler task makes asyncio's streams log an error.
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        conn = ScriptedConnection()
        index = len(self.connections)
        self.connections.append(conn)
        self.connected.set()
        script = self.scripts[min(index, len(self.scripts) - 1)]
        try:
            await self._play(script, conn, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            conn.eof.set()
        finally:
            conn.finished.set()
            writer.close()
            self._tasks.discard(task)

    async def _play(
        self,
        script: list[Step],
        conn: ScriptedConnection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        for step in script:
            if isinstance(step, Send):
                writer.write(step.data)
                await writer.drain()
            elif isinstance(step, Expect):
                line = await reader.readline()
                conn.received += line
                if not line:
                    conn.eof.set()
                    conn.errors.append(f"EOF while expecting {step.prefix!r}")
                    return
                conn.lines.append(line)
                if not line.upper().startswith(step.prefix.upper()):
                    conn.errors.append(f"expected {step.prefix!r}, got {line!r}")
                    return
            elif isinstance(step, ExpectData):
                try:
                    payload = await reader.readuntil(b"\r\n.\r\n")
                except asyncio.IncompleteReadError as exc:
                    conn.received += exc.partial
                    conn.eof.set()
                    conn.errors.append("EOF inside DATA")
                    return
                conn.received += payload
                conn.lines.append(payload)
            elif isinstance(step, Close):
                return
            elif isinstance(step, Delay):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, StopReading):
                writer.transport.pause_reading()
                await self._stopping.wait()
                return
            else:
                break
        # Hang, or the script ran out: read and record until the client goes away.
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                conn.eof.set()
                return
            conn.received += chunk
            conn.lines.extend(chunk.splitlines(keepends=True))
