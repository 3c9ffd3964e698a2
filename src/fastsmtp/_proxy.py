"""Connecting through a SOCKS or HTTP proxy (the ``proxy=`` option).

:class:`ProxyURL` parses and checks the proxy URL once (it keeps the credentials but never
shows them: its ``repr``/``str`` and every message built from it are redacted).
:func:`connect_via` opens a TCP tunnel to the SMTP server through the proxy and returns the
connected socket; TLS, if any, is then started over it by the caller, for the SMTP host.

SOCKS 4/4a/5 (RFC 1928, RFC 1929 for username/password) go through the optional
``python-socks`` package (``pip install "fastsmtplib[proxy]"``). HTTP CONNECT (RFC 9110
section 9.3.6) is done here: an SMTP server speaks first, so the bytes after the proxy's
reply are already the server's greeting, and the reply must be read without reading one
byte past its end (a generic client that reads "whatever has arrived" can swallow it).
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import unquote, urlsplit

__all__ = ("PROXY_SCHEMES", "ProxyError", "ProxyURL", "connect_via", "require_backend")

#: scheme -> (kind, DNS at the proxy). ``socks5h``/``socks4a`` send the SMTP host name to the
#: proxy, which resolves it; ``socks5``/``socks4`` resolve it here and send the address.
PROXY_SCHEMES: dict[str, tuple[str, bool]] = {
    "socks5": ("socks5", False),
    "socks5h": ("socks5", True),
    "socks4": ("socks4", False),
    "socks4a": ("socks4", True),
    "http": ("http", True),
}
_DEFAULT_SOCKS_PORT = 1080  # IANA's port for SOCKS
_INSTALL_HINT = 'pip install "fastsmtplib[proxy]"'
#: An HTTP proxy's reply to CONNECT may not be longer than this (status line and headers).
_MAX_CONNECT_REPLY = 16384


class ProxyError(Exception):
    """The proxy refused or failed the tunnel; the message is the proxy's reason."""


