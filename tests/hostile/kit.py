"""A hostile scripted SMTP server for tests/hostile (extends the kit of ``tests._servers``).

:class:`HostileServer` runs in the test's own event loop on 127.0.0.1 port 0 (or any host
given, e.g. an address of a test network namespace). Each connection plays a script of steps
(the ``Send``/``Expect``/``ExpectData``/``Hang``/``Close``/``StopReading`` steps of
``tests._servers`` plus the ones below) and records **every byte it receives**, split by phase:

* ``plain`` - bytes received in plaintext (before any TLS), exactly as they came off the socket;
* ``raw_after_starttls`` - raw bytes received after the server began its STARTTLS handshake
  (TLS records if the client upgraded; anything else there is a plaintext leak);
* ``tls`` - decrypted application data received over TLS.

TLS is done by hand with ``ssl.MemoryBIO`` on the same socket, so the server sees every raw
byte and can inject plaintext at any point of the upgrade, and so it behaves the same under
asyncio and uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests._servers import (
    Close,
    Expect,
    ExpectData,
    Hang,
    Send,
    StopReading,
    ehlo_reply,
    reply,
)

__all__ = [
    "Close",
    "Drip",
    "Expect",
    "ExpectData",
    "ExpectLine",
    "Hang",
    "HostileConnection",
    "HostileServer",
    "LenientData",
    "Pause",
    "Respond",
    "Send",
    "SendOnClientBytes",
    "StartTLS",
    "StopReading",
    "TLSFiles",
    "abort",
    "ehlo_reply",
    "is_tls_records",
    "make_tls_files",
    "reply",
]

GREETING = reply("220 hostile.test ESMTP ready")


# -- extra steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drip:
    """Send ``data`` one byte at a time, ``interval`` seconds apart (the schedule under test)."""

    data: bytes
    interval: float


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` before the next step (to put the next bytes in a later segment)."""

    seconds: float


@dataclass(frozen=True)
class StartTLS:
    """Upgrade this connection to TLS (server side) on the same socket.

    If the handshake fails the failure is recorded in ``handshake_error`` and the server
    keeps reading (and recording) raw bytes until the client goes away.
    """

    context: ssl.SSLContext


@dataclass(frozen=True)
class SendOnClientBytes:
    """Wait until the client sends anything (e.g. its TLS ClientHello), then send ``data``
    in plaintext on the raw socket, then record raw bytes until the client goes away."""

    data: bytes


@dataclass(frozen=True)
class ExpectLine:
    """Read one line; it must match ``pattern`` (a full-match regex on the line without CRLF)."""

    pattern: bytes


@dataclass(frozen=True)
class LenientData:
    """A deliberately lenient DATA reader: any of ``<CR|LF|CRLF> "." <CR|LF|CRLF>`` ends the
    message (the SMTP-smuggling-prone servers of 2023). Records each message; the rest of
    the stream is read as commands by the following steps."""


@dataclass(frozen=True)
class Respond:
    """A permissive server from here on: answers every line (EHLO with SMTPUTF8, 8BITMIME,
    SIZE and AUTH PLAIN LOGIN XOAUTH2; AUTH with 235, after a 334 for LOGIN; DATA with 354,
    then 250; QUIT with 221 and the end; anything else with 250) and records each line."""


@dataclass(frozen=True)
class abort:
    """Reset the TCP connection at once (no FIN dance, no TLS close_notify)."""


_LENIENT_END = re.compile(rb"(?:\r\n|\n|\r)\.(?:\r\n|\n|\r)")


# -- recording --------------------------------------------------------------------------------


