"""Authentication: login() method order and fall-through, each mechanism, OAuth2 on connect.

The servers are on loopback, where fastsmtp allows AUTH without TLS (security.md section 3).
"""

from __future__ import annotations

import base64
import ssl

import pytest

import fastsmtp
from fastsmtp import SMTP, SMTPAuthenticationError, SMTPException
from tests._servers import RecordingServer
from tests.client.conftest import SmtpdFactory, TLSMaterial

RAW = b"Subject: auth\r\n\r\nbody\r\n"
ALL = ("CRAM-MD5", "LOGIN", "PLAIN", "XOAUTH2")
USERS = {"alice": "s3cret", "jörg": "pässword"}


def client_for(server: RecordingServer, **kwargs: object) -> SMTP:
    kwargs.setdefault("timeout", 5)
    return SMTP(hostname=server.host, port=server.port, **kwargs)  # type: ignore[arg-type]


def auth_lines(server: RecordingServer) -> list[str]:
    return [c.line for c in server.commands if c.verb == "AUTH"]


def attempts(server: RecordingServer) -> list[tuple[str, bool]]:
    return [(a.mechanism, a.success) for a in server.auth_attempts]


# --- login() -----------------------------------------------------------------------------


async def test_login_prefers_cram_md5(auth_smtpd: RecordingServer) -> None:
    async with client_for(auth_smtpd) as client:
        response = await client.login("alice", "s3cret")
        assert response.code == 235
        assert client.supported_auth_methods == ["cram-md5", "plain", "login"]
        assert "xoauth2" in client.server_auth_methods
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert attempts(auth_smtpd) == [("CRAM-MD5", True)]
    assert auth_lines(auth_smtpd) == ["AUTH CRAM-MD5"]
    assert len(auth_smtpd.messages) == 1


