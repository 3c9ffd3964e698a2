"""SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802, RFC 7677) and the -PLUS variants end to end,
against the server side of SCRAM written below as an aiosmtpd handler (Dovecot 2.3, the
real server of tests/interop/test_scram.py, has no -PLUS). The handler computes the
``tls-server-end-point`` binding (RFC 5929 section 4.1) of its own certificate with the
``cryptography`` package, independently of fastsmtp's DER reading.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import ssl
from typing import Any

import pytest
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword
from aiosmtpd.smtp import SMTP as ServerSMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from fastsmtp import SMTP, SMTPAuthenticationError
from tests._servers import RecordingHandler, RecordingServer, ServerConfig
from tests.client.conftest import TLSMaterial

RAW = b"Subject: scram\r\n\r\nbody\r\n"
USERS = {"alice": "s3cret", "jörg": "pässword"}
SCRAM = ("SCRAM-SHA-1", "SCRAM-SHA-256")
PLUS = ("SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS")
OTHERS = ("CRAM-MD5", "PLAIN", "LOGIN")


def end_point_binding(certificate_der: bytes) -> bytes:
    """RFC 5929 section 4.1, computed with cryptography."""
    certificate = x509.load_der_x509_certificate(certificate_der)
    algorithm = certificate.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(certificate_der)
    return digest.finalize()


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


class ScramHandler(RecordingHandler):  # type: ignore[misc,valid-type]
    """The server side of SCRAM (RFC 5802 section 5) with tls-server-end-point binding.

    ``mode``: "ok"; "bad_v" (a server signature that is wrong); "no_v" (235 without a
    server-final-message); "e" (a refused proof is answered with ``e=invalid-proof``).
    """

    mode = "ok"
    iterations = 4096

    def __init__(self, config: ServerConfig, recorder: Any, certificate: bytes = b"") -> None:
        super().__init__(config, recorder)
        self.binding = end_point_binding(certificate) if certificate else None
        #: One dict per exchange: mechanism, gs2 header, whether c= and the proof matched,
        #: and the client's answer to the server-final-message.
        self.exchanges: list[dict[str, Any]] = []

    async def auth_SCRAM__SHA__1(self, server: ServerSMTP, args: list[str]) -> AuthResult:
        return await self._scram(server, args, "SCRAM-SHA-1")

    async def auth_SCRAM__SHA__256(self, server: ServerSMTP, args: list[str]) -> AuthResult:
        return await self._scram(server, args, "SCRAM-SHA-256")

    async def auth_SCRAM__SHA__1__PLUS(self, server: ServerSMTP, args: list[str]) -> AuthResult:
        return await self._scram(server, args, "SCRAM-SHA-1-PLUS")

    async def auth_SCRAM__SHA__256__PLUS(self, server: ServerSMTP, args: list[str]) -> AuthResult:
        return await self._scram(server, args, "SCRAM-SHA-256-PLUS")

    async def _scram(self, server: ServerSMTP, args: list[str], mechanism: str) -> AuthResult:
        hash_name = "sha256" if "256" in mechanism else "sha1"
        plus = mechanism.endswith("-PLUS")
        record: dict[str, Any] = {"mechanism": mechanism}
        self.exchanges.append(record)
        if len(args) != 2:
            await server.push("501 5.5.2 SCRAM needs an initial response here")
            return AuthResult(success=False, handled=True)
        first = base64.b64decode(args[1], validate=True)
        flag, authzid, bare = first.split(b",", 2)
        gs2 = flag + b"," + authzid + b","
        record["gs2"] = gs2
        attrs = dict(kv.split(b"=", 1) for kv in bare.split(b","))
        user = attrs[b"n"].replace(b"=2C", b",").replace(b"=3D", b"=").decode()
        client_nonce = attrs[b"r"]
        server_nonce = client_nonce + secrets.token_urlsafe(12).encode()
        salt = hashlib.sha256(user.encode()).digest()[:16]
        server_first = (
            b"r=" + server_nonce + b",s=" + _b64(salt) + b",i=" + str(self.iterations).encode()
        )
        final = await server.challenge_auth(server_first)
        if final is MISSING:
            record["cancelled_at"] = "server-first"
            return AuthResult(success=False, handled=True)
        assert isinstance(final, bytes)
        final_bare, _, proof_b64 = final.rpartition(b",p=")
        final_attrs = dict(kv.split(b"=", 1) for kv in final_bare.split(b","))
        binding = self.binding if plus and self.binding is not None else b""
        record["cbind_ok"] = final_attrs[b"c"] == _b64(gs2 + binding)
        # RFC 5802 section 6: "p=" only with -PLUS; "y" to a server offering -PLUS is a
        # downgrade (this server offers it whenever it has a certificate and TLS is on).
        flag_ok = (flag == b"p=tls-server-end-point") if plus else (flag in (b"n", b"y"))
        password = self.config.users.get(user)
        proof_ok = False
        salted = b""
        auth_message = bare + b"," + server_first + b"," + final_bare
        if password is not None:
            salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, self.iterations)
            client_key = hmac.digest(salted, b"Client Key", hash_name)
            stored_key = hashlib.new(hash_name, client_key).digest()
            signature = hmac.digest(stored_key, auth_message, hash_name)
            proof = base64.b64decode(proof_b64, validate=True)
            recovered = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
            proof_ok = hashlib.new(hash_name, recovered).digest() == stored_key
        record["proof_ok"] = proof_ok
        ok = proof_ok and flag_ok and record["cbind_ok"] and final_attrs[b"r"] == server_nonce
        self._record(mechanism, user.encode(), ok)
        if not ok:
            if self.mode == "e":
                record["answer"] = await server.challenge_auth(b"e=invalid-proof")
            return AuthResult(success=False, handled=False)
        if self.mode == "no_v":
            return AuthResult(success=True, handled=False, auth_data=LoginPassword(b"", b""))
        server_key = hmac.digest(salted, b"Server Key", hash_name)
        server_signature = hmac.digest(server_key, auth_message, hash_name)
        if self.mode == "bad_v":
            server_signature = bytes(len(server_signature))
        answer = await server.challenge_auth(b"v=" + _b64(server_signature))
        record["answer"] = answer
        if answer is MISSING:
            return AuthResult(success=False, handled=True)  # "*": aiosmtpd sent 501
        return AuthResult(success=True, handled=False, auth_data=LoginPassword(b"", b""))


@pytest.fixture
def scram_server(tls: TLSMaterial) -> Any:
    servers: list[RecordingServer] = []
    der = ssl.PEM_cert_to_DER_cert(tls.server_cert.cert_chain_pems[0].bytes().decode())

    def start(
        mechanisms: tuple[str, ...] = SCRAM + PLUS + OTHERS, **config: Any
    ) -> RecordingServer:
        config.setdefault("users", USERS)
        server = RecordingServer(
            ServerConfig(auth_mechanisms=mechanisms, **config),
            handler=lambda cfg, rec: ScramHandler(cfg, rec, der),
        )
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


def auth_verbs(server: RecordingServer) -> list[str]:
    return [c.line.split()[1] for c in server.commands if c.verb == "AUTH"]


# --- login() order ------------------------------------------------------------------------


async def test_login_prefers_scram_sha_256(scram_server: Any) -> None:
    """Plaintext loopback: -PLUS is offered but there is no channel to bind, so the plain
    variant with gs2 flag "n" (RFC 5802 section 6)."""
    server = scram_server()
    async with SMTP(hostname=server.host, port=server.port, timeout=5) as client:
        response = await client.login("alice", "s3cret")
        assert response.code == 235
        assert client.supported_auth_methods == [
            "scram-sha-256",
            "scram-sha-1",
            "cram-md5",
            "plain",
            "login",
        ]
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert attempts(server) == [("SCRAM-SHA-256", True)]
    [exchange] = server.handler.exchanges
    assert exchange["gs2"] == b"n,,"
    assert exchange["answer"] == b""  # the empty line after the server-final-message
    assert len(server.messages) == 1


@pytest.mark.parametrize("user", ["jörg", "jörg".encode()])
async def test_auth_scram_sha_1_non_ascii(scram_server: Any, user: str | bytes) -> None:
    server = scram_server()
    async with SMTP(hostname=server.host, port=server.port, timeout=5) as client:
        response = await client.auth_scramsha1(user, "pässword")
        assert response.code == 235
    assert attempts(server) == [("SCRAM-SHA-1", True)]


async def test_wrong_password_falls_through_in_order(
    scram_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = scram_server(mechanisms=SCRAM + OTHERS)
    password = "wrong-SECRET-pw"
    async with SMTP(hostname=server.host, port=server.port, timeout=5) as client:
        with (
            caplog.at_level(logging.DEBUG, logger="fastsmtp"),
            pytest.raises(SMTPAuthenticationError) as info,
        ):
            await client.login("alice", password)
        assert (await client.noop()).code == 250
    assert info.value.code == 535
    assert auth_verbs(server) == ["SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"]
    assert [ok for _, ok in attempts(server)] == [False] * 5
    assert "[redacted]" in caplog.text
    for secret in (password, base64.b64encode(b"\0alice\0" + password.encode()).decode()):
        assert secret not in caplog.text
        assert secret not in str(info.value) and secret not in repr(info.value)


async def test_server_error_attribute_is_answered(scram_server: Any) -> None:
    """A server-final-message ``e=...`` (RFC 5802 section 7) is answered with an empty
    line; the server's final reply is raised."""
    server = scram_server()
    server.handler.mode = "e"
    async with SMTP(hostname=server.host, port=server.port, timeout=5) as client:
        await client.ehlo()
        with pytest.raises(SMTPAuthenticationError) as info:
            await client.auth_scramsha256("alice", "nope")
        assert info.value.code == 535
        assert (await client.noop()).code == 250
    assert server.handler.exchanges[0]["answer"] == b""


