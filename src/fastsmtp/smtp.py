"""The SMTP client: aiosmtplib's ``SMTP`` class, name for name, as a facade.

``SMTP`` keeps aiosmtplib's public methods and what each command means (which codes are
success, which exception a refusal raises). The work is done by the parts it is composed
of: a :class:`~fastsmtp._link.Link` holds the options and the current connection (opened
by :mod:`fastsmtp._connector`, one :class:`~fastsmtp.protocol.SMTPProtocol` with its
:class:`~fastsmtp._session.SMTPSession`) and runs mail transactions
(:mod:`fastsmtp._sending`); :mod:`fastsmtp._auth` has the SASL mechanisms;
:mod:`fastsmtp._commands` builds and checks command lines.

Every command sent on its own goes through :meth:`SMTP.execute_command`, as in
aiosmtplib, so a subclass that overrides it sees and may answer each one: EHLO, HELO,
HELP, NOOP, RSET, VRFY, EXPN, MAIL, RCPT, DATA, QUIT, STARTTLS, every AUTH line, and the
commands of a lockstep ``sendmail``. A pipelined ``sendmail`` (one write for MAIL, every
RCPT and DATA; RFC 2920) and BDAT chunks (RFC 3030) are written directly.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from email.message import EmailMessage, Message
from types import TracebackType
from typing import Any, ClassVar, TypeAlias

from ._auth import CramMD5, Login, Plain, XOAuth2
from ._commands import command_args, mail_line, rcpt_line, vrfy_line
from ._link import Link
from ._options import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT  # public in aiosmtplib.smtp
from ._options import (
    SMTP_PORT,
    SMTP_STARTTLS_PORT,
    SMTP_TLS_PORT,
    ConnectionOptions,
    OptionAttribute,
    ServerAttribute,
    Timeouts,
)
from ._sending import ProgressCallback as ProgressCallback
from ._sending import Submission as Submission
from ._sending import check_source
from ._session import SMTPUTF8_NOT_SUPPORTED, ServerState
from ._transaction import MessageSource
from .dsn import DSN
from .errors import (
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
from .errors import SMTPAuthenticationError as SMTPAuthenticationError
from .errors import SMTPConnectError as SMTPConnectError
from .errors import SMTPConnectResponseError as SMTPConnectResponseError
from .errors import SMTPConnectTimeoutError as SMTPConnectTimeoutError
from .errors import SMTPException as SMTPException
from .errors import SMTPRecipientsRefused as SMTPRecipientsRefused
from .esmtp import parse_esmtp_extensions as parse_esmtp_extensions
from .protocol import normalize_message_line_endings as normalize_message_line_endings
from .typing import SMTPStatus as SMTPStatus

__all__ = ("SMTP", "SMTP_PORT", "SMTP_STARTTLS_PORT", "SMTP_TLS_PORT")

# The annotations every command repeats (the same types as aiosmtplib's, spelled once).
_Timeout: TypeAlias = float | Timeouts | Default | None
_Secret: TypeAlias = str | bytes
_Sent: TypeAlias = "tuple[dict[str, SMTPResponse], str]"


class SMTP:
    """An SMTP client connection (RFC 5321), compatible with ``aiosmtplib.SMTP``.

    Construct it with connection options (no I/O happens), then ``await connect()``
    or use it as an async context manager. Every command method takes a
    keyword-only ``timeout`` (seconds; ``None`` waits forever; or a
    :class:`~fastsmtp.Timeouts` with a limit per phase) that defaults to the instance's
    ``timeout``.
    """

    # SCRAM first (its -PLUS variant when TLS allows), then aiosmtplib's order.
    AUTH_METHODS: tuple[str, ...] = ("scram-sha-256", "scram-sha-1", "cram-md5", "plain", "login")
    #: Speak LMTP (RFC 2033) rather than SMTP: :class:`fastsmtp.lmtp.LMTP` sets it.
    _lmtp: ClassVar[bool] = False

    hostname = OptionAttribute[str | None]("hostname")
    port = OptionAttribute[int | None]("port")
    local_hostname = OptionAttribute[str | None]("local_hostname")
    source_address = OptionAttribute[tuple[str, int] | None]("source_address")
    timeout = OptionAttribute[float | Timeouts | None]("timeout")
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

    esmtp_extensions = ServerAttribute("extensions")
    server_auth_methods = ServerAttribute("auth_methods")
    supports_esmtp = ServerAttribute("supports_esmtp")
    last_helo_response = ServerAttribute("last_helo_response")

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
        timeout: float | Timeouts | None = DEFAULT_TIMEOUT,
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
        proxy: str | None = None,
    ) -> None:
        self._options = options = ConnectionOptions.from_arguments(locals())
        self._link = Link(options, self.execute_command, self._ehlo_or_helo_if_needed)
        self._link.lmtp = self._lmtp
        self.loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def _from_options(cls, options: ConnectionOptions) -> SMTP:
        """A client with a copy of ``options`` (the pool's way to make connections)."""
        client = cls()
        client._options = client._link.options = options.copy()
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
        return self._link.protocol

    @property
    def transport(self) -> asyncio.BaseTransport | None:
        """The transport of the current connection, if any."""
        protocol = self._link.protocol
        return protocol.transport if protocol is not None else None

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
        timeout: _Timeout = _default,
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
        proxy: str | Default | None = _default,
    ) -> SMTPResponse:
        """Connect, read the greeting, then STARTTLS and log in as configured.

        Options given here replace the stored ones (``timeout`` applies to this
        connect only). Returns the server's 220 greeting.
        """
        self._options.update(locals())
        self.loop = asyncio.get_running_loop()
        response = await self._link.open(timeout)
        try:
            await self._link.start(self)  # STARTTLS and AUTH as configured
        except BaseException:
            self.close()
            raise
        return response

    def close(self) -> None:
        """Close the connection (no QUIT) and forget the server's state. Idempotent."""
        self._link.close()

    @property
    def is_connected(self) -> bool:
        """True if the connection is open."""
        return self._link.is_connected

    def get_transport_info(self, key: str) -> Any:
        """``transport.get_extra_info(key)``: peername, sockname, cipher, peercert, ..."""
        transport = self.transport
        if not self.is_connected or transport is None:
            raise SMTPServerDisconnected("Server not connected")
        return transport.get_extra_info(key)

    # -- server state ---------------------------------------------------------------

    def _server(self) -> ServerState:
        return self._link.server()

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

    # -- commands: each one through execute_command ------------------------------------

    async def execute_command(self, *args: bytes, timeout: _Timeout = _default) -> SMTPResponse:
        """Send one raw command (arguments joined by spaces) and return the reply.

        Every command this class sends on its own comes through here (see the module
        docstring), so a subclass may override it to trace or answer them.
        """
        return await self._link.command(args, self._options.phases(timeout).command)

    async def _ehlo_or_helo_if_needed(self) -> None:
        if self.is_ehlo_or_helo_needed:
            try:
                await self.ehlo()
            except SMTPHeloError:
                if not self.is_connected:
                    raise
                await self.helo()

    async def helo(
        self, *, hostname: str | None = None, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """Send HELO (RFC 5321 section 4.1.1.1)."""
        name = await self._link.hostname(hostname)
        response = await self.execute_command(b"HELO", name.encode("ascii"), timeout=timeout)
        if response.code != 250:
            raise SMTPHeloError(response.code, response.message)
        self.last_helo_response = response
        return response

    async def ehlo(
        self, *, hostname: str | None = None, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """Send EHLO and record the server's extensions (RFC 5321 section 4.1.1.1)."""
        name = await self._link.hostname(hostname)
        response = await self.execute_command(b"EHLO", name.encode("ascii"), timeout=timeout)
        if response.code != 250:
            raise SMTPHeloError(response.code, response.message)
        self.last_ehlo_response = response
        return response

    async def help(self, *, timeout: _Timeout = _default) -> str:
        """Send HELP; returns the help text."""
        response = await self._checked((b"HELP",), (211, 214, 250), timeout)
        return response.message

    async def rset(self, *, timeout: _Timeout = _default) -> SMTPResponse:
        """Send RSET: abort the current mail transaction."""
        return await self._checked((b"RSET",), (250,), timeout)

    async def noop(self, *, timeout: _Timeout = _default) -> SMTPResponse:
        """Send NOOP."""
        return await self._checked((b"NOOP",), (250,), timeout)

    async def _checked(
        self, args: tuple[bytes, ...], codes: tuple[int, ...], timeout: _Timeout
    ) -> SMTPResponse:
        await self._ehlo_or_helo_if_needed()
        response = await self.execute_command(*args, timeout=timeout)
        if response.code not in codes:
            raise SMTPResponseException(response.code, response.message)
        return response

    async def vrfy(
        self, address: str, /, *, options: Iterable[str] | None = None, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """Send VRFY: ask the server to verify a mailbox."""
        return await self._verify(b"VRFY", address, options, (250, 251, 252), timeout)

    async def expn(
        self, address: str, /, *, options: Iterable[str] | None = None, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """Send EXPN: ask the server to expand a mailing list."""
        return await self._verify(b"EXPN", address, options, (250,), timeout)

    async def _verify(
        self,
        verb: bytes,
        address: str,
        options: Iterable[str] | None,
        codes: tuple[int, ...],
        timeout: _Timeout,
    ) -> SMTPResponse:
        options = list(options) if options is not None else []
        utf8 = any(option.upper() == "SMTPUTF8" for option in options)
        line = vrfy_line(verb, address, options, utf8)
        await self._ehlo_or_helo_if_needed()
        if utf8 and not self.supports_extension("smtputf8"):
            raise SMTPNotSupported(SMTPUTF8_NOT_SUPPORTED)
        return await self._checked(command_args(line), codes, timeout)

    async def mail(
        self,
        sender: str,
        /,
        *,
        options: Iterable[str] | None = None,
        encoding: str = "ascii",
        timeout: _Timeout = _default,
    ) -> SMTPResponse:
        """Send MAIL FROM (RFC 5321 section 4.1.1.2); raises SMTPSenderRefused."""
        line = mail_line(sender, options, encoding)
        await self._ehlo_or_helo_if_needed()
        response = await self.execute_command(*command_args(line), timeout=timeout)
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
        timeout: _Timeout = _default,
    ) -> SMTPResponse:
        """Send RCPT TO (RFC 5321 section 4.1.1.3); raises SMTPRecipientRefused."""
        line = rcpt_line(recipient, options, encoding)
        await self._ehlo_or_helo_if_needed()
        response = await self.execute_command(*command_args(line), timeout=timeout)
        if response.code not in (250, 251):
            raise SMTPRecipientRefused(response.code, response.message, recipient)
        return response

    async def data(
        self,
        message: MessageSource,
        /,
        *,
        timeout: _Timeout = _default,
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
        return await (await self._link.data(message, timeout, progress)).reply()

    async def quit(self, *, timeout: _Timeout = _default) -> SMTPResponse:
        """Send QUIT and close the connection."""
        return await self._link.quit(timeout)

    async def starttls(
        self,
        *,
        server_hostname: str | None = None,
        validate_certs: bool | None = None,
        client_cert: str | Default | None = _default,
        client_key: str | Default | None = _default,
        cert_bundle: str | Default | None = _default,
        tls_context: ssl.SSLContext | Default | None = _default,
        timeout: _Timeout = _default,
    ) -> SMTPResponse:
        """Upgrade the connection with STARTTLS (RFC 3207), then forget the server state.

        The certificate is verified against ``server_hostname``, or else the host
        this client connected to (also when that host was the default). The command
        and the handshake run in one turn: no other caller writes in between.
        """
        self._options.update(locals())
        return await self._link.starttls(server_hostname, timeout)

    # -- authentication (RFC 4954) ----------------------------------------------------

    async def login(
        self, username: _Secret, password: _Secret, /, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """Authenticate with the first method that works, in ``AUTH_METHODS`` order."""
        return await self._link.login(self, username, password, timeout)

    async def auth_crammd5(
        self, username: _Secret, password: _Secret, /, *, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """AUTH CRAM-MD5 (RFC 2195)."""
        return await self._link.authenticate(CramMD5(username, password), timeout)

    async def auth_plain(
        self, username: _Secret, password: _Secret, /, *, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """AUTH PLAIN (RFC 4616) with an initial response."""
        return await self._link.authenticate(Plain(username, password), timeout)

    async def auth_login(
        self, username: _Secret, password: _Secret, /, *, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """AUTH LOGIN, the username sent as the initial response."""
        return await self._link.authenticate(Login(username, password), timeout)

    async def auth_xoauth2(
        self, username: _Secret, access_token: _Secret, /, *, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """AUTH XOAUTH2 with an OAuth 2.0 bearer token."""
        await self._ehlo_or_helo_if_needed()
        return await self._link.authenticate(XOAuth2(username, access_token), timeout)

    async def auth_oauthbearer(
        self, username: _Secret, access_token: _Secret, /, *, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """AUTH OAUTHBEARER (RFC 7628) with an OAuth 2.0 bearer token."""
        await self._ehlo_or_helo_if_needed()
        return await self._link.authenticate(
            self._link.oauth_mechanism(username, access_token, True), timeout
        )

    async def auth_scramsha256(
        self, username: _Secret, password: _Secret, /, *, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """AUTH SCRAM-SHA-256 (RFC 7677); SCRAM-SHA-256-PLUS when TLS and offered."""
        return await self._link.scram("sha256", username, password, timeout)

    async def auth_scramsha1(
        self, username: _Secret, password: _Secret, /, *, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """AUTH SCRAM-SHA-1 (RFC 5802); SCRAM-SHA-1-PLUS when TLS and offered."""
        return await self._link.scram("sha1", username, password, timeout)

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
        timeout: _Timeout = _default,
        size: int | None = None,
        progress: ProgressCallback | None = None,
        dsn: DSN | None = None,
        require_tls: bool = False,
        smtputf8: bool | None = None,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """Send one message to ``recipients`` (MAIL, RCPT each, DATA or BDAT).

        Returns ``(refused, reply)``: the refused recipients with the server's reply
        for each, and the text of the final reply. Raises if the sender or every
        recipient is refused, or the message is refused.

        When the server advertises PIPELINING (RFC 2920), MAIL, every RCPT and DATA
        go in one write (``pipelining=False`` turns this off); the results are the
        same as sending them one by one. ``message`` may be bytes, str, or a stream
        (see :meth:`data`); for a stream, give ``size`` to announce it with SIZE.

        ``dsn`` asks for delivery status notifications (RFC 3461; see :class:`DSN`);
        ``require_tls`` sends the message with REQUIRETLS (RFC 8689), only over TLS
        with a verified certificate to a server that offers it (else SMTPNotSupported);
        ``smtputf8=False`` never uses SMTPUTF8 (non-ASCII domains go in IDNA, a
        non-ASCII local part is refused). A message larger than the server's SIZE
        limit is refused before MAIL (``SMTPSizeRefusedLocally``, 552).
        """
        submission = await self._link.submit(
            sender,
            recipients,
            message,
            mail_options,
            rcpt_options,
            timeout,
            size,
            progress,
            dsn=dsn,
            require_tls=require_tls,
            smtputf8=smtputf8,
            awaited=True,
        )
        # RFC 2920 section 3.1: the final reply is awaited outside the turn, so the next
        # transaction's commands may go out meanwhile (the reply FIFO keeps the pairing).
        return await self._link.finish(submission, timeout)

    async def send_message(
        self,
        message: EmailMessage | Message,
        /,
        *,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: _Timeout = _default,
        dsn: DSN | None = None,
        require_tls: bool = False,
        smtputf8: bool | None = None,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """Send an ``email.message`` object; sender and recipients default to its headers.

        Bcc and Resent-Bcc headers are removed from what is sent. SMTPUTF8 and
        8BITMIME are used when the addresses or the server call for them; without
        SMTPUTF8 a non-ASCII domain goes in IDNA in the envelope.

        ``dsn`` asks for delivery status notifications (RFC 3461; see :class:`DSN`);
        ``require_tls`` sends the message with REQUIRETLS (RFC 8689), only over TLS
        with a verified certificate to a server that offers it (else SMTPNotSupported);
        ``smtputf8=False`` never uses SMTPUTF8 (non-ASCII domains go in IDNA, a
        non-ASCII local part is refused). A message larger than the server's SIZE
        limit is refused before MAIL (``SMTPSizeRefusedLocally``, 552).
        """
        submission = await self._link.submit_message(
            message,
            sender,
            recipients,
            mail_options,
            rcpt_options,
            timeout,
            dsn=dsn,
            require_tls=require_tls,
            smtputf8=smtputf8,
            awaited=True,
        )
        return await self._link.finish(submission, timeout)

    def sendmail_sync(self, *args: Any, **kwargs: Any) -> tuple[dict[str, SMTPResponse], str]:
        """Connect, ``sendmail``, QUIT, in a new event loop (not from inside one)."""
        return asyncio.run(self._once(self.sendmail, args, kwargs))

    def send_message_sync(self, *args: Any, **kwargs: Any) -> tuple[dict[str, SMTPResponse], str]:
        """Connect, ``send_message``, QUIT, in a new event loop (not from inside one)."""
        return asyncio.run(self._once(self.send_message, args, kwargs))

    async def _once(self, send: Callable[..., Awaitable[_Sent]], args: Any, kwargs: Any) -> _Sent:
        async with self:
            return await send(*args, **kwargs)