@dataclass
class HostileConnection:
    """Everything one client connection sent, and how the server's script went."""

    plain: bytearray = field(default_factory=bytearray)
    raw_after_starttls: bytearray = field(default_factory=bytearray)
    tls: bytearray = field(default_factory=bytearray)
    #: Lines (or DATA payloads) the script read, with whether they came over TLS.
    lines: list[tuple[bool, bytes]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    handshake_done: bool = False
    handshake_error: str | None = None
    eof: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def commands(self) -> list[bytes]:
        return [line for _, line in self.lines]

    @property
    def received(self) -> bytes:
        return bytes(self.plain) + bytes(self.raw_after_starttls)


class _Channel:
    """A byte channel over a stream that can switch to TLS (MemoryBIO) in place."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: HostileConnection,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.buffer = bytearray()
        self.tls: ssl.SSLObject | None = None
        self._in: ssl.MemoryBIO | None = None
        self._out: ssl.MemoryBIO | None = None
        self.upgrading = False

    async def _raw_read(self) -> bytes:
        data = await self.reader.read(65536)
        if self.upgrading or self.tls is not None:
            self.conn.raw_after_starttls += data
        else:
            self.conn.plain += data
        return data

    def _flush(self) -> None:
        assert self._out is not None
        pending = self._out.read()
        if pending:
            self.writer.write(pending)

    async def read_some(self) -> bytes:
        """Next application bytes (decrypted under TLS); b"" at EOF."""
        if self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            return data
        if self.tls is None:
            return await self._raw_read()
        assert self._in is not None
        while True:
            try:
                data = self.tls.read(65536)
            except ssl.SSLWantReadError:
                raw = await self._raw_read()
                if not raw:
                    return b""
                self._in.write(raw)
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLError):
                return b""
            self.conn.tls += data
            return data

    async def readline(self) -> bytes:
        while True:
            nl = self.buffer.find(b"\n")
            if nl >= 0:
                line = bytes(self.buffer[: nl + 1])
                del self.buffer[: nl + 1]
                return line
            data = await self.read_some()
            if not data:
                line = bytes(self.buffer)
                self.buffer.clear()
                return line
            self.buffer += data

    async def write(self, data: bytes) -> None:
        if self.tls is None:
            self.writer.write(data)
        else:
            self.tls.write(data)
            self._flush()
        await self.writer.drain()

    async def start_tls(self, context: ssl.SSLContext) -> None:
        self.upgrading = True
        # Anything the script did not read before the upgrade was plaintext: keep it visible.
        if self.buffer:
            self.conn.raw_after_starttls += self.buffer
            self.buffer.clear()
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(self._in, self._out, server_side=True)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush_bio(self._out)
                await self.writer.drain()
                raw = await self._raw_read()
                if not raw:
                    raise ConnectionResetError("EOF during TLS handshake") from None
                self._in.write(raw)
        self._flush_bio(self._out)
        await self.writer.drain()
        self.tls = tls

    def _flush_bio(self, out: ssl.MemoryBIO) -> None:
        pending = out.read()
        if pending:
            self.writer.write(pending)


class HostileServer:
    """``async with HostileServer(script, ...) as server:`` - one script per connection.

    The n-th connection plays the n-th script (the last one repeats). ``implicit_tls`` makes
    every connection start with a TLS handshake (like port 465). Leaving the block closes the
    server and every connection, and waits for their tasks.
    """

    def __init__(
        self,
        *scripts: Iterable[Any],
        host: str = "127.0.0.1",
        implicit_tls: ssl.SSLContext | None = None,
        greeting: bool = True,
    ) -> None:
        if not scripts:
            raise ValueError("at least one script is needed")
        self.scripts = [list(s) for s in scripts]
        self.host = host
        self.implicit_tls = implicit_tls
        self.greeting = greeting
        self.connections: list[HostileConnection] = []
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._port: int | None = None

    @property
    def port(self) -> int:
        assert self._port is not None, "server not started"
        return self._port

    @property
    def conn(self) -> HostileConnection:
        """The first (usually only) connection."""
        assert self.connections, "no client connected"
        return self.connections[0]

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
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
        await self._server.wait_closed()

    async def finished(self, timeout: float = 5.0) -> None:
        """Wait until every connection's script is over (the client left or it was closed)."""
        for conn in self.connections:
            await asyncio.wait_for(conn.finished.wait(), timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        conn = HostileConnection()
        index = len(self.connections)
        self.connections.append(conn)
        script = self.scripts[min(index, len(self.scripts) - 1)]
        channel = _Channel(reader, writer, conn)
        try:
            if self.implicit_tls is not None:
                await self._handshake(channel, self.implicit_tls)
            if self.greeting:
                await channel.write(GREETING.data)
            await self._play(script, channel)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            conn.eof.set()
        except asyncio.CancelledError:
            pass  # the server is shutting down; end quietly (start_server logs cancellations)
        finally:
            conn.finished.set()
            writer.transport.abort()
            self._tasks.discard(task)

    async def _handshake(self, channel: _Channel, context: ssl.SSLContext) -> None:
        try:
            await channel.start_tls(context)
        except (ssl.SSLError, ConnectionError) as exc:
            channel.conn.handshake_error = f"{type(exc).__name__}: {exc}"
            await self._drain_raw(channel)
            raise ConnectionResetError("handshake failed") from exc
        channel.conn.handshake_done = True

    async def _drain_raw(self, channel: _Channel) -> None:
        """Record raw bytes until the client goes away."""
        while await channel._raw_read():
            pass
        channel.conn.eof.set()

    async def _play(self, script: list[Any], channel: _Channel) -> None:
        conn = channel.conn
        for step in script:
            if isinstance(step, Send):
                await channel.write(step.data)
            elif isinstance(step, Drip):
                for i in range(len(step.data)):
                    await channel.write(step.data[i : i + 1])
                    await asyncio.sleep(step.interval)
            elif isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, (Expect, ExpectLine)):
                line = await channel.readline()
                if not line:
                    conn.eof.set()
                    conn.errors.append(f"EOF while expecting {step!r}")
                    return
                conn.lines.append((channel.tls is not None, line))
                if isinstance(step, Expect):
                    ok = line.upper().startswith(step.prefix.upper())
                else:
                    ok = re.fullmatch(step.pattern, line.rstrip(b"\r\n")) is not None
                if not ok:
                    conn.errors.append(f"expected {step!r}, got {line!r}")
                    await self._hang(channel)
                    return
            elif isinstance(step, ExpectData):
                if not await self._read_data(channel, re.compile(rb"\r\n\.\r\n"), strict=True):
                    return
            elif isinstance(step, LenientData):
                if not await self._read_data(channel, _LENIENT_END, strict=False):
                    return
            elif isinstance(step, StartTLS):
                await self._handshake(channel, step.context)
            elif isinstance(step, SendOnClientBytes):
                channel.upgrading = True  # what comes now belongs to the TLS phase
                first = await channel._raw_read()
                if first:
                    channel.writer.write(step.data)
                    await channel.writer.drain()
                await self._drain_raw(channel)
                return
            elif isinstance(step, Respond):
                await self._respond(channel)
                return
            elif isinstance(step, Close):
                return
            elif isinstance(step, abort):
                channel.writer.transport.abort()
                return
            elif isinstance(step, StopReading):
                channel.writer.transport.pause_reading()
                await asyncio.Event().wait()  # until the server is closed
            elif isinstance(step, Hang):
                break
            else:
                raise TypeError(f"unknown step {step!r}")
        await self._hang(channel)

    async def _respond(self, channel: _Channel) -> None:
        conn = channel.conn
        login_pending = False
        while True:
            line = await channel.readline()
            if not line:
                conn.eof.set()
                return
            conn.lines.append((channel.tls is not None, line))
            verb = line[:4].upper()
            if login_pending:
                login_pending = False
                answer = b"235 2.7.0 ok\r\n"
            elif verb == b"EHLO":
                answer = ehlo_reply(
                    "SMTPUTF8", "8BITMIME", "SIZE 100000", "AUTH PLAIN LOGIN XOAUTH2"
                ).data
            elif line.upper().startswith(b"AUTH LOGIN"):
                login_pending = True
                answer = b"334 UGFzc3dvcmQ6\r\n"
            elif verb == b"AUTH":
                answer = b"235 2.7.0 ok\r\n"
            elif verb == b"DATA":
                await channel.write(b"354 go ahead\r\n")
                if not await self._read_data(channel, re.compile(rb"\r\n\.\r\n"), strict=True):
                    return
                answer = b"250 ok\r\n"
            elif verb == b"QUIT":
                await channel.write(b"221 bye\r\n")
                return
            else:
                answer = b"250 ok\r\n"
            await channel.write(answer)

    async def _hang(self, channel: _Channel) -> None:
        """Read and record until the client goes away."""
        while True:
            data = await channel.read_some()
            if not data:
                channel.conn.eof.set()
                return
            channel.conn.lines.append((channel.tls is not None, data))

    async def _read_data(self, channel: _Channel, end: re.Pattern[bytes], *, strict: bool) -> bool:
        conn = channel.conn
        buf = bytearray()
        while True:
            match = end.search(buf)
            # A match ending in CR may be the start of CRLF: wait for one more byte.
            if match is not None and (match.end() < len(buf) or buf[-1:] != b"\r"):
                if buf[match.end() - 1 : match.end()] == b"\r" and buf[match.end() :][:1] == b"\n":
                    stop = match.end() + 1
                else:
                    stop = match.end()
                conn.messages.append(bytes(buf[: match.start()]))
                conn.lines.append((channel.tls is not None, bytes(buf[:stop])))
                channel.buffer[:0] = buf[stop:]
                return True
            data = await channel.read_some()
            if not data:
                conn.eof.set()
                conn.errors.append("EOF inside DATA")
                conn.lines.append((channel.tls is not None, bytes(buf)))
                return False
            buf += data


def is_tls_records(data: bytes) -> bool:
    """True if ``data`` is a sequence of TLS records (the last may be cut short).

    Record header: content type 20-23, version 3.x, two-byte length. Plaintext SMTP
    (``EHLO``, ``AUTH``, ``MAIL``...) never parses as such.
    """
    position = 0
    while position < len(data):
        header = data[position : position + 5]
        if header[0] not in (20, 21, 22, 23):
            return False
        if len(header) >= 2 and header[1] != 3:
            return False
        if len(header) < 5:
            return True
        position += 5 + int.from_bytes(header[3:5], "big")
    return True


# -- certificates -------------------------------------------------------------------------------


@dataclass
class TLSFiles:
    """Test PKI: a trusted CA and server contexts with good and bad certificates."""

    ca: trustme.CA
    good: ssl.SSLContext  # localhost / 127.0.0.1, issued by ca
    wrong_name: ssl.SSLContext  # otherhost.example, issued by ca
    expired: ssl.SSLContext  # localhost / 127.0.0.1, issued by ca, expired yesterday
    self_signed: ssl.SSLContext  # localhost / 127.0.0.1, signed by itself
    ca_pem: bytes

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(ctx)
        return ctx


def _server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    import tempfile

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as f:
        f.write(key_pem + cert_pem)
        f.flush()
        ctx.load_cert_chain(f.name)
    return ctx


def _names() -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )


def make_tls_files() -> TLSFiles:
    ca = trustme.CA()
    good = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(good)
    wrong = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("otherhost.example").configure_cert(wrong)

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    expired_cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(_names(), critical=False)
        # Python 3.13 verifies with VERIFY_X509_STRICT: without these the certificate
        # would be refused for its form, not for having expired.
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    self_signed_cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(_names(), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return TLSFiles(
        ca=ca,
        good=good,
        wrong_name=wrong,
        expired=_server_context(expired_cert.public_bytes(pem), key_pem),
        self_signed=_server_context(self_signed_cert.public_bytes(pem), key_pem),
        ca_pem=ca.cert_pem.bytes(),
    )
