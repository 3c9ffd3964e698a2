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

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import ClassVar

from ._scram import ScramClient, ScramError
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
    "OAuthBearer",
    "Plain",
    "Scram",
    "XOAuth2",
    "XOAuth2Token",
    "authenticate",
    "scram",
    "token_rejected",
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


# --- additions of issue 14: OAUTHBEARER, SCRAM, the OAuth retry rule -------------------


def _oauth_error(challenge: SMTPResponse) -> str | None:
    """The ``status`` of an OAuth error challenge (RFC 7628 section 3.2.2: base64 of a
    JSON object; Google's XOAUTH2 sends the same), or None if it is not one."""
    try:
        decoded = json.loads(base64.b64decode(challenge.message, validate=True))
    except (binascii.Error, ValueError):
        return None
    status = decoded.get("status") if isinstance(decoded, dict) else None
    return str(status) if status is not None else None


#: Error statuses that say the token itself was refused, so a fresh one may work.
_TOKEN_REFUSED = frozenset({"401", "invalid_token"})


class OAuthBearer(Mechanism):
    """OAUTHBEARER (RFC 7628): a GS2 header naming the user, host and port, and the
    bearer token, as the initial response (section 3.1)::

        client-resp = gs2-header kvsep *kvpair kvsep   ; kvsep = %x01
        gs2-header  = "n," "a=" saslname ","

    On failure the server sends an error challenge (section 3.2.2), which the client
    answers with a single %x01 (section 3.2.3) to get the final failure reply.
    """

    name = "oauthbearer"
    first_expected = None

    def __init__(
        self,
        username: str | bytes,
        access_token: str | bytes,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__()
        user = username.encode("utf-8") if isinstance(username, str) else username
        token = access_token.encode("utf-8") if isinstance(access_token, str) else access_token
        host_bytes = host.encode("utf-8") if host is not None else b""
        # ^A separates the fields: one inside a value would forge another (security.md
        # section 11). The message names the field, never its value.
        for field, value in (("username", user), ("access token", token), ("host", host_bytes)):
            if b"\x01" in value:
                raise ValueError(f"The OAUTHBEARER {field} contains a ^A (0x01) character")
        pairs = b""
        if host is not None:
            pairs += b"host=" + host_bytes + b"\x01"
        if port is not None:
            pairs += b"port=" + str(port).encode("ascii") + b"\x01"
        escaped = user.replace(b"=", b"=3D").replace(b",", b"=2C")
        response = b"n,a=" + escaped + b",\x01" + pairs + b"auth=Bearer " + token + b"\x01\x01"
        self._encoded = base64.b64encode(response)
        self._answered = False
        #: The ``status`` of the server's error challenge, if it sent one.
        self.error_status: str | None = None

    def start(self) -> bytes:
        return b"AUTH OAUTHBEARER " + self._encoded

    def answer(self, challenge: SMTPResponse) -> bytes | None:
        if self._answered:
            return None
        self._answered = True
        self.error_status = _oauth_error(challenge)
        return base64.b64encode(b"\x01")  # section 3.2.3: the dummy response


class XOAuth2Token(XOAuth2):
    """XOAUTH2 that keeps the ``status`` of the server's error challenge (Google's
    format, the JSON of RFC 7628 section 3.2.2), for :func:`token_rejected`."""

    error_status: str | None = None

    def answer(self, challenge: SMTPResponse) -> bytes | None:
        line = super().answer(challenge)
        if line is not None:
            self.error_status = _oauth_error(challenge)
        return line


def token_rejected(mechanism: Mechanism, error: SMTPAuthenticationError) -> bool:
    """True if a fresh OAuth token may succeed where ``mechanism``'s failed: the error
    challenge said 401/invalid_token, or the final reply was 535 (RFC 4954 section 6)."""
    status = getattr(mechanism, "error_status", None)
    return status in _TOKEN_REFUSED or error.code == 535


class Scram(Mechanism):
    """SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802, RFC 7677) and their -PLUS variants.

    The client-first-message is the initial response; the first 334 carries the
    server-first-message, the second the server-final-message (RFC 4954 section 4: data
    with success comes as a challenge, answered with an empty line). A server signature
    that does not match is answered with "*" (cancel) and raised. :attr:`verified` is
    True only once the server has proved it knows the password: the caller must not
    accept a 235 without it.
    """

    first_expected = 334

    def __init__(self, client: ScramClient, name: str) -> None:
        super().__init__()
        self.name = name  # type: ignore[misc]
        self._client = client
        self._step = 0
        self.unproven = False

    @property
    def verified(self) -> bool:
        return self._client.verified

    def start(self) -> bytes:
        return (
            b"AUTH "
            + self.name.upper().encode("ascii")
            + b" "
            + base64.b64encode(self._client.first())
        )

    def answer(self, challenge: SMTPResponse) -> bytes | None:
        self._step += 1
        try:
            data = base64.b64decode(challenge.message, validate=True)
        except (binascii.Error, ValueError):
            data = None
        try:
            if data is None:
                raise ScramError("SCRAM challenge from the server is not valid base64")
            if self._step == 1:
                return base64.b64encode(self._client.final(data))
            if self._step == 2:
                self._client.verify(data)
                return b""
            raise ScramError("SCRAM server sent more challenges than the exchange has")
        except ScramError as exc:
            if self._step == 2 and data is not None and data.startswith(b"e="):
                # The server refused and says why; the empty line gets its final reply.
                return b""
            self.error = SMTPAuthenticationError(challenge.code, str(exc))
            #: A server-final-message that does not prove the server knows the
            #: password: the peer may be an impostor, so no other mechanism may
            #: hand it credentials on this connection (RFC 5802 section 3).
            self.unproven = self._step == 2
            return CANCEL

    def unproven_success(self, reply: SMTPResponse) -> SMTPAuthenticationError:
        """The error for a success reply that came without the server's proof."""
        return SMTPAuthenticationError(
            reply.code,
            "SCRAM: the server accepted without proving it knows the password "
            "(no server signature)",
        )


def scram(
    hash_name: str,
    username: str | bytes,
    password: str | bytes,
    channel_binding: bytes | None,
    plus_offered: bool,
) -> Scram:
    """The SCRAM mechanism to run: -PLUS when the server offers it and the session has
    ``channel_binding`` data (tls-server-end-point), else the plain variant, flagged "y"
    if the client could have bound (RFC 5802 section 6). A username or password that
    SASLprep refuses raises SMTPAuthenticationError before anything is written."""
    name = "scram-sha-256" if hash_name == "sha256" else "scram-sha-1"
    plus = plus_offered and channel_binding is not None
    try:
        client = ScramClient(
            hash_name,
            username,
            password,
            channel_binding=channel_binding if plus else None,
            binding_supported=channel_binding is not None,
        )
    except ScramError as exc:
        raise SMTPAuthenticationError(-1, str(exc)) from None
    return Scram(client, name + "-plus" if plus else name)
