"""The SMTP client: aiosmtplib's ``SMTP`` class, name for name, as a facade.

``SMTP`` holds one :class:`~fastsmtp._options.ConnectionOptions` and, while connected, one
:class:`~fastsmtp.protocol.SMTPProtocol` with its :class:`~fastsmtp._session.SMTPSession`.
The work is done by the parts it is composed of: :mod:`fastsmtp._connector` opens
connections, :mod:`fastsmtp._auth` runs SASL mechanisms, :mod:`fastsmtp._sending` runs mail
transactions, :mod:`fastsmtp._commands` builds and checks command lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterable, Sequence
from email.message import EmailMessage, Message
from types import TracebackType
from typing import Any

from . import _connector
from ._auth import CramMD5, Login, Mechanism, Plain, XOAuth2, authenticate
from ._commands import command_line, mail_line, rcpt_line, validate_local_hostname, vrfy_line
from ._options import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT  # public in aiosmtplib.smtp
from ._options import (
    SMTP_PORT,
    SMTP_STARTTLS_PORT,
    SMTP_TLS_PORT,
    ConnectionOptions,
    OptionAttribute,
)
from ._sending import (
    Envelope,
    check_source,
    message_envelope,
    prepare_message,
    send_data,
    transact,
)
from ._sending import ProgressCallback as ProgressCallback
from ._sending import Submission as Submission
from ._session import SMTPUTF8_NOT_SUPPORTED, Kind, ServerState
from ._transaction import MessageSource
from .errors import (
    SMTPAuthenticationError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from .protocol import SMTPProtocol
from .response import SMTPResponse
from .typing import Default, SMTPTokenGenerator, SocketPathType, _default

# isort: split
# Module-level names aiosmtplib.smtp shows (code imports them from there): re-exported.
from .auth import auth_crammd5_verify as auth_crammd5_verify
from .auth import auth_login_encode as auth_login_encode
from .auth import auth_plain_encode as auth_plain_encode
from .auth import auth_xoauth2_encode as auth_xoauth2_encode
from .email import extract_recipients as extract_recipients
from .email import extract_sender as extract_sender
from .email import flatten_message as flatten_message
from .email import parse_address as parse_address
from .email import quote_address as quote_address
from .errors import SMTPConnectError as SMTPConnectError
from .errors import SMTPConnectResponseError as SMTPConnectResponseError
from .errors import SMTPConnectTimeoutError as SMTPConnectTimeoutError
from .errors import SMTPRecipientsRefused as SMTPRecipientsRefused
from .esmtp import parse_esmtp_extensions as parse_esmtp_extensions
from .protocol import normalize_message_line_endings as normalize_message_line_endings
from .typing import SMTPStatus as SMTPStatus

__all__ = ("SMTP", "SMTP_PORT", "SMTP_STARTTLS_PORT", "SMTP_TLS_PORT")

_RSET = b"RSET\r\n"


class _ServerFact:
    """A public attribute that is part of what the server said (``esmtp_extensions``...):
    read from, and written to, the current connection's session."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, instance: SMTP | None, owner: type) -> Any:
        if instance is None:
            return self
        return getattr(instance._server(), self._name)

    def __set__(self, instance: SMTP, value: Any) -> None:
        setattr(instance._server(), self._name, value)


