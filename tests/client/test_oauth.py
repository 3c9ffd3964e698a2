"""OAuth 2.0: OAUTHBEARER (RFC 7628) and XOAUTH2, and ``oauth_token_generator``'s
lifecycle: a token the server rejects is answered as the RFC requires, replaced by a
fresh one from the generator, and retried once, on every new connection (the pool's too).

The servers are aiosmtpd on loopback (AUTH allowed without TLS there, security.md
section 3); the OAUTHBEARER server side is the handler below.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword
from aiosmtpd.smtp import SMTP as ServerSMTP

import fastsmtp
from fastsmtp import SMTP, SMTPAuthenticationError, SMTPException, SMTPPool
from tests._servers import RecordingHandler, RecordingServer, ServerConfig
from tests.client.conftest import TLSMaterial

RAW = b"Subject: oauth\r\n\r\nbody\r\n"
GOOD = "tok-123"
EXPIRED = "expired-token-SECRET-9f2c"
ERROR_CHALLENGE = {
    "status": "invalid_token",
    "scope": "https://mail.example.test/",
    "openid-configuration": "https://auth.example.test/.well-known/openid-configuration",
}


#: XOAUTH2's error challenge as Google documents it.
GOOGLE_ERROR_CHALLENGE = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}


class OAuthHandler(RecordingHandler):  # type: ignore[misc,valid-type]
    """Adds OAUTHBEARER (RFC 7628) to the recording handler, and a mode where a rejected
    token gets a bare failure reply (no error challenge), as Microsoft 365 does."""

    error_challenge = True
    failure = "535 5.7.8 Authentication credentials invalid"

    def __init__(self, config: ServerConfig, recorder: Any) -> None:
        super().__init__(config, recorder)
        #: (gs2 header, key/value pairs) of every OAUTHBEARER initial response.
        self.bearer: list[tuple[bytes, dict[bytes, bytes]]] = []
        #: The client's answers to error challenges.
        self.error_answers: list[bytes] = []

    def _token_ok(self, login: bytes | None, auth: bytes | None) -> bool:
        return any(
            login == user.encode() and auth == b"Bearer " + token.encode()
            for user, token in self.config.oauth_tokens.items()
        )

    async def _refuse(
        self, server: ServerSMTP, expected_answer: bytes, error: dict[str, str]
    ) -> AuthResult:
        if self.error_challenge:
            answer = await server.challenge_auth(json.dumps(error))
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            assert isinstance(answer, bytes)
            self.error_answers.append(answer)
            if answer != expected_answer:
                await server.push("501 5.5.2 Unexpected answer to the error challenge")
                return AuthResult(success=False, handled=True)
        await server.push(self.failure)
        return AuthResult(success=False, handled=True)

    async def auth_OAUTHBEARER(self, server: ServerSMTP, args: list[str]) -> AuthResult:
        if len(args) != 2:
            await server.push("501 5.5.2 OAUTHBEARER needs an initial response")
            return AuthResult(success=False, handled=True)
        blob = base64.b64decode(args[1], validate=True)
        gs2, _, rest = blob.partition(b"\x01")
        assert rest.endswith(b"\x01\x01"), blob
        pairs = dict(kv.split(b"=", 1) for kv in rest[:-2].split(b"\x01"))
        self.bearer.append((gs2, pairs))
        login = None
        if gs2.startswith(b"n,a=") and gs2.endswith(b","):
            login = gs2[4:-1].replace(b"=2C", b",").replace(b"=3D", b"=")
        ok = self._token_ok(login, pairs.get(b"auth"))
        self._record("OAUTHBEARER", login, ok)
        if ok:
            return AuthResult(success=True, handled=False, auth_data=LoginPassword(login, b""))
        # RFC 7628 section 3.2.3: the client answers the error challenge with %x01.
        return await self._refuse(server, b"\x01", ERROR_CHALLENGE)

    async def auth_XOAUTH2(self, server: ServerSMTP, args: list[str]) -> AuthResult:
        blob = base64.b64decode(args[1], validate=True)
        fields = dict(part.split(b"=", 1) for part in blob.split(b"\x01") if b"=" in part)
        ok = self._token_ok(fields.get(b"user"), fields.get(b"auth"))
        self._record("XOAUTH2", fields.get(b"user"), ok)
        if ok:
            return AuthResult(success=True, handled=False, auth_data=LoginPassword(b"", b""))
        return await self._refuse(server, b"", GOOGLE_ERROR_CHALLENGE)


class BareFailureHandler(OAuthHandler):
    error_challenge = False


class TemporaryFailureHandler(OAuthHandler):
    error_challenge = False
    failure = "454 4.7.0 Temporary authentication failure"


class ChallengeThen454Handler(OAuthHandler):
    """An error challenge that says the token is bad, then a final reply other than 535."""

    failure = "454 4.7.0 Temporary authentication failure"


@dataclass
class Tokens:
    """An ``oauth_token_generator`` handing out ``values`` in turn (the last one repeats)."""

    values: list[str]
    calls: int = 0
    given: list[str] = field(default_factory=list)

    async def __call__(self) -> str:
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        self.given.append(value)
        return value


ServerFactory = Callable[..., RecordingServer]


@pytest.fixture
def oauth_server() -> Any:
    servers: list[RecordingServer] = []

    def start(
        mechanisms: tuple[str, ...] = ("OAUTHBEARER", "XOAUTH2"),
        handler: type[OAuthHandler] = OAuthHandler,
        **config: Any,
    ) -> RecordingServer:
        config.setdefault("oauth_tokens", {"alice": GOOD})
        cfg = ServerConfig(auth_mechanisms=mechanisms, **config)
        server = RecordingServer(cfg, handler=handler)
        server.start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


def attempts(server: RecordingServer) -> list[tuple[str, bool]]:
    return [(a.mechanism, a.success) for a in server.auth_attempts]


def auth_lines(server: RecordingServer) -> list[bytes]:
    lines = server.connections[0].raw_lines
    start = next(i for i, line in enumerate(lines) if line.startswith(b"AUTH "))
    return lines[start:]


async def send_with(server: RecordingServer, tokens: Callable[[], Awaitable[str]]) -> None:
    errors, _ = await fastsmtp.send(
        RAW,
        sender="a@example.com",
        recipients=["b@example.com"],
        hostname=server.host,
        port=server.port,
        username="alice",
        oauth_token_generator=tokens,
        timeout=5,
    )
    assert errors == {}


def bearer_response(user: str, token: str, port: int) -> bytes:
    raw = f"n,a={user},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(raw.encode())


# --- OAUTHBEARER --------------------------------------------------------------------------


async def test_connect_prefers_oauthbearer(oauth_server: ServerFactory) -> None:
    server = oauth_server()
    tokens = Tokens([GOOD])
    await send_with(server, tokens)
    assert tokens.calls == 1
    assert attempts(server) == [("OAUTHBEARER", True)]
    assert [c.line for c in server.commands if c.verb == "AUTH"] == [
        "AUTH OAUTHBEARER " + bearer_response("alice", GOOD, server.port).decode()
    ]
    assert len(server.messages) == 1


async def test_auth_oauthbearer_method_escapes_the_user(oauth_server: ServerFactory) -> None:
    server = oauth_server(oauth_tokens={"a,b=c": GOOD})
    async with SMTP(hostname=server.host, port=server.port, timeout=5) as client:
        response = await client.auth_oauthbearer("a,b=c", GOOD)
        assert response.code == 235
    # RFC 5801 section 4 (saslname): "," is "=2C" and "=" is "=3D".
    assert server.handler.bearer == [
        (
            b"n,a=a=2Cb=3Dc,",
            {
                b"host": b"127.0.0.1",
                b"port": str(server.port).encode(),
                b"auth": b"Bearer " + GOOD.encode(),
            },
        )
    ]


async def test_oauthbearer_error_challenge_is_answered_with_x01(
    oauth_server: ServerFactory,
) -> None:
    server = oauth_server()
    async with SMTP(hostname=server.host, port=server.port, timeout=5) as client:
        with pytest.raises(SMTPAuthenticationError) as info:
            await client.auth_oauthbearer("alice", EXPIRED)
        assert info.value.code == 535
        assert (await client.noop()).code == 250
    assert server.handler.error_answers == [b"\x01"]
    lines = auth_lines(server)
    assert base64.b64decode(lines[1]) == b"\x01"  # RFC 7628 section 3.2.3
    assert lines[2] == b"NOOP"


async def test_oauthbearer_refuses_x01_in_fields(oauth_server: ServerFactory) -> None:
    server = oauth_server()
    async with SMTP(hostname=server.host, port=server.port, timeout=5) as client:
        await client.ehlo()
        for user, token in (("al\x01ice", GOOD), ("alice", "tok\x01auth=Bearer x")):
            with pytest.raises(ValueError, match="OAUTHBEARER") as info:
                await client.auth_oauthbearer(user, token)
            assert "Bearer x" not in str(info.value) and "ice" not in str(info.value)
    assert "AUTH" not in server.verbs


# --- the token lifecycle ------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "XOAUTH2"])
async def test_rejected_token_is_refreshed_once(
    oauth_server: ServerFactory, mechanism: str
) -> None:
    """An expired token: error challenge answered, final 535, a fresh token, success."""
    server = oauth_server(mechanisms=(mechanism,))
    tokens = Tokens([EXPIRED, GOOD])
    await send_with(server, tokens)
    assert tokens.calls == 2
    assert attempts(server) == [(mechanism, False), (mechanism, True)]
    answer = b"\x01" if mechanism == "OAUTHBEARER" else b""
    lines = auth_lines(server)
    assert lines[0].startswith(f"AUTH {mechanism} ".encode())
    assert base64.b64decode(lines[1]) == answer  # the answer to the error challenge
    assert lines[2].startswith(f"AUTH {mechanism} ".encode())
    assert EXPIRED.encode() in base64.b64decode(lines[0].split()[2])
    assert GOOD.encode() in base64.b64decode(lines[2].split()[2])
    assert len(server.messages) == 1


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "XOAUTH2"])
async def test_bare_535_also_refreshes(oauth_server: ServerFactory, mechanism: str) -> None:
    """A server that answers a bad token with 535 and no error challenge (Microsoft 365)."""
    server = oauth_server(mechanisms=(mechanism,), handler=BareFailureHandler)
    tokens = Tokens([EXPIRED, GOOD])
    await send_with(server, tokens)
    assert tokens.calls == 2
    assert attempts(server) == [(mechanism, False), (mechanism, True)]
    assert server.handler.error_answers == []


async def test_temporary_failure_is_not_retried(oauth_server: ServerFactory) -> None:
    """454 is not a rejected token: no fresh token, the error is raised as is."""
    server = oauth_server(handler=TemporaryFailureHandler)
    tokens = Tokens([EXPIRED, GOOD])
    client = SMTP(
        hostname=server.host, port=server.port, username="alice", oauth_token_generator=tokens
    )
    with pytest.raises(SMTPAuthenticationError) as info:
        await client.connect()
    assert info.value.args == (454, "4.7.0 Temporary authentication failure")
    assert tokens.calls == 1
    assert not client.is_connected


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "XOAUTH2"])
async def test_error_challenge_status_alone_refreshes(
    oauth_server: ServerFactory, mechanism: str
) -> None:
    """The error challenge's status (401 / invalid_token) says the token was refused,
    whatever the final reply: a fresh token is tried."""
    server = oauth_server(mechanisms=(mechanism,), handler=ChallengeThen454Handler)
    tokens = Tokens([EXPIRED, GOOD])
    await send_with(server, tokens)
    assert tokens.calls == 2
    assert attempts(server) == [(mechanism, False), (mechanism, True)]
    assert len(server.handler.error_answers) == 1


async def test_retried_once_only_and_secrets_stay_out(
    oauth_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Two rejected tokens: the second failure is raised; neither token (nor its base64
    form) is in the exception or the DEBUG protocol log."""
    server = oauth_server()
    second = "second-SECRET-token-77"
    tokens = Tokens([EXPIRED, second])
    client = SMTP(
        hostname=server.host,
        port=server.port,
        username="alice",
        oauth_token_generator=tokens,
        timeout=5,
    )
    with (
        caplog.at_level(logging.DEBUG, logger="fastsmtp"),
        pytest.raises(SMTPAuthenticationError) as info,
    ):
        await client.connect()
    assert tokens.calls == 2
    assert info.value.code == 535
    assert attempts(server) == [("OAUTHBEARER", False), ("OAUTHBEARER", False)]
    assert not client.is_connected
    assert "AUTH" in caplog.text and "[redacted]" in caplog.text  # the log did run
    encoded = [bearer_response("alice", t, server.port).decode() for t in (EXPIRED, second)]
    for secret in (EXPIRED, second, *encoded, "SECRET"):
        assert secret not in caplog.text
        assert secret not in str(info.value)
        assert secret not in repr(info.value)