# --- channel binding ----------------------------------------------------------------------


@pytest.mark.parametrize("implicit", [False, True])
async def test_login_uses_plus_over_tls(
    scram_server: Any, tls: TLSMaterial, implicit: bool
) -> None:
    """Over TLS with -PLUS on offer: SCRAM-SHA-256-PLUS bound to the server certificate."""
    if implicit:
        server = scram_server(implicit_tls_context=tls.server_context())
        options: dict[str, Any] = {"use_tls": True}
    else:
        server = scram_server(starttls_context=tls.server_context(), auth_require_tls=True)
        options = {"start_tls": True}
    async with SMTP(
        hostname=server.host,
        port=server.port,
        username="alice",
        password="s3cret",
        tls_context=tls.client_context(),
        timeout=5,
        **options,
    ) as client:
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert attempts(server) == [("SCRAM-SHA-256-PLUS", True)]
    [exchange] = server.handler.exchanges
    assert exchange["gs2"] == b"p=tls-server-end-point,,"
    assert exchange["cbind_ok"] is True
    assert len(server.messages) == 1


async def test_auth_scram_sha_1_plus(scram_server: Any, tls: TLSMaterial) -> None:
    server = scram_server(starttls_context=tls.server_context(), auth_require_tls=True)
    async with SMTP(
        hostname=server.host,
        port=server.port,
        start_tls=True,
        tls_context=tls.client_context(),
        timeout=5,
    ) as client:
        response = await client.auth_scramsha1("alice", "s3cret")
        assert response.code == 235
    assert attempts(server) == [("SCRAM-SHA-1-PLUS", True)]
    assert server.handler.exchanges[0]["cbind_ok"] is True


