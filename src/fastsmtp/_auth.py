"""SASL authentication (RFC 4954) for the SMTP client: LOGIN, PLAIN, CRAM-MD5, XOAUTH2.

Credentials never leave the machine in the clear: every exchange is refused before
its AUTH line is written unless the channel is TLS, a Unix socket or loopback, or the
caller opted in with ``allow_insecure_auth=True`` (security.md section 3).
"""

from __future__ import annotations

import ipaddress
import socket

from ._commands import CRLF
from ._connection import SMTPConnection
from ._speedups import (
    auth_crammd5_verify,
    auth_login_encode,
    auth_plain_encode,
    auth_xoauth2_encode,
)
from .errors import SMTPAuthenticationError, SMTPException
from .protocol import SMTPProtocol
from .response import SMTPResponse
from .typing import Default, _default

__all__ = ("SMTPAuth",)


def _is_local(protocol: SMTPProtocol) -> bool:
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


class SMTPAuth(SMTPConnection):
    """The AUTH commands of :class:`fastsmtp.SMTP`."""

    AUTH_METHODS: tuple[str, ...] = ("cram-md5", "plain", "login")

    @property
    def supported_auth_methods(self) -> list[str]:
        """Methods both sides support, in the client's order of preference."""
        return [method for method in self.AUTH_METHODS if method in self.server_auth_methods]

    def _check_auth_channel(self) -> None:
        protocol = self._connected_protocol()
        if self.allow_insecure_auth or protocol.is_tls or _is_local(protocol):
            return
        raise SMTPException(
            "Refusing to send credentials over an unencrypted connection to a remote "
            "server. Use TLS (use_tls=True or start_tls=True), or pass "
            "allow_insecure_auth=True if this channel is trusted."
        )

    async def _sasl(
        self, line: bytes, expected: int | None, timeout: float | Default | None
    ) -> SMTPResponse:
        """One step of a SASL exchange (RFC 4954), never logged in the clear; a reply
        other than ``expected`` (when given) fails the authentication."""
        response = await self._execute(line + CRLF, timeout, redact=True)
        if expected is not None and response.code != expected:
            raise SMTPAuthenticationError(response.code, response.message)
        return response

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
            if not self._connected_protocol().is_tls:
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
        self._check_auth_channel()
        response = await self._sasl(b"AUTH CRAM-MD5", 334, timeout)
        try:
            verification = auth_crammd5_verify(username, password, response.message)
        except SMTPAuthenticationError:
            # RFC 4954 section 4: "*" cancels the exchange, so the server is not left
            # waiting for an answer while the next command arrives.
            await self._sasl(b"*", None, timeout)
            raise
        return await self._sasl(verification, 235, timeout)

    async def auth_plain(
        self,
        username: str | bytes,
        password: str | bytes,
        /,
        *,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """AUTH PLAIN (RFC 4616) with an initial response."""
        self._check_auth_channel()
        encoded = auth_plain_encode(username, password)
        return await self._sasl(b"AUTH PLAIN " + encoded, 235, timeout)

    async def auth_login(
        self,
        username: str | bytes,
        password: str | bytes,
        /,
        *,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """AUTH LOGIN, the username sent as the initial response."""
        self._check_auth_channel()
        encoded_username, encoded_password = auth_login_encode(username, password)
        await self._sasl(b"AUTH LOGIN " + encoded_username, 334, timeout)
        return await self._sasl(encoded_password, 235, timeout)

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
        self._check_auth_channel()
        encoded = auth_xoauth2_encode(username, access_token)
        response = await self._sasl(b"AUTH XOAUTH2 " + encoded, None, timeout)
        if response.code == 334:
            # The server sent an error as a challenge; an empty line ends the exchange.
            response = await self._sasl(b"", None, timeout)
        if response.code != 235:
            raise SMTPAuthenticationError(response.code, response.message)
        return response