async def test_generator_called_for_each_connection(oauth_server: ServerFactory) -> None:
    server = oauth_server(mechanisms=("XOAUTH2",))
    tokens = Tokens([GOOD])
    client = SMTP(
        hostname=server.host, port=server.port, username="alice", oauth_token_generator=tokens
    )
    for _ in range(2):
        await client.connect()
        await client.quit()
    assert tokens.calls == 2
    assert attempts(server) == [("XOAUTH2", True), ("XOAUTH2", True)]


async def test_neither_mechanism_keeps_aiosmtplib_message(oauth_server: ServerFactory) -> None:
    server = oauth_server(mechanisms=("PLAIN",), users={"alice": "pw"})
    tokens = Tokens([GOOD])
    client = SMTP(
        hostname=server.host, port=server.port, username="alice", oauth_token_generator=tokens
    )
    with pytest.raises(SMTPException) as info:
        await client.connect()
    assert type(info.value) is SMTPException
    assert info.value.args == (
        "oauth_token_generator provided but server does not support XOAUTH2",
    )
    assert tokens.calls == 0
    assert "AUTH" not in server.verbs


async def test_oauth_over_starttls(oauth_server: ServerFactory, tls: TLSMaterial) -> None:
    """With STARTTLS on offer, the token goes only over TLS (mechanisms from the new EHLO)."""
    server = oauth_server(starttls_context=tls.server_context(), auth_require_tls=True)
    tokens = Tokens([EXPIRED, GOOD])
    async with SMTP(
        hostname=server.host,
        port=server.port,
        username="alice",
        oauth_token_generator=tokens,
        tls_context=tls.client_context(),
        timeout=5,
    ) as client:
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert [(c.verb, c.tls) for c in server.commands if c.verb == "AUTH"] == [
        ("AUTH", True),
        ("AUTH", True),
    ]
    assert attempts(server) == [("OAUTHBEARER", False), ("OAUTHBEARER", True)]


# --- the pool -----------------------------------------------------------------------------


async def test_pool_refreshes_per_connection(oauth_server: ServerFactory) -> None:
    """Each of the pool's connections logs in through SMTP.connect: each gets an expired
    token first, then a fresh one."""
    server = oauth_server()
    tokens = Tokens([EXPIRED, GOOD, EXPIRED, GOOD])
    async with SMTPPool(
        hostname=server.host,
        port=server.port,
        username="alice",
        oauth_token_generator=tokens,
        max_connections=1,
        max_messages_per_connection=1,
        timeout=5,
    ) as pool:
        for i in range(2):
            await pool.sendmail("a@example.com", ["b@example.com"], RAW + str(i).encode())
    assert tokens.calls == 4
    assert len(server.connections) == 2
    assert attempts(server) == [
        ("OAUTHBEARER", False),
        ("OAUTHBEARER", True),
        ("OAUTHBEARER", False),
        ("OAUTHBEARER", True),
    ]
    assert len(server.messages) == 2
