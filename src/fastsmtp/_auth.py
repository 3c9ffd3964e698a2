"""SASL authentication (RFC 4954): mechanisms as small objects, one runner for them all.

A mechanism (RFC 4422) is sans-I/O: :meth:`Mechanism.start` gives the AUTH line (with an
initial response where the mechanism has one) and :meth:`Mechanism.answer` the client's
response to each 334 challenge. :func:`authenticate` runs the whole exchange; its caller
holds the connection's turn, so no other caller's command can land inside it. Every line
goes through the client's ``execute_command`` and is never logged in the clear (the
session knows an AUTH exchange is under way).

Credentials never leave the machine in the clear: every exchange is refused before its
AUTH line is written unless the channel is TLS, a Unix socket or loopback, or the caller
opted in with ``allow_insecure_auth=True`` (security.md section 3).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from ._speedups import (
    auth_crammd5_verify,
    auth_login_encode,
    auth_plain_encode,
    auth_xoauth2_encode,
)
from .errors import REFUSED_LOCALLY, SMTPAuthenticationError, SMTPAuthenticationRefusedLocally
from .response import SMTPResponse

__all__ = (
    "CANCEL",
    "CramMD5",
    "Login",
    "Mechanism",
    "Plain",
    "XOAuth2",
    "authenticate",
)

#: RFC 4954 section 4: a client answers a challenge with "*" to cancel the exchange.
CANCEL = b"*"


def _no_nul(mechanism: str, **credentials: str | bytes) -> None:
    """Refuse a credential holding NUL before anything is written.

    PLAIN and XOAUTH2 refuse their field separators in the core encoders; for LOGIN and
    CRAM-MD5 NUL separates nothing, but SASLprep (RFC 4013 section 2.3, RFC 3454 table
    C.2.1) prohibits it in every SASL credential, and refusing it here keeps ``login()``
    from offering to LOGIN a credential PLAIN has just refused. The message names the
    field, never its value.
    """
    for what, value in credentials.items():
        if (isinstance(value, str) and "\0" in value) or (
            isinstance(value, bytes) and b"\0" in value
        ):
            raise SMTPAuthenticationRefusedLocally(
                501,
                f"5.5.4 The {what} for AUTH {mechanism} contains NUL, which no SASL "
                f"credential may contain {REFUSED_LOCALLY}",
            )


class Mechanism:
    """One SASL mechanism's side of the exchange. Subclasses set ``name``."""

    name: ClassVar[str]
    #: The code the first reply must have, or None to let :meth:`answer` judge it.
    first_expected: ClassVar[int | None] = 235

    def __init__(self) -> None:
        #: Set when :meth:`answer` returned :data:`CANCEL`: raised once the server
        #: has answered the cancellation.
        self.error: SMTPAuthenticationError | None = None

    def start(self) -> bytes:
        """The AUTH command line, without CRLF."""
        raise NotImplementedError

    def answer(self, challenge: SMTPResponse) -> bytes | None:
        """The response to a 334 ``challenge`` (without CRLF), :data:`CANCEL`, or None
        when the reply ends the exchange (it is then judged: 235 or an error)."""
        return None


class Plain(Mechanism):
    """PLAIN (RFC 4616), with an initial response."""

    name = "plain"

    def __init__(self, username: str | bytes, password: str | bytes) -> None:
        super().__init__()
        self._encoded = auth_plain_encode(username, password)

    def start(self) -> bytes:
        return b"AUTH PLAIN " + self._encoded


class Login(Mechanism):
    """LOGIN (draft-murchison-sasl-login), the username sent as the initial response."""

    name = "login"
    first_expected = 334

    def __init__(self, username: str | bytes, password: str | bytes) -> None:
        super().__init__()
        _no_nul("LOGIN", username=username, password=password)
        self._username, self._password = auth_login_encode(username, password)
        self._answered = False

    def start(self) -> bytes:
        return b"AUTH LOGIN " + self._username

    def answer(self, challenge: SMTPResponse) -> bytes | None:
        if self._answered:
            return None
        self._answered = True
        return self._password


class CramMD5(Mechanism):
    """CRAM-MD5 (RFC 2195)."""

    name = "cram-md5"
    first_expected = 334

    def __init__(self, username: str | bytes, password: str | bytes) -> None:
        super().__init__()
        _no_nul("CRAM-MD5", username=username, password=password)
        self._username = username
        self._password = password
        self._answered = False

    def start(self) -> bytes:
        return b"AUTH CRAM-MD5"

    def answer(self, challenge: SMTPResponse) -> bytes | None:
        if self._answered:
            return None
        self._answered = True
        try:
            return auth_crammd5_verify(self._username, self._password, challenge.message)
        except SMTPAuthenticationError as exc:
            # Not a challenge we can answer: cancel, so the server is not left waiting
            # for an answer while the next command arrives.
            self.error = exc
            return CANCEL


class XOAuth2(Mechanism):
    """XOAUTH2: an OAuth 2.0 bearer token as the initial response."""

    name = "xoauth2"
    first_expected = None

    def __init__(self, username: str | bytes, access_token: str | bytes) -> None:
        super().__init__()
        self._encoded = auth_xoauth2_encode(username, access_token)
        self._answered = False

    def start(self) -> bytes:
        return b"AUTH XOAUTH2 " + self._encoded

    def answer(self, challenge: SMTPResponse) -> bytes | None:
        if self._answered:
            return None
        # The server sent its error as a challenge; an empty line ends the exchange.
        self._answered = True
        return b""


async def authenticate(
    mechanism: Mechanism, send: Callable[[bytes], Awaitable[SMTPResponse]]
) -> SMTPResponse:
    """Run ``mechanism`` to its end; returns the 235 reply, else raises
    SMTPAuthenticationError. ``send(line)`` writes one line (without CRLF) and returns its
    reply; the caller holds the connection's turn for the whole exchange."""
    reply = await send(mechanism.start())
    expected = mechanism.first_expected
    if expected is not None and reply.code != expected:
        raise SMTPAuthenticationError(reply.code, reply.message)
    while reply.code == 334:
        line = mechanism.answer(reply)
        if line is None:
            break
        reply = await send(line)
        if line is CANCEL and mechanism.error is not None:
            raise mechanism.error
    if reply.code != 235:
        # A 334 left unanswered keeps the server in the exchange: leaving the turn
        # in that phase aborts the connection (the session's rule).
        raise SMTPAuthenticationError(reply.code, reply.message)
    return reply