class SMTP:
    """An SMTP client connection (RFC 5321), compatible with ``aiosmtplib.SMTP``.

    Construct it with connection options (no I/O happens), then ``await connect()``
    or use it as an async context manager. Every command method takes a
    keyword-only ``timeout`` (seconds; ``None`` waits forever) that defaults to the
    instance's ``timeout``.
    """

    AUTH_METHODS: tuple[str, ...] = ("cram-md5", "plain", "login")

    hostname = OptionAttribute[str | None]("hostname")
    port = OptionAttribute[int | None]("port")
    local_hostname = OptionAttribute[str | None]("local_hostname")
    source_address = OptionAttribute[tuple[str, int] | None]("source_address")
    timeout = OptionAttribute[float | None]("timeout")
    use_tls = OptionAttribute[bool]("use_tls")
    validate_certs = OptionAttribute[bool]("validate_certs")
    client_cert = OptionAttribute[str | None]("client_cert")
    client_key = OptionAttribute[str | None]("client_key")
    tls_context = OptionAttribute[ssl.SSLContext | None]("tls_context")
    cert_bundle = OptionAttribute[str | None]("cert_bundle")
    socket_path = OptionAttribute[SocketPathType | None]("socket_path")
    sock = OptionAttribute[socket.socket | None]("sock")
    allow_insecure_auth = OptionAttribute[bool]("allow_insecure_auth")
    pipelining = OptionAttribute[bool | None]("pipelining")
    chunking = OptionAttribute[bool | None]("chunking")

    esmtp_extensions = _ServerFact("extensions")
    server_auth_methods = _ServerFact("auth_methods")
    supports_esmtp = _ServerFact("supports_esmtp")
    last_helo_response = _ServerFact("last_helo_response")

    def __init__(
        self,
        *,
        hostname: str | None = None,
        port: int | None = None,
        username: str | bytes | None = None,
        password: str | bytes | None = None,
        oauth_token_generator: SMTPTokenGenerator | None = None,
        local_hostname: str | None = None,
        source_address: tuple[str, int] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        use_tls: bool = False,
        start_tls: bool | None = None,
        validate_certs: bool = True,
        client_cert: str | None = None,
        client_key: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        cert_bundle: str | None = None,
        socket_path: SocketPathType | None = None,
        sock: socket.socket | None = None,
        allow_insecure_auth: bool = False,
        pipelining: bool | None = None,
        chunking: bool | None = False,
    ) -> None:
        self._options = ConnectionOptions.from_arguments(locals())
        self._protocol: SMTPProtocol | None = None
        self._idle_server = ServerState()
        self.loop: asyncio.AbstractEventLoop | None = None
        # Why the last connection ended, kept as the cause of "Server not connected".
        self._close_reason: Exception | None = None
        self._locks_loop: asyncio.AbstractEventLoop | None = None
        self._connect_lock = asyncio.Lock()
        # EHLO-if-needed, planning and the commands of one sendmail, one caller at a time
        # (the final reply of a pipelined message is awaited outside it).
        self._sendmail_lock = asyncio.Lock()

    @classmethod
    def _from_options(cls, options: ConnectionOptions) -> SMTP:
        """A client with a copy of ``options`` (the pool's way to make connections)."""
        client = cls.__new__(cls)
        SMTP.__init__(client)
        client._options = options.copy()
        return client

    # -- context manager ------------------------------------------------------------

    async def __aenter__(self) -> SMTP:
        if not self.is_connected:
            await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # asyncio.TimeoutError is the builtin TimeoutError from 3.11 on; on 3.10 the
        # SMTPTimeoutErrors derive from asyncio's own class.
        if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
            self.close()
            return
        try:
            await self.quit()
        except (SMTPServerDisconnected, SMTPResponseException, SMTPTimeoutError):
            pass
        finally:
            self.close()

    # -- connection -----------------------------------------------------------------

    @property
    def protocol(self) -> SMTPProtocol | None:
        """The protocol shell of the current connection, if any."""
        return self._protocol

    @property
    def transport(self) -> asyncio.BaseTransport | None:
        """The transport of the current connection, if any."""
        return self._protocol.transport if self._protocol is not None else None

    async def connect(
        self,
        *,
        hostname: str | Default | None = _default,
        port: int | Default | None = _default,
        username: str | bytes | Default | None = _default,
        password: str | bytes | Default | None = _default,
        oauth_token_generator: SMTPTokenGenerator | Default | None = _default,
        local_hostname: str | Default | None = _default,
        source_address: tuple[str, int] | Default | None = _default,
        timeout: float | Default | None = _default,
        use_tls: bool | None = None,
        start_tls: bool | Default | None = _default,
        validate_certs: bool | None = None,
        client_cert: str | Default | None = _default,
        client_key: str | Default | None = _default,
        tls_context: ssl.SSLContext | Default | None = _default,
        cert_bundle: str | Default | None = _default,
        socket_path: SocketPathType | Default | None = _default,
        sock: socket.socket | Default | None = _default,
        allow_insecure_auth: bool | None = None,
        pipelining: bool | Default | None = _default,
        chunking: bool | Default | None = _default,
    ) -> SMTPResponse:
        """Connect, read the greeting, then STARTTLS and log in as configured.

        Options given here replace the stored ones (``timeout`` applies to this
        connect only). Returns the server's 220 greeting.
        """
        self._options.update(locals())
        loop = asyncio.get_running_loop()
        self.loop = loop
        if self._locks_loop is not loop:
            # asyncio locks bind to the loop that first waits on them; a client reused
            # across loops (sendmail_sync) gets fresh ones.
            if not self._connect_lock.locked():
                self._connect_lock = asyncio.Lock()
            self._sendmail_lock = asyncio.Lock()
            self._locks_loop = loop
        if self.is_connected:
            raise SMTPException("SMTP instance is already connected")
        self._close_reason = None
        await self._connect_lock.acquire()
        try:
            await _connector.local_hostname(self._options)
            self._protocol, response = await _connector.open_channel(
                self._options, self._options.timeout_or(timeout), self._forget
            )
            await self._maybe_start_tls_on_connect()
            await self._maybe_login_on_connect()
        except BaseException:
            self.close()
            raise
        return response

    async def _maybe_start_tls_on_connect(self) -> None:
        start_tls = self._options.start_tls
        if start_tls:
            await self.starttls()
        elif start_tls is None and not self._options.use_tls:
            if self._live().is_tls:
                return
            await self._ehlo_or_helo_if_needed()
            if self.supports_extension("starttls"):
                await self.starttls()

    async def _maybe_login_on_connect(self) -> None:
        options = self._options
        if options.oauth_token_generator is not None:
            if options.username is None:
                raise SMTPException("username is required when using oauth_token_generator")
            await self._ehlo_or_helo_if_needed()
            if "xoauth2" not in self.server_auth_methods:
                raise SMTPException(
                    "oauth_token_generator provided but server does not support XOAUTH2"
                )
            access_token = await options.oauth_token_generator()
            await self.auth_xoauth2(options.username, access_token)
        elif options.username is not None:
            await self.login(options.username, options.password or "")

    def close(self) -> None:
        """Close the connection (no QUIT) and forget the server's state. Idempotent."""
        protocol = self._protocol
        if protocol is not None:
            self._close_reason = protocol.error
            if protocol.is_connected:
                protocol.abort()
        if self._connect_lock.locked():
            self._connect_lock.release()
        self._protocol = None
        self._idle_server = ServerState()

    def _forget(self, protocol: SMTPProtocol) -> None:
        """``protocol``'s connection has ended: close it, and if it is the current one,
        the client's state too (a late word from an earlier connection changes nothing)."""
        if protocol is self._protocol:
            self.close()
        elif protocol.is_connected:
            protocol.abort()

    @property
    def is_connected(self) -> bool:
        """True if the connection is open."""
        return self._protocol is not None and self._protocol.is_connected

    def get_transport_info(self, key: str) -> Any:
        """``transport.get_extra_info(key)``: peername, sockname, cipher, peercert, ..."""
        transport = self.transport
        if not self.is_connected or transport is None:
            raise SMTPServerDisconnected("Server not connected")
        return transport.get_extra_info(key)

    # -- server state ---------------------------------------------------------------

    def _server(self) -> ServerState:
        protocol = self._protocol
        return protocol.session.server if protocol is not None else self._idle_server

    @property
    def last_ehlo_response(self) -> SMTPResponse | None:
        """The last successful EHLO reply; setting it parses the extensions."""
        return self._server().last_ehlo_response

    @last_ehlo_response.setter
    def last_ehlo_response(self, response: SMTPResponse | None) -> None:
        self._server().record_ehlo(response)

    @property
    def is_ehlo_or_helo_needed(self) -> bool:
        """True until EHLO or HELO has succeeded on this connection."""
        return not self._server().greeted

    def supports_extension(self, extension: str, /) -> bool:
        """True if the server advertised ``extension`` (case-insensitive)."""
        return extension.lower() in self._server().extensions

    @property
    def supported_auth_methods(self) -> list[str]:
        """Methods both sides support, in the client's order of preference."""
        methods = self._server().auth_methods
        return [method for method in self.AUTH_METHODS if method in methods]

    # -- commands -------------------------------------------------------------------

    def _live(self) -> SMTPProtocol:
        if self._protocol is None:
            raise SMTPServerDisconnected("Server not connected") from self._close_reason
        return self._protocol

    async def _command(
        self, line: bytes, kind: Kind, timeout: float | Default | None, *, redact: bool = False
    ) -> SMTPResponse:
        """One command in its own turn; a connection that ends on the way is forgotten."""
        protocol = self._live()
        try:
            return await protocol.execute(
                line, kind, self._options.timeout_or(timeout), redact=redact
            )
        finally:
            if not protocol.is_connected:  # an error, or a 421 (RFC 5321 section 3.8)
                self._forget(protocol)

    async def execute_command(
        self, *args: bytes, timeout: float | Default | None = _default
    ) -> SMTPResponse:
        """Send one raw command (arguments joined by spaces) and return the reply."""
        self._live()
        return await self._command(command_line(*args), Kind.COMMAND, timeout)

    async def _ehlo_or_helo_if_needed(self) -> None:
        if self.is_ehlo_or_helo_needed:
            try:
                await self.ehlo()
            except SMTPHeloError:
                if not self.is_connected:
                    raise
                await self.helo()

    async def _greet(
        self, kind: Kind, hostname: str | None, timeout: float | Default | None
    ) -> SMTPResponse:
        if hostname is None:
            hostname = await _connector.local_hostname(self._options)
        else:
            hostname = validate_local_hostname(hostname)
        verb = b"EHLO" if kind is Kind.EHLO else b"HELO"
        response = await self._command(command_line(verb, hostname.encode("ascii")), kind, timeout)
        if response.code != 250:
            raise SMTPHeloError(response.code, response.message)
        return response  # the session has recorded it

    async def helo(
        self, *, hostname: str | None = None, timeout: float | Default | None = _default
    ) -> SMTPResponse:
        """Send HELO (RFC 5321 section 4.1.1.1)."""
        return await self._greet(Kind.HELO, hostname, timeout)

    async def ehlo(
        self, *, hostname: str | None = None, timeout: float | Default | None = _default
    ) -> SMTPResponse:
        """Send EHLO and record the server's extensions (RFC 5321 section 4.1.1.1)."""
        return await self._greet(Kind.EHLO, hostname, timeout)

    async def help(self, *, timeout: float | Default | None = _default) -> str:
        """Send HELP; returns the help text."""
        await self._ehlo_or_helo_if_needed()
        response = await self._command(b"HELP\r\n", Kind.COMMAND, timeout)
        if response.code not in (211, 214, 250):
            raise SMTPResponseException(response.code, response.message)
        return response.message

    async def rset(self, *, timeout: float | Default | None = _default) -> SMTPResponse:
        """Send RSET: abort the current mail transaction."""
        return await self._simple(_RSET, Kind.RSET, timeout)

    async def noop(self, *, timeout: float | Default | None = _default) -> SMTPResponse:
        """Send NOOP."""
        return await self._simple(b"NOOP\r\n", Kind.COMMAND, timeout)

    async def _simple(
        self, line: bytes, kind: Kind, timeout: float | Default | None
    ) -> SMTPResponse:
        await self._ehlo_or_helo_if_needed()
        response = await self._command(line, kind, timeout)
        if response.code != 250:
            raise SMTPResponseException(response.code, response.message)
        return response

    async def _verify(
        self,
        verb: bytes,
        address: str,
        options: Iterable[str] | None,
        codes: tuple[int, ...],
        timeout: float | Default | None,
    ) -> SMTPResponse:
        options = list(options) if options is not None else []
        utf8 = any(option.upper() == "SMTPUTF8" for option in options)
        line = vrfy_line(verb, address, options, utf8)
        await self._ehlo_or_helo_if_needed()
        if utf8 and not self.supports_extension("smtputf8"):
            raise SMTPNotSupported(SMTPUTF8_NOT_SUPPORTED)
        response = await self._command(line, Kind.COMMAND, timeout)
        if response.code not in codes:
            raise SMTPResponseException(response.code, response.message)
        return response

    async def vrfy(
        self,
        address: str,
        /,
        *,
        options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """Send VRFY: ask the server to verify a mailbox."""
        return await self._verify(b"VRFY", address, options, (250, 251, 252), timeout)

    async def expn(
        self,
        address: str,
        /,
        *,
        options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """Send EXPN: ask the server to expand a mailing list."""
        return await self._verify(b"EXPN", address, options, (250,), timeout)

    async def mail(
        self,
        sender: str,
        /,
        *,
        options: Iterable[str] | None = None,
        encoding: str = "ascii",
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """Send MAIL FROM (RFC 5321 section 4.1.1.2); raises SMTPSenderRefused."""
        line = mail_line(sender, options, encoding)
        await self._ehlo_or_helo_if_needed()
        response = await self._command(line, Kind.MAIL, timeout)
        if response.code != 250:
            raise SMTPSenderRefused(response.code, response.message, sender)
        return response

    async def rcpt(
        self,
        recipient: str,
        /,
        *,
        options: Iterable[str] | None = None,
        encoding: str = "ascii",
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """Send RCPT TO (RFC 5321 section 4.1.1.3); raises SMTPRecipientRefused."""
        line = rcpt_line(recipient, options, encoding)
        await self._ehlo_or_helo_if_needed()
        response = await self._command(line, Kind.RCPT, timeout)
        if response.code not in (250, 251):
            raise SMTPRecipientRefused(response.code, response.message, recipient)
        return response

    async def data(
        self,
        message: MessageSource,
        /,
        *,
        timeout: float | Default | None = _default,
        progress: ProgressCallback | None = None,
    ) -> SMTPResponse:
        """Send DATA and the message (RFC 5321 section 4.1.1.4); raises SMTPDataError.

        ``message`` is bytes, str (ASCII), or a stream: an iterable or async iterable
        of bytes chunks, or a binary file object, read and sent chunk by chunk with
        flow control. Line ends are normalised to CRLF and lines starting with "."
        are stuffed; the body goes only after the server's 354. ``progress(sent,
        total)`` is called as the message goes out (``total`` is None for a stream).
        """
        if not self.is_connected:
            raise SMTPServerDisconnected("Connection lost")
        check_source(message)
        await self._ehlo_or_helo_if_needed()
        protocol = self._live()
        try:
            return await send_data(
                protocol, self._options, message, self._options.timeout_or(timeout), progress
            )
        finally:
            if not protocol.is_connected:
                self._forget(protocol)

    async def quit(self, *, timeout: float | Default | None = _default) -> SMTPResponse:
        """Send QUIT and close the connection."""
        protocol = self._live()
        try:
            response = await self._command(b"QUIT\r\n", Kind.QUIT, timeout)
            if response.code != 221:
                raise SMTPResponseException(response.code, response.message)
            protocol.close()  # RFC 5321 section 4.1.1.10: the one clean close
        finally:
            self._forget(protocol)
        return response

    async def starttls(
        self,
        *,
        server_hostname: str | None = None,
        validate_certs: bool | None = None,
        client_cert: str | Default | None = _default,
        client_key: str | Default | None = _default,
        cert_bundle: str | Default | None = _default,
        tls_context: ssl.SSLContext | Default | None = _default,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """Upgrade the connection with STARTTLS (RFC 3207), then forget the server state.

        The certificate is verified against ``server_hostname``, or else the host
        this client connected to (also when that host was the default). The command
        and the handshake run in one turn: no other caller writes in between.
        """
        self._options.update(locals())
        protocol = self._live()
        if protocol.is_tls:
            raise SMTPException("Connection already using TLS")
        await self._ehlo_or_helo_if_needed()
        if not self.supports_extension("starttls"):
            raise SMTPException("SMTP STARTTLS extension not supported by server.")
        context = await _connector.tls_context(self._options)
        if server_hostname is None:
            server_hostname = self._options.tls_hostname()
        timeout_value = self._options.timeout_or(timeout)
        try:
            async with protocol.turn:
                replies, error = await protocol.exchange(
                    b"STARTTLS\r\n", (Kind.STARTTLS,), timeout_value
                )
                if error is not None:
                    raise error
                response = replies[0]
                if response.code != 220:
                    raise SMTPResponseException(response.code, response.message)
                # RFC 3207 section 4.2: the session forgets everything learnt before.
                await protocol.start_tls(context, server_hostname, timeout_value)
        finally:
            if not protocol.is_connected:
                self._forget(protocol)
        return response

    # -- authentication (RFC 4954) ----------------------------------------------------

    def _check_auth_channel(self) -> None:
        protocol = self._live()
        if self._options.allow_insecure_auth or protocol.is_tls or _connector.is_local(protocol):
            return
        raise SMTPException(
            "Refusing to send credentials over an unencrypted connection to a remote "
            "server. Use TLS (use_tls=True or start_tls=True), or pass "
            "allow_insecure_auth=True if this channel is trusted."
        )

    async def _authenticate(
        self, mechanism: Mechanism, timeout: float | Default | None
    ) -> SMTPResponse:
        self._check_auth_channel()
        protocol = self._live()
        try:
            return await authenticate(protocol, mechanism, self._options.timeout_or(timeout))
        finally:
            if not protocol.is_connected:
                self._forget(protocol)

    async def login(
        self,
        username: str | bytes,
        password: str | bytes,
        /,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """Authenticate with the first method that works: CRAM-MD5, PLAIN, then LOGIN."""
        await self._ehlo_or_helo_if_needed()
        if not self.supports_extension("auth"):
            message = "The SMTP AUTH extension is not supported by this server."
            if not self._live().is_tls:
                message += " Try connecting via TLS (or STARTTLS)."
            raise SMTPException(message)
        self._check_auth_channel()
        error: SMTPAuthenticationError | None = None
        for method in self.supported_auth_methods:
            handler = getattr(self, "auth_" + method.replace("-", ""), None)
            if handler is None:
                raise RuntimeError(f"Missing handler for auth method {method}")
            try:
                response: SMTPResponse = await handler(username, password, timeout=timeout)
            except SMTPAuthenticationError as exc:
                error = exc
            else:
                return response
        if error is not None:
            raise error
        raise SMTPException("No suitable authentication method found.")

    async def auth_crammd5(
        self,
        username: str | bytes,
        password: str | bytes,
        /,
        *,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """AUTH CRAM-MD5 (RFC 2195)."""
        return await self._authenticate(CramMD5(username, password), timeout)

    async def auth_plain(
        self,
        username: str | bytes,
        password: str | bytes,
        /,
        *,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """AUTH PLAIN (RFC 4616) with an initial response."""
        return await self._authenticate(Plain(username, password), timeout)

    async def auth_login(
        self,
        username: str | bytes,
        password: str | bytes,
        /,
        *,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """AUTH LOGIN, the username sent as the initial response."""
        return await self._authenticate(Login(username, password), timeout)

    async def auth_xoauth2(
        self,
        username: str | bytes,
        access_token: str | bytes,
        /,
        *,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """AUTH XOAUTH2 with an OAuth 2.0 bearer token."""
        await self._ehlo_or_helo_if_needed()
        return await self._authenticate(XOAuth2(username, access_token), timeout)

    # -- sending mail -----------------------------------------------------------------

    async def sendmail(
        self,
        sender: str,
        recipients: str | Sequence[str],
        message: MessageSource,
        /,
        *,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
        size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """Send one message to ``recipients`` (MAIL, RCPT each, DATA or BDAT).

        Returns ``(refused, reply)``: the refused recipients with the server's reply
        for each, and the text of the final reply. Raises if the sender or every
        recipient is refused, or the message is refused.

        When the server advertises PIPELINING (RFC 2920), MAIL, every RCPT and DATA
        go in one write (``pipelining=False`` turns this off); the results are the
        same as sending them one by one. ``message`` may be bytes, str, or a stream
        (see :meth:`data`); for a stream, give ``size`` to announce it with SIZE.
        """
        submission = await self._submit(
            sender,
            recipients,
            message,
            mail_options=mail_options,
            rcpt_options=rcpt_options,
            timeout=timeout,
            size=size,
            progress=progress,
        )
        # RFC 2920 section 3.1: with pipelining, the next transaction's commands may
        # go out while this message's final reply is on its way, so the final reply
        # is awaited outside the turn (the reply FIFO keeps the pairing exact).
        try:
            response = await submission.reply()
        except SMTPResponseException:
            await self._reset_after_failure(timeout)
            raise
        return submission.refused, response.message

    async def _reset_after_failure(self, timeout: float | Default | None) -> None:
        """RSET after a refused message, as aiosmtplib does; errors are ignored."""
        with contextlib.suppress(ConnectionError, SMTPResponseException):
            await self._command(_RSET, Kind.RSET, timeout)

    async def send_message(
        self,
        message: EmailMessage | Message,
        /,
        *,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """Send an ``email.message`` object; sender and recipients default to its headers.

        Bcc and Resent-Bcc headers are removed from what is sent. SMTPUTF8 and
        8BITMIME are used when the addresses or the server call for them.
        """
        sender, recipient_list = message_envelope(message, sender, recipients)
        await self._greet_if_needed()
        flat, mail_opts = prepare_message(
            message, sender, recipient_list, mail_options, self._server()
        )
        return await self.sendmail(
            sender,
            recipient_list,
            flat,
            mail_options=mail_opts,
            rcpt_options=rcpt_options,
            timeout=timeout,
        )

    def sendmail_sync(self, *args: Any, **kwargs: Any) -> tuple[dict[str, SMTPResponse], str]:
        """Connect, ``sendmail``, QUIT, in a new event loop (not from inside one)."""

        async def run() -> tuple[dict[str, SMTPResponse], str]:
            async with self:
                return await self.sendmail(*args, **kwargs)

        return asyncio.run(run())

    def send_message_sync(self, *args: Any, **kwargs: Any) -> tuple[dict[str, SMTPResponse], str]:
        """Connect, ``send_message``, QUIT, in a new event loop (not from inside one)."""

        async def run() -> tuple[dict[str, SMTPResponse], str]:
            async with self:
                return await self.send_message(*args, **kwargs)

        return asyncio.run(run())

    # -- the submission API (package-internal; SMTPPool is built on it) --------------

    async def _greet_if_needed(self) -> None:
        """EHLO (or HELO) unless this connection has already greeted the server."""
        if self.is_ehlo_or_helo_needed:
            await self._ehlo_or_helo_if_needed()

    async def _submit(
        self,
        sender: str,
        recipients: str | Sequence[str],
        message: MessageSource,
        *,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
        size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> Submission:
        """``sendmail`` up to the end of the message; the final reply comes later.

        Raises what ``sendmail`` raises before the message is out (the refusal of the
        sender, of every recipient, of DATA; a lost connection). The connection's turn
        is free again when this returns, so another transaction can be pipelined behind
        this one (RFC 2920 section 3.1); :meth:`Submission.reply` waits for this one's
        final reply. No RSET follows a failed final reply: the connection may already
        carry the next transaction.
        """
        # Every argument is checked before anything is written.
        envelope = Envelope(sender, recipients, mail_options, rcpt_options)
        if type(message) is not bytes:
            check_source(message)
        options = self._options
        async with self._sendmail_lock:
            protocol = self._protocol
            if protocol is None or not protocol.session.server.greeted:
                await self._ehlo_or_helo_if_needed()  # (no coroutine when greeted)
                protocol = self._live()
            try:
                return await transact(
                    protocol,
                    options,
                    envelope,
                    message,
                    timeout=options.timeout if timeout is _default else timeout,
                    size=size,
                    progress=progress,
                )
            finally:
                if not protocol.is_connected:
                    self._forget(protocol)

    async def _submit_message(
        self,
        message: EmailMessage | Message,
        *,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
    ) -> Submission:
        """``send_message`` up to the end of the message (see :meth:`_submit`)."""
        sender, recipient_list = message_envelope(message, sender, recipients)
        await self._greet_if_needed()
        flat, mail_opts = prepare_message(
            message, sender, recipient_list, mail_options, self._server()
        )
        return await self._submit(
            sender,
            recipient_list,
            flat,
            mail_options=mail_opts,
            rcpt_options=rcpt_options,
            timeout=timeout,
        )
