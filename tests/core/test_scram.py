"""SCRAM (RFC 5802, RFC 7677), SASLprep (RFC 4013), tls-server-end-point (RFC 5929) and
OAUTHBEARER (RFC 7628) as pure logic: the RFCs' own examples, bytes in and bytes out.

The mechanism tests read the server's replies with each core's ``ReplyParser`` (the
``impl`` fixture), as the client does on the wire.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ssl
from types import ModuleType
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from fastsmtp._auth import CANCEL, OAuthBearer, Scram, XOAuth2Token, scram, token_rejected
from fastsmtp._scram import (
    MAX_ITERATIONS,
    ScramClient,
    ScramError,
    gs2_saslname,
    saslprep,
    tls_server_end_point,
)
from fastsmtp.errors import SMTPAuthenticationError
from fastsmtp.response import SMTPResponse

# RFC 5802 section 5 (SCRAM-SHA-1) and RFC 7677 section 3 (SCRAM-SHA-256): user "user",
# password "pencil".
VECTORS = {
    "sha1": (
        "fyko+d2lbbFgONRv9qkxdawL",
        b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    ),
    "sha256": (
        "rOprNGfwEbeRWgbNEkqO",
        b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    ),
}


def replies(impl: ModuleType, wire: bytes) -> list[SMTPResponse]:
    parser = impl.ReplyParser()
    parser.feed(wire)
    out = []
    while isinstance(reply := parser.next_reply(), SMTPResponse):
        out.append(reply)
    return out


def challenge(impl: ModuleType, data: bytes) -> SMTPResponse:
    [reply] = replies(impl, b"334 " + base64.b64encode(data) + b"\r\n")
    return reply


@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
def test_rfc_vectors(hash_name: str) -> None:
    nonce, first, server_first, final, server_final = VECTORS[hash_name]
    client = ScramClient(hash_name, "user", "pencil", nonce=nonce)
    assert client.first() == first
    assert client.final(server_first) == final
    assert not client.verified
    client.verify(server_final)
    assert client.verified


@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
def test_rfc_vectors_through_the_mechanism(impl: ModuleType, hash_name: str) -> None:
    nonce, first, server_first, final, server_final = VECTORS[hash_name]
    name = "scram-sha-256" if hash_name == "sha256" else "scram-sha-1"
    mechanism = Scram(ScramClient(hash_name, b"user", b"pencil", nonce=nonce), name)
    assert mechanism.start() == f"AUTH {name.upper()} ".encode() + base64.b64encode(first)
    assert mechanism.answer(challenge(impl, server_first)) == base64.b64encode(final)
    assert mechanism.answer(challenge(impl, server_final)) == b""
    assert mechanism.verified and not mechanism.unproven
    assert mechanism.error is None


def test_wrong_server_signature_cancels(impl: ModuleType) -> None:
    nonce, _, server_first, _, _ = VECTORS["sha256"]
    mechanism = Scram(ScramClient("sha256", "user", "pencil", nonce=nonce), "scram-sha-256")
    mechanism.answer(challenge(impl, server_first))
    forged = b"v=" + base64.b64encode(bytes(32))
    assert mechanism.answer(challenge(impl, forged)) is CANCEL
    assert isinstance(mechanism.error, SMTPAuthenticationError)
    assert "does not match" in mechanism.error.message
    assert mechanism.unproven and not mechanism.verified


def test_wrong_password_gives_a_different_proof() -> None:
    nonce, _, server_first, final, server_final = VECTORS["sha1"]
    client = ScramClient("sha1", "user", "pencil2", nonce=nonce)
    assert client.final(server_first) != final
    with pytest.raises(ScramError, match="does not match"):
        client.verify(server_final)


def test_server_error_is_answered_with_an_empty_line(impl: ModuleType) -> None:
    nonce, _, server_first, _, _ = VECTORS["sha1"]
    mechanism = Scram(ScramClient("sha1", "user", "pencil", nonce=nonce), "scram-sha-1")
    mechanism.answer(challenge(impl, server_first))
    assert mechanism.answer(challenge(impl, b"e=invalid-proof")) == b""
    assert not mechanism.verified and not mechanism.unproven


@pytest.mark.parametrize(
    ("server_first", "message"),
    [
        (b"r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096", "does not extend"),
        (b"r=someone-elses-nonce,s=QSXCR+Q6sek8bf92,i=4096", "does not extend"),
        (b"r=fyko+d2lbbFgONRv9qkxdawLX,s=QSXCR+Q6sek8bf92,i=0", "iteration count"),
        (
            b"r=fyko+d2lbbFgONRv9qkxdawLX,s=QSXCR+Q6sek8bf92,i=" + str(MAX_ITERATIONS + 1).encode(),
            "iteration count",
        ),
        (b"r=fyko+d2lbbFgONRv9qkxdawLX,s=QSXCR+Q6sek8bf92,i=-1", "iteration count"),
        (b"r=fyko+d2lbbFgONRv9qkxdawLX,s=not base64!,i=4096", "salt"),
        (b"m=ext,r=fyko+d2lbbFgONRv9qkxdawLX,s=QSXCR+Q6sek8bf92,i=4096", "extension"),
        (b"s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawLX,i=4096", "malformed"),
        (b"garbage", "malformed"),
    ],
)
def test_bad_server_first_message(impl: ModuleType, server_first: bytes, message: str) -> None:
    mechanism = Scram(
        ScramClient("sha1", "user", "pencil", nonce="fyko+d2lbbFgONRv9qkxdawL"), "scram-sha-1"
    )
    assert mechanism.answer(challenge(impl, server_first)) is CANCEL
    assert mechanism.error is not None and message in mechanism.error.message
    assert not mechanism.unproven  # nothing was proved wrong about the server yet


def test_challenge_not_base64_cancels(impl: ModuleType) -> None:
    mechanism = Scram(ScramClient("sha1", "user", "pencil"), "scram-sha-1")
    [reply] = replies(impl, b"334 ???\r\n")
    assert mechanism.answer(reply) is CANCEL


def test_random_nonce() -> None:
    firsts = {ScramClient("sha256", "u", "p").first() for _ in range(5)}
    assert len(firsts) == 5
    nonce = next(iter(firsts)).split(b",r=")[1]
    assert len(base64.b64decode(nonce)) == 24


def test_username_escaping_and_flags() -> None:
    assert gs2_saslname("a,b=c") == b"a=2Cb=3Dc"
    client = ScramClient("sha256", "a,b=c", "p", nonce="N")
    assert client.first() == b"n,,n=a=2Cb=3Dc,r=N"
    assert ScramClient("sha256", "u", "p", nonce="N", binding_supported=True).first() == (
        b"y,,n=u,r=N"
    )
    bound = ScramClient("sha256", "u", "p", nonce="N", channel_binding=b"\x01\x02")
    assert bound.first() == b"p=tls-server-end-point,,n=u,r=N"
    final = bound.final(b"r=NX,s=" + base64.b64encode(b"salt") + b",i=1")
    assert final.startswith(
        b"c=" + base64.b64encode(b"p=tls-server-end-point,,\x01\x02") + b",r=NX,p="
    )


def test_scram_builder_chooses_the_variant() -> None:
    assert scram("sha256", "u", "p", b"cb", True).name == "scram-sha-256-plus"
    assert scram("sha256", "u", "p", b"cb", False).name == "scram-sha-256"
    assert scram("sha1", "u", "p", None, True).name == "scram-sha-1"
    with pytest.raises(SMTPAuthenticationError) as info:
        scram("sha1", "u", "pass\u0000SECRET", None, False)
    assert info.value.code == -1 and "SECRET" not in info.value.message


# --- SASLprep (RFC 4013 section 3's examples) ---------------------------------------------


@pytest.mark.parametrize(
    ("given", "prepared"),
    [
        ("I\u00adX", "IX"),  # SOFT HYPHEN mapped to nothing
        ("user", "user"),
        ("USER", "USER"),  # case preserved
        ("\u00aa", "a"),  # NFKC
        ("\u2168", "IX"),  # NFKC
        ("a\u00a0b", "a b"),  # non-ASCII space mapped to SPACE
        ("\u0627\u0628", "\u0627\u0628"),  # right-to-left only
        ("p\u00e4ssword", "p\u00e4ssword"),
        ("", ""),
    ],
)
def test_saslprep(given: str, prepared: str) -> None:
    assert saslprep(given) == prepared


@pytest.mark.parametrize(
    "given",
    [
        "\u0007",  # RFC 4013 section 3: prohibited (control)
        "\u0627\u0031",  # RFC 4013 section 3: bidi check (RandALCat not at the end)
        "a\u0627",  # RandALCat with LCat
        "a\ue000",  # private use
        "a\ufffe",  # non-character
    ],
)
def test_saslprep_prohibited(given: str) -> None:
    with pytest.raises(ValueError, match="SASLprep"):
        saslprep(given)


def test_saslprep_unassigned() -> None:
    unassigned = "\u0221"  # unassigned in Unicode 3.2
    assert saslprep(unassigned) == unassigned  # a query string (RFC 5802 section 2.2)
    with pytest.raises(ValueError, match="unassigned"):
        saslprep(unassigned, allow_unassigned=False)


def test_password_is_prepared_before_hashing() -> None:
    nonce, _, server_first, final, _ = VECTORS["sha1"]
    # "pen\u00adcil" maps to "pencil": the RFC's proof.
    assert ScramClient("sha1", "user", "pen\u00adcil", nonce=nonce).final(server_first) == final
    # bytes are taken as already prepared.
    assert ScramClient("sha1", b"user", b"pen\xc2\xadcil", nonce=nonce).final(server_first) != (
        final
    )


# --- tls-server-end-point (RFC 5929 section 4.1) -------------------------------------------


@pytest.mark.parametrize("key_type", [trustme.KeyType.ECDSA, trustme.KeyType.RSA])
def test_end_point_binding_matches_cryptography(key_type: trustme.KeyType) -> None:
    ca = trustme.CA(key_type=key_type)
    leaf = ca.issue_cert("localhost", key_type=key_type)
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    certificate = x509.load_der_x509_certificate(der)
    algorithm = certificate.signature_hash_algorithm
    assert algorithm is not None
    assert tls_server_end_point(der) == hashlib.new(algorithm.name, der).digest()
    assert isinstance(algorithm, hashes.SHA256)


def _self_signed(key: Any, algorithm: hashes.HashAlgorithm | None) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "binding.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, algorithm)
        .public_bytes(Encoding.DER)
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [(hashes.SHA256(), "sha256"), (hashes.SHA384(), "sha384"), (hashes.SHA512(), "sha512")],
)
def test_end_point_binding_hash_choice(algorithm: hashes.HashAlgorithm, expected: str) -> None:
    der = _self_signed(ec.generate_private_key(ec.SECP256R1()), algorithm)
    assert tls_server_end_point(der) == hashlib.new(expected, der).digest()


#: DER of the OIDs sha256WithRSAEncryption, sha1WithRSAEncryption, md5WithRSAEncryption
#: (RFC 8017 appendix C): same length, so one can stand in for another.
SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
SHA1_RSA = bytes.fromhex("06092a864886f70d010105")
MD5_RSA = bytes.fromhex("06092a864886f70d010104")


@pytest.mark.parametrize("weak", [SHA1_RSA, MD5_RSA])
def test_end_point_binding_md5_and_sha1_become_sha256(weak: bytes) -> None:
    """RFC 5929 section 4.1. cryptography no longer signs with SHA-1 or MD5, so the
    algorithm identifiers of a SHA-256 certificate are rewritten (only they are read)."""
    der = _self_signed(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), hashes.SHA256()
    )
    assert der.count(SHA256_RSA) == 2  # in tbsCertificate and signatureAlgorithm
    weakened = der.replace(SHA256_RSA, weak)
    assert x509.load_der_x509_certificate(weakened).signature_algorithm_oid.dotted_string in (
        "1.2.840.113549.1.1.5",
        "1.2.840.113549.1.1.4",
    )
    assert tls_server_end_point(weakened) == hashlib.sha256(weakened).digest()
    assert tls_server_end_point(der) == hashlib.sha256(der).digest()


def test_end_point_binding_undefined_or_unreadable() -> None:
    der = _self_signed(ed25519.Ed25519PrivateKey.generate(), None)
    assert tls_server_end_point(der) is None  # Ed25519 has no single hash: undefined
    for junk in (b"", b"\x30", b"\x30\x82\xff\xff", b"\x02\x01\x00", der[:40]):
        assert tls_server_end_point(junk) is None


# --- OAUTHBEARER (RFC 7628) ---------------------------------------------------------------


def test_oauthbearer_rfc7628_example() -> None:
    # RFC 7628 section 4.1: the initial client response.
    mechanism = OAuthBearer(
        "user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", "server.example.com", 143
    )
    line = mechanism.start()
    assert line.startswith(b"AUTH OAUTHBEARER ")
    assert base64.b64decode(line.split()[2]) == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )
    without = OAuthBearer("u", "t")
    assert base64.b64decode(without.start().split()[2]) == b"n,a=u,\x01auth=Bearer t\x01\x01"


def test_oauthbearer_error_flow(impl: ModuleType) -> None:
    # RFC 7628 section 4.3: the error challenge, answered with %x01 (section 3.2.3).
    mechanism = OAuthBearer("user@example.com", "token", "server.example.com", 587)
    error = b'{"status":"invalid_token","scope":"example_scope"}'
    assert mechanism.answer(challenge(impl, error)) == base64.b64encode(b"\x01")
    assert mechanism.error_status == "invalid_token"
    assert mechanism.answer(challenge(impl, error)) is None  # only once
    [final] = replies(impl, b"535 5.7.8 Authentication credentials invalid\r\n")
    assert token_rejected(mechanism, SMTPAuthenticationError(final.code, final.message))


def test_token_rejected_rule() -> None:
    mechanism = OAuthBearer("u", "t")
    assert token_rejected(mechanism, SMTPAuthenticationError(535, "no"))
    assert not token_rejected(mechanism, SMTPAuthenticationError(454, "later"))
    mechanism.error_status = "401"
    assert token_rejected(mechanism, SMTPAuthenticationError(501, "x"))
    mechanism.error_status = "insufficient_scope"
    assert not token_rejected(mechanism, SMTPAuthenticationError(454, "x"))


def test_xoauth2_error_challenge_status(impl: ModuleType) -> None:
    # Google's XOAUTH2 error challenge, answered with an empty line.
    mechanism = XOAuth2Token(
        "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
    )
    error = b'{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}'
    assert mechanism.answer(challenge(impl, error)) == b""
    assert mechanism.error_status == "401"
    assert token_rejected(mechanism, SMTPAuthenticationError(454, "later"))
    other = XOAuth2Token("u", "t")
    [not_json] = replies(impl, b"334 bm90IGpzb24=\r\n")
    assert other.answer(not_json) == b""
    assert other.error_status is None
    assert not token_rejected(other, SMTPAuthenticationError(454, "later"))