class ProxyURL:
    """A checked proxy URL. Its ``repr`` and ``str`` hide the credentials."""

    __slots__ = ("host", "kind", "password", "port", "remote_dns", "scheme", "username")

    scheme: str
    kind: str
    remote_dns: bool
    host: str
    port: int
    username: str | None
    password: str | None

    def __init__(self, url: str) -> None:
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
            raise ValueError("The proxy URL contains control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"Invalid proxy URL {_redact_text(url)}: bad port") from exc
        scheme = parts.scheme.lower()
        if scheme not in PROXY_SCHEMES:
            known = ", ".join(f"{s}://" for s in PROXY_SCHEMES)
            raise ValueError(
                f"Unsupported proxy scheme in {_redact_text(url)} (use one of {known})"
            )
        if not parts.hostname:
            raise ValueError(f"The proxy URL {_redact_text(url)} has no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"The proxy URL {_redact_text(url)} may only name a host and port")
        self.scheme = scheme
        self.kind, self.remote_dns = PROXY_SCHEMES[scheme]
        self.host = parts.hostname
        self.username = unquote(parts.username) if parts.username is not None else None
        self.password = unquote(parts.password) if parts.password is not None else None
        if port is None:
            if self.kind == "http":
                raise ValueError(f"The proxy URL {_redact_text(url)} needs a port")
            port = _DEFAULT_SOCKS_PORT
        self.port = port
        if self.kind == "socks4" and self.password is not None:
            raise ValueError(f"SOCKS4 has a user id but no password: {self}")
        if self.kind != "socks4" and (self.username is None) != (self.password is None):
            raise ValueError(f"The proxy URL {self} needs both a user name and a password")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        credentials = "***@" if self.username is not None else ""
        return f"{self.scheme}://{credentials}{host}:{self.port}"

    def __repr__(self) -> str:
        return f"<ProxyURL {self}>"

    def redact(self, text: str) -> str:
        """``text`` with this proxy's password (and user name) replaced by ``***``."""
        for secret in (self.password, self.username):
            if secret:
                text = text.replace(secret, "***")
        return text


def _redact_text(url: str) -> str:
    """A URL that failed to parse, shown without anything before an ``@``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "(not a URL)"
    return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else url


def require_backend(proxy: ProxyURL) -> None:
    """Raise ImportError saying what to install when ``proxy`` needs python-socks and it is
    missing (checked when the option is set, before anything is sent)."""
    if proxy.kind == "http":
        return
    try:
        import python_socks.async_.asyncio  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"proxy={proxy.scheme}://... needs the python-socks package: {_INSTALL_HINT}"
        ) from exc


async def connect_via(
    proxy: ProxyURL,
    host: str,
    port: int,
    timeout: float | None,
    source_address: tuple[str, int] | None,
    open_tcp: Callable[[str, int], Awaitable[socket.socket]],
) -> socket.socket:
    """A socket connected through ``proxy`` to ``host``:``port``, tunnel ready.

    ``open_tcp(host, port)`` connects to an HTTP proxy (the caller's way, with its
    source address); python-socks reaches a SOCKS proxy itself. Raises
    :class:`ProxyError` when the proxy refuses, OSError when it cannot be reached and
    TimeoutError after ``timeout`` (the caller's deadline is the one that counts).
    """
    if proxy.kind == "http":
        return await _http_connect(proxy, host, port, open_tcp)
    return await _socks_connect(proxy, host, port, timeout, source_address)


async def _socks_connect(
    proxy: ProxyURL,
    host: str,
    port: int,
    timeout: float | None,
    source_address: tuple[str, int] | None,
) -> socket.socket:
    from python_socks import ProxyError as SocksError
    from python_socks import ProxyType
    from python_socks.async_.asyncio import Proxy

    kind = ProxyType.SOCKS5 if proxy.kind == "socks5" else ProxyType.SOCKS4
    client = Proxy(
        kind,
        proxy.host,
        proxy.port,
        username=proxy.username,
        password=proxy.password,
        rdns=proxy.remote_dns,
        loop=asyncio.get_running_loop(),
    )
    # python-socks replaces a None timeout with its own 60 s default; the caller's
    # wait_for is the real deadline, so "no timeout" here is a very long one.
    limit = timeout if timeout is not None else 365 * 86400.0
    try:
        sock: socket.socket = await client.connect(
            host, port, timeout=limit, local_addr=source_address
        )
    except SocksError as exc:
        if isinstance(exc, (OSError, TimeoutError)):
            raise  # unreachable proxy (ProxyConnectionError) or its timeout
        raise ProxyError(proxy.redact(str(exc))) from None
    return sock


async def _http_connect(
    proxy: ProxyURL,
    host: str,
    port: int,
    open_tcp: Callable[[str, int], Awaitable[socket.socket]],
) -> socket.socket:
    """RFC 9110 section 9.3.6: CONNECT, then a 2xx reply and the tunnel."""
    loop = asyncio.get_running_loop()
    try:
        sock = await open_tcp(proxy.host, proxy.port)
    except OSError as exc:
        raise OSError(exc.errno, f"Could not connect to proxy {proxy}: {exc}") from None
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        if proxy.username is not None:
            pair = f"{proxy.username}:{proxy.password or ''}".encode()
            request += f"Proxy-Authorization: Basic {base64.b64encode(pair).decode('ascii')}\r\n"
        await loop.sock_sendall(sock, (request + "\r\n").encode("utf-8"))
        head = await _read_head(loop, sock)
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
            raise ProxyError(f"Invalid reply to CONNECT: {status_line[:200]!r}")
        if not fields[1].startswith("2"):
            raise ProxyError(proxy.redact(status_line[len(fields[0]) + 1 :][:200]))
    except BaseException:
        sock.close()
        raise
    return sock


_END = b"\r\n\r\n"


async def _read_head(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    """The reply head up to its blank line, never reading past it: what follows belongs
    to the SMTP server. Each read asks for at most the bytes that could still complete
    the terminator, so it cannot overshoot."""
    head = bytearray()
    while not head.endswith(_END):
        if len(head) > _MAX_CONNECT_REPLY:
            raise ProxyError("The proxy's reply to CONNECT is too long")
        matched = next(k for k in (3, 2, 1, 0) if head.endswith(_END[:k]))
        chunk = await loop.sock_recv(sock, len(_END) - matched)
        if not chunk:
            raise ProxyError("The proxy closed the connection during CONNECT")
        head += chunk
    return bytes(head)
