"""Opening connections: TCP, Unix socket or a given socket; implicit TLS; certificates.

:func:`open_channel` connects as the options say, reads the greeting (RFC 5321 section
3.1) and returns the protocol shell with its fresh session. Every OS error and timeout of
connecting becomes a fastsmtp exception here, with aiosmtplib's messages.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
from collections.abc import Callable

from ._options import ConnectionOptions
from .errors import (
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPReadTimeoutError,
    SMTPServerDisconnected,
)
from .protocol import SMTPProtocol
from .response import SMTPResponse

__all__ = ("is_local", "local_hostname", "open_channel", "tls_context")

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


async def tls_context(options: ConnectionOptions) -> ssl.SSLContext:
    """The context the options ask for (the caller's, or one built off the loop)."""
    if options.tls_context is not None:
        return options.tls_context
    if options.cert_bundle is None and options.client_cert is None:
        context = _default_contexts.get(options.validate_certs)
        if context is None:
            context = await asyncio.to_thread(
                _build_tls_context, options.validate_certs, None, None, None
            )
            _default_contexts[options.validate_certs] = context
        return context
    return await asyncio.to_thread(
        _build_tls_context,
        options.validate_certs,
        options.cert_bundle,
        options.client_cert,
        options.client_key,
    )


async def local_hostname(options: ConnectionOptions) -> str:
    """The name EHLO announces: the configured one, else this host's FQDN (looked up
    off the loop once, then kept in the options)."""
    if options.local_hostname is None:
        options.local_hostname = await asyncio.to_thread(socket.getfqdn)
    return options.local_hostname


async def open_channel(
    options: ConnectionOptions,
    timeout: float | None,
    on_lost: Callable[[SMTPProtocol], None] | None = None,
    *,
    greeting_timeout: float | None,
) -> tuple[SMTPProtocol, SMTPResponse]:
    """Connect and read the 220 greeting; returns the protocol and the greeting.
    ``on_lost(protocol)`` is called when that connection ends."""
    loop = asyncio.get_running_loop()
    context = await tls_context(options) if options.use_tls else None
    handshake_timeout = timeout if context is not None else None
    host = options.hostname if options.hostname is not None else "localhost"
    port = options.port if options.port is not None else options.default_port()
    if options.sock is not None or options.socket_path is not None:
        where = f"{options.hostname} on port {options.port}"
    else:
        where = f"{host} on port {port}"
    server_hostname = options.hostname if context is not None else None

    def factory() -> SMTPProtocol:
        return SMTPProtocol(loop=loop, connection_lost_callback=on_lost)

    try:
        if options.sock is not None:
            connection = loop.create_connection(
                factory,
                sock=options.sock,
                ssl=context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=handshake_timeout,
            )
        elif options.socket_path is not None:
            connection = loop.create_unix_connection(
                factory,
                path=os.fsdecode(options.socket_path),
                ssl=context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=handshake_timeout,
            )
        else:
            connection = loop.create_connection(
                factory,
                host=host,
                port=port,
                ssl=context,
                local_addr=options.source_address,
                ssl_handshake_timeout=handshake_timeout,
            )
        _, protocol = await asyncio.wait_for(connection, timeout)
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise SMTPConnectTimeoutError(f"Timed out connecting to {where}") from exc
    except OSError as exc:
        raise SMTPConnectError(f"Error connecting to {where}: {exc}") from exc

    try:
        greeting = await protocol.read_greeting(greeting_timeout)
    except SMTPReadTimeoutError as exc:
        protocol.abort()
        raise SMTPConnectTimeoutError("Timed out waiting for server ready message") from exc
    except SMTPServerDisconnected as exc:
        protocol.abort()
        raise SMTPConnectError(f"Error connecting to {where}: {exc}") from exc
    except BaseException:
        protocol.abort()
        raise
    if greeting.code != 220:
        protocol.abort()
        raise SMTPConnectResponseError(greeting.code, greeting.message)
    return protocol, greeting


def is_local(protocol: SMTPProtocol) -> bool:
    """True for a Unix socket or a loopback peer: nothing leaves the machine."""
    transport = protocol.transport
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None and getattr(socket, "AF_UNIX", None) == sock.family:
        return True
    peer = transport.get_extra_info("peername")
    if isinstance(peer, (tuple, list)) and peer:
        try:
            return ipaddress.ip_address(str(peer[0]).split("%", 1)[0]).is_loopback
        except ValueError:
            return False
    return isinstance(peer, (str, bytes))  # a Unix socket path
