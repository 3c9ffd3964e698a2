"""Opening connections: TCP, Unix socket or a given socket; implicit TLS; certificates.

:func:`open_channel` connects as the options say, reads the greeting (RFC 5321 section
3.1) and returns the protocol shell with its fresh session. Every OS error and timeout of
connecting becomes a fastsmtp exception here, with aiosmtplib's messages.

TCP goes to the first address of the host that answers, tried the RFC 8305 way
(:func:`_happy_eyeballs`), or through the ``proxy`` option's tunnel (:mod:`._proxy`); TLS
is then started over that socket for the SMTP host name either way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import ssl
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from ._options import LMTP_PORT, ConnectionOptions
from ._proxy import ProxyError, ProxyURL, connect_via
from ._session import SMTPSession
from .errors import (
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPReadTimeoutError,
    SMTPServerDisconnected,
)
from .protocol import SMTPProtocol
from .response import SMTPResponse

__all__ = (
    "HAPPY_EYEBALLS_DELAY",
    "is_local",
    "local_hostname",
    "open_channel",
    "resolve",
    "tls_context",
)

# Connection attempts, on their own logger: "fastsmtp" itself logs only the SMTP traffic.
log = logging.getLogger("fastsmtp.connect")

#: RFC 8305 section 5: the "Connection Attempt Delay" before the next address is tried
#: while the previous attempt is still pending (its recommended default, 250 ms).
HAPPY_EYEBALLS_DELAY = 0.25

#: (family, socket address) pairs, in the order to try them.
Addresses = list[tuple[int, Any]]


async def _getaddrinfo(host: str, port: int) -> Addresses:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, address) for family, _, _, _, address in infos]


#: How a host name becomes addresses: ``await resolve(host, port)``. A module attribute so
#: that tests can answer with addresses of their choosing (no /etc/hosts needed).
resolve: Callable[[str, int], Awaitable[Addresses]] = _getaddrinfo

# Connections made through a proxy: their peer is the proxy, not the SMTP server, so a
# loopback peer says nothing about where credentials would travel (see is_local).
_proxied: weakref.WeakSet[SMTPProtocol] = weakref.WeakSet()

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
    lmtp: bool = False,
) -> tuple[SMTPProtocol, SMTPResponse]:
    """Connect and read the 220 greeting; returns the protocol and the greeting.
    ``on_lost(protocol)`` is called when that connection ends; ``lmtp`` makes it an
    LMTP session (RFC 2033)."""
    loop = asyncio.get_running_loop()
    context = await tls_context(options) if options.use_tls else None
    handshake_timeout = timeout if context is not None else None
    host = options.hostname if options.hostname is not None else "localhost"
    if options.port is not None:
        port = options.port
    else:
        # RFC 2033 section 5: LMTP never on port 25; 24 is where servers put it.
        port = LMTP_PORT if lmtp else options.default_port()
    if options.sock is not None or options.socket_path is not None:
        where = f"{options.hostname} on port {options.port}"
    else:
        where = f"{host} on port {port}"
    server_hostname = options.hostname if context is not None else None

    def factory() -> SMTPProtocol:
        session = SMTPSession(lmtp=True) if lmtp else None
        return SMTPProtocol(loop=loop, connection_lost_callback=on_lost, session=session)

    proxy = options.proxy
    if proxy is not None:
        where = f"{where} via proxy {proxy}"
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
            # TLS is for the SMTP host, whatever the path: certificate checked against
            # it and SNI sent for it (never for a proxy or a resolved address).
            connection = _connect_tcp(
                loop,
                factory,
                host,
                port,
                context,
                handshake_timeout,
                options.source_address,
                proxy,
                timeout,
            )
        # The one deadline covers resolving, every address tried, the proxy's
        # handshake and the TLS handshake.
        _, protocol = await asyncio.wait_for(connection, timeout)
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise SMTPConnectTimeoutError(f"Timed out connecting to {where}") from exc
    except OSError as exc:
        raise SMTPConnectError(f"Error connecting to {where}: {exc}") from exc
    except ProxyError as exc:
        raise SMTPConnectError(f"Error connecting to {where}: proxy refused: {exc}") from exc

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


async def _connect_tcp(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], SMTPProtocol],
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    handshake_timeout: float | None,
    source_address: tuple[str, int] | None,
    proxy: ProxyURL | None,
    timeout: float | None,
) -> tuple[asyncio.Transport, SMTPProtocol]:
    """A TCP connection to ``host``:``port`` (through ``proxy`` when given), with TLS for
    ``host`` when ``context`` is given."""
    if proxy is not None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("connecting to %s port %d through proxy %s", host, port, proxy)
        sock = await connect_via(
            proxy,
            host,
            port,
            timeout,
            source_address,
            lambda proxy_host, proxy_port: _happy_eyeballs(
                loop, proxy_host, proxy_port, source_address
            ),
        )
    else:
        sock = await _happy_eyeballs(loop, host, port, source_address)
    try:
        transport, protocol = await loop.create_connection(
            factory,
            sock=sock,
            ssl=context,
            server_hostname=host if context is not None else None,
            ssl_handshake_timeout=handshake_timeout,
        )
    except BaseException:
        sock.close()
        raise
    if proxy is not None:
        _proxied.add(protocol)
    return transport, protocol


def _literal(host: str, port: int) -> Addresses | None:
    """The address of an IP literal without a resolver round trip (None for a name)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6:
        return None if "%" in host else [(socket.AF_INET6, (host, port, 0, 0))]
    return [(socket.AF_INET, (host, port))]


