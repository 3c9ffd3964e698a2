"""The SMTP client: aiosmtplib's ``SMTP`` class, name for name, on the fastsmtp core.

Connection set-up, TLS and the server state live here; command lines are built and
checked by :mod:`fastsmtp._commands`, bytes move through :mod:`fastsmtp.protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Iterable, Sequence
from email.message import EmailMessage, Message
from types import TracebackType
from typing import Any

from ._auth import AuthMixin
from ._commands import (
    command_line,
    mail_line,
    message_size,
    rcpt_line,
    validate_local_hostname,
    vrfy_line,
)
from ._speedups import encode_data
from .email import (
    check_header_block,
    check_message_headers,
    extract_recipients,
    extract_sender,
    flatten_message,
)
from .errors import (
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPReadTimeoutError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from .esmtp import parse_esmtp_extensions
from .protocol import SMTPProtocol
from .response import SMTPResponse
from .typing import Default, SMTPTokenGenerator, SocketPathType, _default

__all__ = ("SMTP", "SMTP_PORT", "SMTP_STARTTLS_PORT", "SMTP_TLS_PORT")

SMTP_PORT = 25
SMTP_TLS_PORT = 465
SMTP_STARTTLS_PORT = 587
DEFAULT_TIMEOUT = 60

_SMTPUTF8_NOT_SUPPORTED = "SMTPUTF8 is not supported by this server"

# Building a verifying context loads the system CA store (milliseconds); a context
# is safe to share, so the default ones are built once per process.
_default_contexts: dict[bool, ssl.SSLContext] = {}


def _build_tls_context(
    validate_certs: bool, cert_bundle: str | None, client_cert: str | None, client_key: str | None
) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = validate_certs
    context.verify_mode = ssl.CERT_REQUIRED if validate_certs else ssl.CERT_NONE
    if cert_bundle is not None:
        context.load_verify_locations(cert_bundle)
    if client_cert is not None:
        context.load_cert_chain(client_cert, keyfile=client_key)
    return context


class SMTP(AuthMixin):
    """An SMTP client connection (RFC 5321), compatible with ``aiosmtplib.SMTP``.

    Construct it with connection options (no I/O happens), then ``await connect()``
    or use it as an async context manager. Every command method takes a
    keyword-only ``timeout`` (seconds; ``None`` waits forever) that defaults to the
    instance's ``timeout``.
    """

    AUTH_METHODS: tuple[str, ...] = ("cram-md5", "plain", "login")

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
    ) -> None:
        self.protocol: SMTPProtocol | None = None
        self.transport: asyncio.BaseTransport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.hostname = hostname
        self.port = port
        self._username = username
        self._password = password
        self._oauth_token_generator = oauth_token_generator
        self.local_hostname = local_hostname
        self.source_address = source_address
        self.timeout = timeout
        self.use_tls = use_tls
        self._start_tls_on_connect = start_tls
        self.validate_certs = validate_certs
        self.client_cert = client_cert
        self.client_key = client_key
        self.tls_context = tls_context
        self.cert_bundle = cert_bundle
        self.socket_path = socket_path
        self.sock = sock
        self.allow_insecure_auth = allow_insecure_auth

        self.last_helo_response: SMTPResponse | None = None
        self._last_ehlo_response: SMTPResponse | None = None
        self.esmtp_extensions: dict[str, str] = {}
        self.supports_esmtp = False
        self.server_auth_methods: list[str] = []

        self._locks_loop: asyncio.AbstractEventLoop | None = None
        self._connect_lock = asyncio.Lock()
        self._sendmail_lock = asyncio.Lock()

        self._validate_config()

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
        if isinstance(exc, (ConnectionError, TimeoutError)):
            self.close()
            return
        try:
            await self.quit()
        except (SMTPServerDisconnected, SMTPResponseException, SMTPTimeoutError):
            pass
        finally:
            self.close()

    # -- configuration --------------------------------------------------------------

    def _update_settings_from_kwargs(
        self,
        hostname: str | Default | None = _default,
        port: int | Default | None = _default,
        username: str | bytes | Default | None = _default,
        password: str | bytes | Default | None = _default,
        oauth_token_generator: SMTPTokenGenerator | Default | None = _default,
        local_hostname: str | Default | None = _default,
        source_address: tuple[str, int] | Default | None = _default,
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
    ) -> None:
        """Overwrite stored options with those given (``_default`` means not given)."""
        if not isinstance(hostname, Default):
            self.hostname = hostname
        if not isinstance(port, Default):
            self.port = port
        if not isinstance(username, Default):
            self._username = username
        if not isinstance(password, Default):
            self._password = password
        if not isinstance(oauth_token_generator, Default):
            self._oauth_token_generator = oauth_token_generator
        if not isinstance(local_hostname, Default):
            self.local_hostname = local_hostname
        if not isinstance(source_address, Default):
            self.source_address = source_address
        if use_tls is not None:
            self.use_tls = use_tls
        if not isinstance(start_tls, Default):
            self._start_tls_on_connect = start_tls
        if validate_certs is not None:
            self.validate_certs = validate_certs
        if not isinstance(client_cert, Default):
            self.client_cert = client_cert
        if not isinstance(client_key, Default):
            self.client_key = client_key
        if not isinstance(tls_context, Default):
            self.tls_context = tls_context
        if not isinstance(cert_bundle, Default):
            self.cert_bundle = cert_bundle
        if not isinstance(socket_path, Default):
            self.socket_path = socket_path
        if not isinstance(sock, Default):
            self.sock = sock
        if allow_insecure_auth is not None:
            self.allow_insecure_auth = allow_insecure_auth

    def _validate_config(self) -> None:
        if self._password is not None and self._oauth_token_generator is not None:
            raise ValueError("password and oauth_token_generator are mutually exclusive")
        if self._start_tls_on_connect and self.use_tls:
            raise ValueError("The start_tls and use_tls options are not compatible.")
        if self.tls_context is not None and self.client_cert is not None:
            raise ValueError("Either a TLS context or a certificate/key must be provided")
        if self.sock is not None and self.socket_path is not None:
            raise ValueError("Either a socket or a socket path must be provided, not both")
        if (self.sock is not None or self.socket_path is not None) and self.port is not None:
            raise ValueError("If using a socket, port is not required")
        if (
            (self.sock is not None or self.socket_path is not None)
            and self.use_tls
            and self.hostname is None
        ):
            raise ValueError("If using a socket with TLS, hostname is required")
        if self.hostname is not None and ("\r" in self.hostname or "\n" in self.hostname):
            raise ValueError("The hostname param contains prohibited newline characters")
        if self.local_hostname is not None:
            self.local_hostname = validate_local_hostname(self.local_hostname)

    def _get_default_port(self) -> int:
        if self.use_tls:
            return SMTP_TLS_PORT
        if self._start_tls_on_connect:
            return SMTP_STARTTLS_PORT
        return SMTP_PORT

    def _effective_hostname(self) -> str | None:
        """The name TLS verifies: the host actually connected to (never skipped)."""
        if self.hostname is not None:
            return self.hostname
        if self.sock is None and self.socket_path is None:
            return "localhost"
        return None

    async def _get_tls_context(self) -> ssl.SSLContext:
        if self.tls_context is not None:
            return self.tls_context
        if self.cert_bundle is None and self.client_cert is None:
            context = _default_contexts.get(self.validate_certs)
            if context is None:
                context = await asyncio.to_thread(
                    _build_tls_context, self.validate_certs, None, None, None
                )
                _default_contexts[self.validate_certs] = context
            return context
        return await asyncio.to_thread(
            _build_tls_context,
            self.validate_certs,
            self.cert_bundle,
            self.client_cert,
            self.client_key,
        )

    async def _get_default_local_hostname(self) -> str:
        if self.local_hostname is None:
            self.local_hostname = await asyncio.to_thread(socket.getfqdn)
        return self.local_hostname

    def _timeout(self, timeout: float | Default | None) -> float | None:
        return self.timeout if isinstance(timeout, Default) else timeout

    # -- connection -----------------------------------------------------------------

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
    ) -> SMTPResponse:
        """Connect, read the greeting, then STARTTLS and log in as configured.

        Options given here replace the stored ones (``timeout`` applies to this
        connect only). Returns the server's 220 greeting.
        """
        self._update_settings_from_kwargs(
            hostname=hostname,
            port=port,
            username=username,
            password=password,
            oauth_token_generator=oauth_token_generator,
            local_hostname=local_hostname,
            source_address=source_address,
            use_tls=use_tls,
            start_tls=start_tls,
            validate_certs=validate_certs,
            client_cert=client_cert,
            client_key=client_key,
            tls_context=tls_context,
            cert_bundle=cert_bundle,
            socket_path=socket_path,
            sock=sock,
            allow_insecure_auth=allow_insecure_auth,
        )
        self._validate_config()
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
        connect_timeout = self._timeout(timeout)
        await self._connect_lock.acquire()
        try:
            await self._get_default_local_hostname()
            response = await self._create_connection(connect_timeout)
            await self._maybe_start_tls_on_connect()
            await self._maybe_login_on_connect()
        except BaseException:
            self.close()
            raise
        return response

    async def _create_connection(self, timeout: float | None) -> SMTPResponse:
        loop = asyncio.get_running_loop()
        tls_context = await self._get_tls_context() if self.use_tls else None
        handshake_timeout = timeout if tls_context is not None else None
        host = self.hostname if self.hostname is not None else "localhost"
        port = self.port if self.port is not None else self._get_default_port()
        if self.sock is not None or self.socket_path is not None:
            where = f"{self.hostname} on port {self.port}"
        else:
            where = f"{host} on port {port}"

        def factory() -> SMTPProtocol:
            return SMTPProtocol(loop=loop, connection_lost_callback=self._on_connection_lost)

        try:
            if self.sock is not None:
                connection = loop.create_connection(
                    factory,
                    sock=self.sock,
                    ssl=tls_context,
                    server_hostname=self.hostname if tls_context is not None else None,
                    ssl_handshake_timeout=handshake_timeout,
                )
            elif self.socket_path is not None:
                connection = loop.create_unix_connection(
                    factory,
                    path=os.fsdecode(self.socket_path),
                    ssl=tls_context,
                    server_hostname=self.hostname if tls_context is not None else None,
                    ssl_handshake_timeout=handshake_timeout,
                )
            else:
                connection = loop.create_connection(
                    factory,
                    host=host,
                    port=port,
                    ssl=tls_context,
                    local_addr=self.source_address,
                    ssl_handshake_timeout=handshake_timeout,
                )
            transport, protocol = await asyncio.wait_for(connection, timeout)
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise SMTPConnectTimeoutError(f"Timed out connecting to {where}") from exc
        except OSError as exc:
            raise SMTPConnectError(f"Error connecting to {where}: {exc}") from exc

        self.protocol = protocol
        self.transport = transport
        try:
            greeting = await protocol.read_greeting(timeout)
        except SMTPReadTimeoutError as exc:
            raise SMTPConnectTimeoutError("Timed out waiting for server ready message") from exc
        except SMTPServerDisconnected as exc:
            raise SMTPConnectError(f"Error connecting to {where}: {exc}") from exc
        if greeting.code != 220:
            raise SMTPConnectResponseError(greeting.code, greeting.message)
        return greeting

    async def _maybe_start_tls_on_connect(self) -> None:
        if self._start_tls_on_connect:
            await self.starttls()
        elif self._start_tls_on_connect is None and not self.use_tls:
            assert self.protocol is not None
            if self.protocol.is_tls:
                return
            await self._ehlo_or_helo_if_needed()
            if self.supports_extension("starttls"):
                await self.starttls()

    async def _maybe_login_on_connect(self) -> None:
        if self._oauth_token_generator is not None:
            if self._username is None:
                raise SMTPException("username is required when using oauth_token_generator")
            await self._ehlo_or_helo_if_needed()
            if "xoauth2" not in self.server_auth_methods:
                raise SMTPException(
                    "oauth_token_generator provided but server does not support XOAUTH2"
                )
            access_token = await self._oauth_token_generator()
            await self.auth_xoauth2(self._username, access_token)
        elif self._username is not None:
            await self.login(self._username, self._password or "")

    def _on_connection_lost(self, protocol: SMTPProtocol) -> None:
        # A late callback from an earlier connection must not close the current one.
        if protocol is self.protocol:
            self.close()

    def close(self) -> None:
        """Close the connection (no QUIT) and forget the server's state. Idempotent."""
        if self.protocol is not None:
            self.protocol.close()
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if self._connect_lock.locked():
            self._connect_lock.release()
        self.protocol = None
        self.transport = None
        self._reset_server_state()

    def _reset_server_state(self) -> None:
        self.last_helo_response = None
        self._last_ehlo_response = None
        self.esmtp_extensions = {}
        self.supports_esmtp = False
        self.server_auth_methods = []

    @property
    def is_connected(self) -> bool:
        """True if the connection is open."""
        return self.protocol is not None and self.protocol.is_connected

    def get_transport_info(self, key: str) -> Any:
        """``transport.get_extra_info(key)``: peername, sockname, cipher, peercert, ..."""
        if not self.is_connected or self.transport is None:
            raise SMTPServerDisconnected("Server not connected")
        return self.transport.get_extra_info(key)

    # -- server state ---------------------------------------------------------------

    @property
    def last_ehlo_response(self) -> SMTPResponse | None:
        """The last successful EHLO reply; setting it parses the extensions."""
        return self._last_ehlo_response

    @last_ehlo_response.setter
    def last_ehlo_response(self, response: SMTPResponse | None) -> None:
        self._last_ehlo_response = response
        if response is None:
            return
        extensions, auth_methods = parse_esmtp_extensions(response.message)
        self.esmtp_extensions = extensions
        self.server_auth_methods = auth_methods
        self.supports_esmtp = True

    @property
    def is_ehlo_or_helo_needed(self) -> bool:
        """True until EHLO or HELO has succeeded on this connection."""
        return self.last_ehlo_response is None and self.last_helo_response is None

    def supports_extension(self, extension: str, /) -> bool:
        """True if the server advertised ``extension`` (case-insensitive)."""
        return extension.lower() in self.esmtp_extensions

    # -- command execution ------------------------------------------------------------

    def _connected_protocol(self) -> SMTPProtocol:
        if self.protocol is None:
            raise SMTPServerDisconnected("Server not connected")
        return self.protocol

    async def _execute(
        self, line: bytes, timeout: float | Default | None, *, redact: bool = False
    ) -> SMTPResponse:
        protocol = self._connected_protocol()
        try:
            response = await protocol.execute(line, self._timeout(timeout), redact=redact)
        except (SMTPServerDisconnected, SMTPTimeoutError):
            self.close()
            raise
        except SMTPResponseException:
            self.close()  # a malformed reply: the protocol has closed the connection
            raise
        if response.code == 421:
            self.close()
        return response

    async def execute_command(
        self, *args: bytes, timeout: float | Default | None = _default
    ) -> SMTPResponse:
        """Send one raw command (arguments joined by spaces) and return the reply."""
        self._connected_protocol()
        return await self._execute(command_line(*args), timeout)

    async def _ehlo_or_helo_if_needed(self) -> None:
        if self.is_ehlo_or_helo_needed:
            try:
                await self.ehlo()
            except SMTPHeloError:
                if not self.is_connected:
                    raise
                await self.helo()

    async def _greet(
        self, verb: bytes, hostname: str | None, timeout: float | Default | None
    ) -> SMTPResponse:
        if hostname is None:
            hostname = await self._get_default_local_hostname()
        else:
            hostname = validate_local_hostname(hostname)
        response = await self._execute(command_line(verb, hostname.encode("ascii")), timeout)
        if response.code != 250:
            raise SMTPHeloError(response.code, response.message)
        return response

    async def helo(
        self, *, hostname: str | None = None, timeout: float | Default | None = _default
    ) -> SMTPResponse:
        """Send HELO (RFC 5321 section 4.1.1.1)."""
        response = await self._greet(b"HELO", hostname, timeout)
        self.last_helo_response = response
        return response

    async def ehlo(
        self, *, hostname: str | None = None, timeout: float | Default | None = _default
    ) -> SMTPResponse:
        """Send EHLO and record the server's extensions (RFC 5321 section 4.1.1.1)."""
        response = await self._greet(b"EHLO", hostname, timeout)
        self.last_ehlo_response = response
        return response

    async def help(self, *, timeout: float | Default | None = _default) -> str:
        """Send HELP; returns the help text."""
        await self._ehlo_or_helo_if_needed()
        response = await self._execute(b"HELP\r\n", timeout)
        if response.code not in (211, 214, 250):
            raise SMTPResponseException(response.code, response.message)
        return response.message

    async def rset(self, *, timeout: float | Default | None = _default) -> SMTPResponse:
        """Send RSET: abort the current mail transaction."""
        return await self._simple(b"RSET\r\n", timeout)

    async def noop(self, *, timeout: float | Default | None = _default) -> SMTPResponse:
        """Send NOOP."""
        return await self._simple(b"NOOP\r\n", timeout)

    async def _simple(self, line: bytes, timeout: float | Default | None) -> SMTPResponse:
        await self._ehlo_or_helo_if_needed()
        response = await self._execute(line, timeout)
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
            raise SMTPNotSupported(_SMTPUTF8_NOT_SUPPORTED)
        response = await self._execute(line, timeout)
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
        response = await self._execute(line, timeout)
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
        response = await self._execute(line, timeout)
        if response.code not in (250, 251):
            raise SMTPRecipientRefused(response.code, response.message, recipient)
        return response

    async def data(
        self, message: str | bytes, /, *, timeout: float | Default | None = _default
    ) -> SMTPResponse:
        """Send DATA and the message (RFC 5321 section 4.1.1.4); raises SMTPDataError.

        Line ends are normalised to CRLF and lines starting with "." are stuffed; the
        body is written only after the server's 354.
        """
        if not self.is_connected:
            raise SMTPServerDisconnected("Connection lost")
        if isinstance(message, str):
            message = message.encode("ascii")
        body = encode_data(message)
        await self._ehlo_or_helo_if_needed()
        start = await self._execute(b"DATA\r\n", timeout)
        if start.code != 354:
            raise SMTPDataError(start.code, start.message)
        protocol = self._connected_protocol()
        try:
            response = await protocol.write_body(body, self._timeout(timeout))
        except (SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException):
            self.close()
            raise
        if response.code == 421:
            self.close()
        if response.code != 250:
            raise SMTPDataError(response.code, response.message)
        return response

    async def quit(self, *, timeout: float | Default | None = _default) -> SMTPResponse:
        """Send QUIT and close the connection."""
        protocol = self._connected_protocol()
        protocol.mark_quit()
        try:
            response = await self._execute(b"QUIT\r\n", timeout)
            if response.code != 221:
                raise SMTPResponseException(response.code, response.message)
        finally:
            self.close()
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
        this client connected to (also when that host was the default).
        """
        self._update_settings_from_kwargs(
            validate_certs=validate_certs,
            client_cert=client_cert,
            client_key=client_key,
            cert_bundle=cert_bundle,
            tls_context=tls_context,
        )
        self._validate_config()
        protocol = self._connected_protocol()
        if protocol.is_tls:
            raise SMTPException("Connection already using TLS")
        await self._ehlo_or_helo_if_needed()
        if not self.supports_extension("starttls"):
            raise SMTPException("SMTP STARTTLS extension not supported by server.")
        context = await self._get_tls_context()
        if server_hostname is None:
            server_hostname = self._effective_hostname()
        response = await self._execute(b"STARTTLS\r\n", timeout)
        if response.code != 220:
            raise SMTPResponseException(response.code, response.message)
        try:
            transport = await protocol.start_tls(context, server_hostname, self._timeout(timeout))
        except BaseException:
            self.close()
            raise
        self.transport = transport
        # RFC 3207 section 4.2: discard everything learnt before the handshake.
        self._reset_server_state()
        return response

    # -- sending mail -----------------------------------------------------------------

    async def sendmail(
        self,
        sender: str,
        recipients: str | Sequence[str],
        message: str | bytes,
        /,
        *,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """Send one message to ``recipients`` (MAIL, RCPT each, DATA).

        Returns ``(refused, reply)``: the refused recipients with the server's reply
        for each, and the text of the final reply. Raises if the sender or every
        recipient is refused, or the message is refused.
        """
        recipient_list = [recipients] if isinstance(recipients, str) else list(recipients)
        mail_opts = list(mail_options) if mail_options is not None else []
        rcpt_opts = list(rcpt_options) if rcpt_options is not None else []
        encoding = "utf-8" if any(o.lower() == "smtputf8" for o in mail_opts) else "ascii"
        if isinstance(message, str):
            message = message.encode("ascii")
        # Every argument is checked before anything is written.
        mail_line(sender, mail_opts, encoding)
        rcpt_lines = [rcpt_line(r, rcpt_opts, encoding) for r in recipient_list]

        async with self._sendmail_lock:
            await self._ehlo_or_helo_if_needed()
            if encoding != "ascii" and not self.supports_extension("smtputf8"):
                raise SMTPNotSupported(_SMTPUTF8_NOT_SUPPORTED)
            if self.supports_extension("size"):
                mail_opts.insert(0, f"size={message_size(message)}")
            try:
                response = await self._execute(mail_line(sender, mail_opts, encoding), timeout)
                if response.code != 250:
                    raise SMTPSenderRefused(response.code, response.message, sender)
                refused: dict[str, SMTPResponse] = {}
                errors: list[SMTPRecipientRefused] = []
                for recipient, line in zip(recipient_list, rcpt_lines, strict=True):
                    response = await self._execute(line, timeout)
                    if response.code not in (250, 251):
                        errors.append(
                            SMTPRecipientRefused(response.code, response.message, recipient)
                        )
                        refused[recipient] = response
                if len(errors) == len(recipient_list):
                    raise SMTPRecipientsRefused(errors)
                response = await self.data(message, timeout=timeout)
            except (SMTPResponseException, SMTPRecipientsRefused):
                with contextlib.suppress(ConnectionError, SMTPResponseException):
                    await self.rset(timeout=timeout)
                raise
        return refused, response.message

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
        # Header injection (security.md section 9): refuse before anything is sent.
        check_message_headers(message)
        mail_opts = list(mail_options) if mail_options is not None else []
        if sender is None:
            sender = extract_sender(message)
        if sender is None:
            raise ValueError("No From header provided in message")
        if isinstance(recipients, str):
            recipient_list = [recipients]
        elif recipients is None:
            recipient_list = extract_recipients(message)
        else:
            recipient_list = list(recipients)
        if not recipient_list:
            raise ValueError("No recipient headers provided in message")

        await self._ehlo_or_helo_if_needed()
        utf8 = not sender.isascii() or any(not r.isascii() for r in recipient_list)
        upper = [option.upper() for option in mail_opts]
        if utf8:
            if not self.supports_extension("smtputf8"):
                raise SMTPNotSupported(
                    "An address containing non-ASCII characters was provided, but "
                    "SMTPUTF8 is not supported by this server"
                )
            if "SMTPUTF8" not in upper:
                mail_opts.append("SMTPUTF8")
        if self.supports_extension("8bitmime"):
            if "BODY=8BITMIME" not in upper:
                mail_opts.append("BODY=8BITMIME")
            cte_type = "8bit"
        else:
            cte_type = "7bit"
        flat = flatten_message(message, utf8=utf8, cte_type=cte_type)
        check_header_block(flat)
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

    def send_message_sync(
        self, *args: Any, **kwargs: Any
    ) -> tuple[dict[str, SMTPResponse], str]:
        """Connect, ``send_message``, QUIT, in a new event loop (not from inside one)."""

        async def run() -> tuple[dict[str, SMTPResponse], str]:
            async with self:
                return await self.send_message(*args, **kwargs)

        return asyncio.run(run())

