"""The connection half of the SMTP client: options, connecting, server state, EHLO/HELO.

``SMTPConnection`` holds what aiosmtplib's ``SMTP`` stores (options and what the server
told us), opens the transport, reads the greeting, and runs single commands through
:class:`fastsmtp.protocol.SMTPProtocol`. The commands and mail sending are added by
:class:`fastsmtp._auth.SMTPAuth` and :class:`fastsmtp.smtp.SMTP` on top of it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import Any

from ._commands import (
    command_line,
    validate_local_hostname,
)
from .errors import (
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPHeloError,
    SMTPReadTimeoutError,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from .esmtp import parse_esmtp_extensions
from .protocol import SMTPProtocol
from .response import SMTPResponse
from .typing import Default, SMTPTokenGenerator, SocketPathType, _default

SMTP_PORT = 25
SMTP_TLS_PORT = 465
SMTP_STARTTLS_PORT = 587
DEFAULT_TIMEOUT = 60

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


__all__ = ("DEFAULT_TIMEOUT", "SMTP_PORT", "SMTP_STARTTLS_PORT", "SMTP_TLS_PORT", "SMTPConnection")


class SMTPConnection:
    """Connection options, the transport, and the server's state for one SMTP client."""

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
        # RFC 2920 / RFC 3030: None = use when advertised, False = never,
        # True = required (SMTPNotSupported if the server lacks it).
        self.pipelining = pipelining
        self.chunking = chunking

        self.last_helo_response: SMTPResponse | None = None
        self._last_ehlo_response: SMTPResponse | None = None
        self.esmtp_extensions: dict[str, str] = {}
        self.supports_esmtp = False
        self.server_auth_methods: list[str] = []

        self._close_reason: Exception | None = None
        self._locks_loop: asyncio.AbstractEventLoop | None = None
        self._connect_lock = asyncio.Lock()
        self._sendmail_lock = asyncio.Lock()

        self._validate_config()

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
        pipelining: bool | Default | None = _default,
        chunking: bool | Default | None = _default,
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
        if not isinstance(pipelining, Default):
            self.pipelining = pipelining
        if not isinstance(chunking, Default):
            self.chunking = chunking

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

    def _on_connection_lost(self, protocol: SMTPProtocol) -> None:
        # A late callback from an earlier connection must not close the current one.
        if protocol is self.protocol:
            self.close()

    def close(self) -> None:
        """Close the connection (no QUIT) and forget the server's state. Idempotent."""
        if self.protocol is not None:
            # Why the connection ended (an unsolicited reply, a timeout...), kept as
            # the cause of the next "Server not connected".
            self._close_reason = self.protocol.error
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
            raise SMTPServerDisconnected("Server not connected") from self._close_reason
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