def _interleave(addresses: Addresses) -> Addresses:
    """RFC 8305 section 4: alternate the address families, starting with the family of
    the first address the resolver gave (duplicates dropped)."""
    queues: dict[int, Addresses] = {}
    seen: set[tuple[int, Any]] = set()
    for family, address in addresses:
        key = (family, tuple(address))
        if key not in seen:
            seen.add(key)
            queues.setdefault(family, []).append((family, address))
    ordered: Addresses = []
    lists = list(queues.values())
    for i in range(max((len(q) for q in lists), default=0)):
        ordered.extend(q[i] for q in lists if i < len(q))
    return ordered


async def _happy_eyeballs(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    source_address: tuple[str, int] | None,
) -> socket.socket:
    """A socket connected to one of ``host``'s addresses (RFC 8305 section 5).

    Attempts start in interleaved order; the next one starts when the previous fails or
    after :data:`HAPPY_EYEBALLS_DELAY` while it is still pending; the first to connect
    wins and every other is cancelled and closed. Done here rather than by the loop's
    ``happy_eyeballs_delay``, which uvloop does not have.
    """
    addresses = _literal(host, port) or await resolve(host, port)
    local: Addresses | None = None
    if source_address is not None:
        local_host, local_port = source_address
        local = _literal(local_host, local_port) or await _getaddrinfo(local_host, local_port)
        families = {family for family, _ in local}
        addresses = [a for a in addresses if a[0] in families]
        if not addresses:
            raise OSError(f"No address of {host} has the family of {source_address[0]}")
    ordered = _interleave(addresses)
    if not ordered:
        raise OSError(f"No address found for {host}")

    def bind_for(family: int) -> Any:
        return next((a for f, a in local if f == family), None) if local else None

    if len(ordered) == 1:  # the usual case: no race to run
        family, address = ordered[0]
        return await _attempt(loop, family, address, bind_for(family))
    errors: list[OSError] = []
    pending: set[asyncio.Task[socket.socket]] = set()
    winner: socket.socket | None = None
    next_index = 0
    try:
        while winner is None:
            if next_index < len(ordered):
                family, address = ordered[next_index]
                next_index += 1
                attempt = _attempt(loop, family, address, bind_for(family))
                pending.add(loop.create_task(attempt))
            if not pending:
                break
            more = next_index < len(ordered)
            done, pending = await asyncio.wait(
                pending,
                timeout=HAPPY_EYEBALLS_DELAY if more else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                exc = task.exception()
                if exc is None:
                    if winner is None:
                        winner = task.result()
                    else:
                        task.result().close()  # a second success in the same instant
                elif isinstance(exc, OSError):
                    errors.append(exc)
                else:
                    raise exc
    finally:
        for task in pending:
            # A cancelled attempt closes its own socket; one that has just finished
            # gives its socket back here.
            if not task.cancel() and not task.cancelled() and task.exception() is None:
                task.result().close()
    if winner is not None:
        return winner
    if len(errors) == 1 or len({str(e) for e in errors}) == 1:
        raise errors[0]
    raise OSError("Multiple exceptions: " + "; ".join(str(e) for e in errors))


async def _attempt(
    loop: asyncio.AbstractEventLoop, family: int, address: Any, bind: Any
) -> socket.socket:
    """One connection attempt of :func:`_happy_eyeballs`."""
    debug = log.isEnabledFor(logging.DEBUG)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if bind is not None:
            sock.bind(bind)
        if debug:
            log.debug("connecting to %s port %d", address[0], address[1])
        await loop.sock_connect(sock, address)
    except BaseException as exc:
        sock.close()
        if debug and isinstance(exc, OSError):
            log.debug("connecting to %s port %d failed: %s", address[0], address[1], exc)
        raise
    if debug:
        log.debug("connected to %s port %d", address[0], address[1])
    return sock


def is_local(protocol: SMTPProtocol) -> bool:
    """True for a Unix socket or a loopback peer: nothing leaves the machine. Never
    for a connection through a proxy (the hop after it may cross any network)."""
    transport = protocol.transport
    if transport is None or protocol in _proxied:
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


def certificate_verified(protocol: SMTPProtocol) -> bool:
    """True if the connection is TLS and its handshake verified the server's certificate
    chain and its host name (what RFC 8689 REQUIRETLS asks of every hop)."""
    transport = protocol.transport
    if not protocol.is_tls or transport is None:
        return False
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return False
    context = ssl_object.context
    return bool(
        context.verify_mode == ssl.CERT_REQUIRED
        and context.check_hostname
        and ssl_object.server_hostname
    )