async def test_login_falls_through_to_plain(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(auth_mechanisms=ALL, users=USERS, broken_mechanisms=("CRAM-MD5",))
    async with client_for(server) as client:
        response = await client.login("alice", "s3cret")
        assert response.code == 235
    assert attempts(server) == [("CRAM-MD5", False), ("PLAIN", True)]


async def test_login_falls_through_to_login(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(
        auth_mechanisms=ALL, users=USERS, broken_mechanisms=("CRAM-MD5", "PLAIN")
    )
    async with client_for(server) as client:
        await client.login("alice", "s3cret")
    assert attempts(server) == [("CRAM-MD5", False), ("PLAIN", False), ("LOGIN", True)]
    assert [line.split()[1] for line in auth_lines(server)] == ["CRAM-MD5", "PLAIN", "LOGIN"]


async def test_login_all_methods_fail(auth_smtpd: RecordingServer) -> None:
    async with client_for(auth_smtpd) as client:
        with pytest.raises(SMTPAuthenticationError) as info:
            await client.login("alice", "wrong")
        assert client.is_connected
    assert info.value.code == 535
    assert attempts(auth_smtpd) == [("CRAM-MD5", False), ("PLAIN", False), ("LOGIN", False)]
    assert "XOAUTH2" not in " ".join(auth_lines(auth_smtpd))


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_login_single_mechanism(smtpd_factory: SmtpdFactory, mechanism: str) -> None:
    server = smtpd_factory(auth_mechanisms=(mechanism,), users=USERS)
    async with client_for(server) as client:
        await client.login("alice", "s3cret")
        assert client.supported_auth_methods == [mechanism.lower()]
    assert attempts(server) == [(mechanism, True)]


async def test_login_no_common_method(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(auth_mechanisms=("XOAUTH2",), users=USERS)
    async with client_for(server) as client:
        with pytest.raises(SMTPException) as info:
            await client.login("alice", "s3cret")
    assert info.value.args == ("No suitable authentication method found.",)
    assert auth_lines(server) == []


async def test_login_without_auth_extension_plaintext(smtpd: RecordingServer) -> None:
    async with client_for(smtpd) as client:
        with pytest.raises(SMTPException) as info:
            await client.login("alice", "s3cret")
    assert info.value.args == (
        "The SMTP AUTH extension is not supported by this server. "
        "Try connecting via TLS (or STARTTLS).",
    )
    assert auth_lines(smtpd) == []


async def test_login_without_auth_extension_over_tls(
    implicit_tls_smtpd: RecordingServer, client_tls_context: ssl.SSLContext
) -> None:
    async with client_for(implicit_tls_smtpd, use_tls=True, tls_context=client_tls_context) as c:
        with pytest.raises(SMTPException) as info:
            await c.login("alice", "s3cret")
    assert info.value.args == ("The SMTP AUTH extension is not supported by this server.",)


async def test_login_non_ascii_credentials(auth_smtpd: RecordingServer) -> None:
    async with client_for(auth_smtpd) as client:
        await client.login("jörg", "pässword")
    assert attempts(auth_smtpd) == [("CRAM-MD5", True)]
    assert auth_smtpd.auth_attempts[0].login == "jörg".encode()


# --- individual mechanisms ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("alice", "s3cret"),
        (b"alice", b"s3cret"),
        ("jörg", "pässword"),
        ("jörg".encode(), "pässword"),
    ],
)
async def test_auth_plain(
    auth_smtpd: RecordingServer, user: str | bytes, password: str | bytes
) -> None:
    async with client_for(auth_smtpd) as client:
        await client.ehlo()
        response = await client.auth_plain(user, password)
        assert response.code == 235
    u = user if isinstance(user, bytes) else user.encode()
    p = password if isinstance(password, bytes) else password.encode()
    expected = base64.b64encode(b"\0" + u + b"\0" + p).decode()
    assert auth_lines(auth_smtpd) == [f"AUTH PLAIN {expected}"]
    assert attempts(auth_smtpd) == [("PLAIN", True)]


async def test_auth_plain_refused(auth_smtpd: RecordingServer) -> None:
    async with client_for(auth_smtpd) as client:
        await client.ehlo()
        with pytest.raises(SMTPAuthenticationError) as info:
            await client.auth_plain("alice", "nope")
    assert info.value.args == (535, "5.7.8 Authentication credentials invalid")


@pytest.mark.parametrize(("user", "password"), [("alice", "s3cret"), (b"alice", b"s3cret")])
async def test_auth_login(
    auth_smtpd: RecordingServer, user: str | bytes, password: str | bytes
) -> None:
    async with client_for(auth_smtpd) as client:
        await client.ehlo()
        response = await client.auth_login(user, password)
        assert response.code == 235
    assert auth_lines(auth_smtpd) == ["AUTH LOGIN " + base64.b64encode(b"alice").decode()]
    raw_lines = auth_smtpd.connections[0].raw_lines
    index = raw_lines.index(b"AUTH LOGIN YWxpY2U=")
    assert raw_lines[index + 1] == base64.b64encode(b"s3cret")
    assert attempts(auth_smtpd) == [("LOGIN", True)]


async def test_auth_login_refused(auth_smtpd: RecordingServer) -> None:
    async with client_for(auth_smtpd) as client:
        await client.ehlo()
        with pytest.raises(SMTPAuthenticationError) as info:
            await client.auth_login("alice", "nope")
    assert info.value.code == 535


@pytest.mark.parametrize(("user", "password"), [("alice", "s3cret"), (b"alice", b"s3cret")])
async def test_auth_crammd5(
    auth_smtpd: RecordingServer, user: str | bytes, password: str | bytes
) -> None:
    async with client_for(auth_smtpd) as client:
        await client.ehlo()
        response = await client.auth_crammd5(user, password)
        assert response.code == 235
    assert attempts(auth_smtpd) == [("CRAM-MD5", True)]


async def test_auth_crammd5_refused(auth_smtpd: RecordingServer) -> None:
    async with client_for(auth_smtpd) as client:
        await client.ehlo()
        with pytest.raises(SMTPAuthenticationError) as info:
            await client.auth_crammd5("alice", "nope")
    assert info.value.code == 535


@pytest.mark.parametrize(("user", "token"), [("alice", "tok-123"), (b"alice", b"tok-123")])
async def test_auth_xoauth2(
    auth_smtpd: RecordingServer, user: str | bytes, token: str | bytes
) -> None:
    async with client_for(auth_smtpd) as client:
        response = await client.auth_xoauth2(user, token)  # runs EHLO itself
        assert response.code == 235
    expected = base64.b64encode(b"user=alice\x01auth=Bearer tok-123\x01\x01").decode()
    assert auth_lines(auth_smtpd) == [f"AUTH XOAUTH2 {expected}"]
    assert auth_smtpd.verbs[0] == "EHLO"
    assert attempts(auth_smtpd) == [("XOAUTH2", True)]


async def test_auth_xoauth2_refused_answers_error_challenge(auth_smtpd: RecordingServer) -> None:
    async with client_for(auth_smtpd) as client:
        with pytest.raises(SMTPAuthenticationError) as info:
            await client.auth_xoauth2("alice", "expired")
        assert info.value.code == 535
        assert (await client.noop()).code == 250
    raw_lines = auth_smtpd.connections[0].raw_lines
    index = next(i for i, line in enumerate(raw_lines) if line.startswith(b"AUTH XOAUTH2 "))
    assert raw_lines[index + 1] == b""
    assert raw_lines[index + 2] == b"NOOP"


# --- login on connect / send() ------------------------------------------------------------


async def test_send_with_username_and_password(auth_smtpd: RecordingServer) -> None:
    await fastsmtp.send(
        RAW,
        sender="a@example.com",
        recipients=["b@example.com"],
        hostname=auth_smtpd.host,
        port=auth_smtpd.port,
        username="alice",
        password="s3cret",
        timeout=5,
    )
    assert attempts(auth_smtpd) == [("CRAM-MD5", True)]
    assert auth_smtpd.verbs == ["EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]


async def test_connect_login_failure_closes(auth_smtpd: RecordingServer) -> None:
    client = client_for(auth_smtpd, username="alice", password="bad")
    with pytest.raises(SMTPAuthenticationError):
        await client.connect()
    assert not client.is_connected
    assert "MAIL" not in auth_smtpd.verbs


async def test_username_without_password_logs_in_with_empty_password(
    smtpd_factory: SmtpdFactory,
) -> None:
    server = smtpd_factory(auth_mechanisms=("PLAIN",), users={"anon": ""})
    async with client_for(server, username="anon") as client:
        assert client.is_connected
    expected = base64.b64encode(b"\0anon\0").decode()
    assert auth_lines(server) == [f"AUTH PLAIN {expected}"]


async def test_oauth_token_generator(auth_smtpd: RecordingServer) -> None:
    calls: list[int] = []

    async def token() -> str:
        calls.append(1)
        return "tok-123"

    errors, _ = await fastsmtp.send(
        RAW,
        sender="a@example.com",
        recipients=["b@example.com"],
        hostname=auth_smtpd.host,
        port=auth_smtpd.port,
        username="alice",
        oauth_token_generator=token,
        timeout=5,
    )
    assert errors == {}
    assert calls == [1]
    assert attempts(auth_smtpd) == [("XOAUTH2", True)]
    assert len(auth_smtpd.messages) == 1


async def test_oauth_token_generator_needs_username(auth_smtpd: RecordingServer) -> None:
    calls: list[int] = []

    async def token() -> str:
        calls.append(1)
        return "tok-123"

    client = client_for(auth_smtpd, oauth_token_generator=token)
    with pytest.raises(SMTPException) as info:
        await client.connect()
    assert info.value.args == ("username is required when using oauth_token_generator",)
    assert calls == []
    assert not client.is_connected
    assert auth_lines(auth_smtpd) == []


async def test_oauth_token_generator_without_server_support(
    smtpd_factory: SmtpdFactory,
) -> None:
    server = smtpd_factory(auth_mechanisms=("PLAIN", "LOGIN"), users=USERS)
    calls: list[int] = []

    async def token() -> str:
        calls.append(1)
        return "tok-123"

    client = client_for(server, username="alice", oauth_token_generator=token)
    with pytest.raises(SMTPException) as info:
        await client.connect()
    assert info.value.args == (
        "oauth_token_generator provided but server does not support XOAUTH2",
    )
    assert calls == []
    assert not client.is_connected
    assert auth_lines(server) == []


async def test_oauth_token_generator_and_password_conflict() -> None:
    async def token() -> str:
        return "x"

    with pytest.raises(ValueError):
        SMTP(hostname="127.0.0.1", username="u", password="p", oauth_token_generator=token)


async def test_login_after_starttls_when_auth_requires_tls(
    smtpd_factory: SmtpdFactory, tls: TLSMaterial, client_tls_context: ssl.SSLContext
) -> None:
    server = smtpd_factory(
        starttls_context=tls.server_context(),
        auth_mechanisms=("PLAIN", "LOGIN"),
        auth_require_tls=True,
        users=USERS,
    )
    await fastsmtp.send(
        RAW,
        sender="a@example.com",
        recipients=["b@example.com"],
        hostname=server.host,
        port=server.port,
        username="alice",
        password="s3cret",
        tls_context=client_tls_context,
        timeout=5,
    )
    (conn,) = server.connections
    assert [(c.verb, c.tls) for c in conn.commands][:4] == [
        ("EHLO", False),
        ("STARTTLS", False),
        ("EHLO", True),
        ("AUTH", True),
    ]
    assert attempts(server) == [("PLAIN", True)]