async def test_tls_without_plus_sends_flag_y(scram_server: Any, tls: TLSMaterial) -> None:
    """TLS but no -PLUS on offer: the client could bind, says so with "y"."""
    server = scram_server(
        mechanisms=SCRAM, starttls_context=tls.server_context(), auth_require_tls=True
    )
    async with SMTP(
        hostname=server.host,
        port=server.port,
        username="alice",
        password="s3cret",
        start_tls=True,
        tls_context=tls.client_context(),
        timeout=5,
    ):
        pass
    assert attempts(server) == [("SCRAM-SHA-256", True)]
    assert server.handler.exchanges[0]["gs2"] == b"y,,"


# --- a server that cannot prove itself ----------------------------------------------------


async def test_bad_server_signature(scram_server: Any) -> None:
    """A wrong v=: the client cancels with "*" (RFC 4954 section 4), raises, and login()
    does not go on to hand the password to CRAM-MD5/PLAIN/LOGIN on this connection."""
    server = scram_server()
    server.handler.mode = "bad_v"
    async with SMTP(hostname=server.host, port=server.port, timeout=5) as client:
        with pytest.raises(SMTPAuthenticationError) as info:
            await client.login("alice", "s3cret")
        assert "server signature does not match" in info.value.message
        assert (await client.noop()).code == 250
        with pytest.raises(SMTPAuthenticationError):
            await client.auth_plain("alice", "s3cret")  # refused before anything is written
    assert auth_verbs(server) == ["SCRAM-SHA-256"]
    assert server.handler.exchanges[0]["answer"] is MISSING
    raw = server.connections[0].raw_lines
    assert raw[raw.index(b"NOOP") - 1] == b"*"
    assert "s3cret" not in str(info.value)


async def test_success_without_server_signature(scram_server: Any) -> None:
    server = scram_server()
    server.handler.mode = "no_v"
    client = SMTP(
        hostname=server.host, port=server.port, username="alice", password="s3cret", timeout=5
    )
    with pytest.raises(SMTPAuthenticationError) as info:
        await client.connect()
    assert info.value.code == 235
    assert "without proving" in info.value.message
    assert not client.is_connected
    assert auth_verbs(server) == ["SCRAM-SHA-256"]
    assert "MAIL" not in server.verbs


async def test_hostile_iteration_count_is_refused(scram_server: Any) -> None:
    server = scram_server()
    server.handler.iterations = 10**9
    async with SMTP(hostname=server.host, port=server.port, timeout=5) as client:
        await client.ehlo()
        with pytest.raises(SMTPAuthenticationError) as info:
            await client.auth_scramsha256("alice", "s3cret")
        assert "iteration count" in info.value.message
        assert (await client.noop()).code == 250
    assert server.handler.exchanges[0]["cancelled_at"] == "server-first"


async def test_saslprep_refusal_moves_on(scram_server: Any) -> None:
    """A password SASLprep prohibits (a control character) cannot be used with SCRAM:
    refused before AUTH is written; login() moves on to the next mechanism."""
    server = scram_server(mechanisms=("SCRAM-SHA-256", "PLAIN"), users={"alice": "bell\x07"})
    async with SMTP(hostname=server.host, port=server.port, timeout=5) as client:
        await client.ehlo()
        with pytest.raises(SMTPAuthenticationError) as info:
            await client.auth_scramsha256("alice", "bell\x07")
        assert info.value.code == -1
        assert "SASLprep" in info.value.message and "bell" not in info.value.message
        assert (await client.login("alice", "bell\x07")).code == 235
    assert auth_verbs(server) == ["PLAIN"]
