"""SCRAM (RFC 5802, RFC 7677) and its helpers: SASLprep, GS2 names, channel binding data.

Pure computation, no I/O: :class:`ScramClient` turns the server's messages into the
client's, and the mechanism in :mod:`fastsmtp._auth` puts them on the wire. The grammar
(RFC 5802 section 7), as this client writes and reads it::

    client-first-message = gs2-header client-first-message-bare
    gs2-header           = gs2-cbind-flag "," [ "a=" saslname ] ","
    gs2-cbind-flag       = ("p=" cb-name) / "n" / "y"
    client-first-message-bare = "n=" saslname "," "r=" c-nonce
    server-first-message = [reserved-mext ","] "r=" nonce "," "s=" salt "," "i=" iteration-count
    client-final-message = "c=" base64(gs2-header [cbind-data]) "," "r=" nonce "," "p=" proof
    server-final-message = ("e=" server-error-value) / ("v=" base64(ServerSignature))

``saslname`` writes "=" as "=3D" and "," as "=2C" (section 5.1). The password goes
through SASLprep (RFC 4013) as a query string, so unassigned code points are allowed
(section 2.2). Channel binding is ``tls-server-end-point`` (RFC 5929 section 4): the hash
of the server's certificate, with the hash of the certificate's signature (SHA-256 where
that is MD5 or SHA-1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import stringprep
import unicodedata

__all__ = (
    "MAX_ITERATIONS",
    "ScramClient",
    "ScramError",
    "gs2_saslname",
    "saslprep",
    "tls_server_end_point",
)

#: The largest iteration count accepted from a server: PBKDF2 runs on the event loop's
#: thread, so a hostile server must not be able to make it run for minutes. RFC 7677
#: asks for at least 4096; deployments use up to a few hundred thousand.
MAX_ITERATIONS = 1_000_000

#: The channel binding type of the -PLUS variants (RFC 5929 section 4).
CHANNEL_BINDING = "tls-server-end-point"


class ScramError(Exception):
    """The exchange cannot go on (the caller turns it into SMTPAuthenticationError).
    Messages never contain the password or anything derived from it."""


# --- SASLprep (RFC 4013) -------------------------------------------------------------------

_PROHIBITED = (
    stringprep.in_table_c12,  # non-ASCII space characters
    stringprep.in_table_c21,  # ASCII control characters
    stringprep.in_table_c22,  # non-ASCII control characters
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogate codes
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties or deprecated
    stringprep.in_table_c9,  # tagging characters
)


def saslprep(text: str, *, allow_unassigned: bool = True) -> str:
    """``text`` prepared with SASLprep (RFC 4013); ValueError if it is prohibited.

    The steps of RFC 3454 section 3-6 with the tables of RFC 4013 section 2, all as of
    Unicode 3.2 (the version stringprep is defined on; the stdlib keeps its data):
    mapping (non-ASCII spaces to SPACE, table B.1 to nothing), NFKC, prohibited output,
    the bidirectional rule, and unassigned code points (allowed for a query string).
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for position, char in enumerate(prepared):
        if any(table(char) for table in _PROHIBITED):
            raise ValueError(f"SASLprep: prohibited character at position {position}")
        if not allow_unassigned and stringprep.in_table_a1(char):
            raise ValueError(f"SASLprep: unassigned code point at position {position}")
    # RFC 3454 section 6: a string with right-to-left characters has no left-to-right
    # ones, and starts and ends with a right-to-left character.
    if any(stringprep.in_table_d1(c) for c in prepared):
        if any(stringprep.in_table_d2(c) for c in prepared):
            raise ValueError("SASLprep: mixes right-to-left and left-to-right characters")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise ValueError("SASLprep: right-to-left text must start and end right-to-left")
    return prepared


def gs2_saslname(name: str | bytes) -> bytes:
    """A name as GS2/SCRAM ``saslname`` (RFC 5801 section 4, RFC 5802 section 5.1)."""
    raw = name.encode("utf-8") if isinstance(name, str) else name
    return raw.replace(b"=", b"=3D").replace(b",", b"=2C")


# --- tls-server-end-point (RFC 5929 section 4.1) --------------------------------------------


def _oid(dotted: str) -> bytes:
    """The DER content octets of an OBJECT IDENTIFIER (X.690 section 8.19)."""
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


#: Signature algorithm -> the hash RFC 5929 section 4.1 says to use: the signature's own
#: hash, except MD5 and SHA-1, which become SHA-256.
_SIGNATURE_HASHES = {
    _oid("1.2.840.113549.1.1.4"): "sha256",  # md5WithRSAEncryption
    _oid("1.2.840.113549.1.1.5"): "sha256",  # sha1WithRSAEncryption
    _oid("1.2.840.113549.1.1.14"): "sha224",  # sha224WithRSAEncryption
    _oid("1.2.840.113549.1.1.11"): "sha256",  # sha256WithRSAEncryption
    _oid("1.2.840.113549.1.1.12"): "sha384",  # sha384WithRSAEncryption
    _oid("1.2.840.113549.1.1.13"): "sha512",  # sha512WithRSAEncryption
    _oid("1.2.840.10045.4.1"): "sha256",  # ecdsa-with-SHA1
    _oid("1.2.840.10045.4.3.1"): "sha224",  # ecdsa-with-SHA224
    _oid("1.2.840.10045.4.3.2"): "sha256",  # ecdsa-with-SHA256
    _oid("1.2.840.10045.4.3.3"): "sha384",  # ecdsa-with-SHA384
    _oid("1.2.840.10045.4.3.4"): "sha512",  # ecdsa-with-SHA512
    _oid("1.2.840.10040.4.3"): "sha256",  # dsa-with-sha1
    _oid("2.16.840.1.101.3.4.3.2"): "sha256",  # dsa-with-sha256
}


def _der_item(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER item at ``offset``."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + length > len(data):
        raise ValueError("truncated DER")
    return tag, start, start + length


def tls_server_end_point(certificate: bytes) -> bytes | None:
    """The ``tls-server-end-point`` channel binding data of a DER certificate, or None
    when RFC 5929 leaves it undefined (a signature with no single hash: RSASSA-PSS,
    Ed25519, ...) or the certificate cannot be read."""
    # Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    # (RFC 5280 section 4.1); AlgorithmIdentifier ::= SEQUENCE { algorithm OID, ... }.
    try:
        tag, start, _ = _der_item(certificate, 0)
        if tag != 0x30:
            return None
        _, _, tbs_end = _der_item(certificate, start)
        tag, algorithm_start, _ = _der_item(certificate, tbs_end)
        if tag != 0x30:
            return None
        tag, oid_start, oid_end = _der_item(certificate, algorithm_start)
    except ValueError:
        return None
    hash_name = _SIGNATURE_HASHES.get(certificate[oid_start:oid_end]) if tag == 0x06 else None
    if hash_name is None:
        return None
    return hashlib.new(hash_name, certificate).digest()


# --- the client --------------------------------------------------------------------------


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data)


class ScramClient:
    """One SCRAM exchange, client side (RFC 5802 section 3 and 5).

    ``hash_name`` is ``"sha1"`` or ``"sha256"``. ``channel_binding`` is the
    ``tls-server-end-point`` data for a -PLUS exchange, else None; ``binding_supported``
    says the client could bind but the server did not offer -PLUS (gs2 flag "y", so a
    server that does support it detects a downgrade; RFC 5802 section 6). ``nonce`` is
    for the RFC test vectors only: by default 24 random bytes, base64.
    """

    def __init__(
        self,
        hash_name: str,
        username: str | bytes,
        password: str | bytes,
        *,
        channel_binding: bytes | None = None,
        binding_supported: bool = False,
        nonce: str | None = None,
    ) -> None:
        self._hash = hash_name
        self._password = _prepare(password, "password")
        user = _prepare(username, "username")
        self._nonce = (nonce or base64.b64encode(secrets.token_bytes(24)).decode()).encode()
        if channel_binding is not None:
            self.gs2_header = b"p=" + CHANNEL_BINDING.encode() + b",,"
        else:
            self.gs2_header = b"y,," if binding_supported else b"n,,"
        self._channel_binding = channel_binding or b""
        self._first_bare = b"n=" + gs2_saslname(user) + b",r=" + self._nonce
        self._server_signature: bytes | None = None
        #: True once the server proved it knows the password (a matching v=).
        self.verified = False

    def first(self) -> bytes:
        """client-first-message."""
        return self.gs2_header + self._first_bare

    def final(self, server_first: bytes) -> bytes:
        """client-final-message for ``server_first``; ScramError if it is not valid."""
        fields = _attributes(server_first)
        if fields and fields[0][0] == b"m":
            raise ScramError("server requires an unsupported SCRAM extension (m=)")
        names = [name for name, _ in fields[:3]]
        if names != [b"r", b"s", b"i"]:
            raise ScramError("malformed SCRAM server-first-message")
        nonce, salt_b64, iterations_text = (value for _, value in fields[:3])
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise ScramError("SCRAM server nonce does not extend the client nonce")
        if any(b < 0x21 or b > 0x7E or b == 0x2C for b in nonce):
            raise ScramError("SCRAM server nonce has characters outside printable ASCII")
        try:
            salt = base64.b64decode(salt_b64, validate=True)
        except (binascii.Error, ValueError):
            raise ScramError("SCRAM salt is not valid base64") from None
        if not iterations_text.isdigit() or not 0 < int(iterations_text) <= MAX_ITERATIONS:
            raise ScramError(
                f"SCRAM iteration count must be 1 to {MAX_ITERATIONS}: {iterations_text!r}"
            )
        salted = hashlib.pbkdf2_hmac(self._hash, self._password, salt, int(iterations_text))
        final_bare = b"c=" + _b64(self.gs2_header + self._channel_binding) + b",r=" + nonce
        auth_message = self._first_bare + b"," + server_first + b"," + final_bare
        client_key = hmac.digest(salted, b"Client Key", self._hash)
        stored_key = hashlib.new(self._hash, client_key).digest()
        signature = hmac.digest(stored_key, auth_message, self._hash)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", self._hash)
        self._server_signature = hmac.digest(server_key, auth_message, self._hash)
        return final_bare + b",p=" + _b64(proof)

    def verify(self, server_final: bytes) -> None:
        """Check server-final-message; ScramError unless it proves the server knows the
        password (section 3: the client authenticates the server)."""
        if self._server_signature is None:
            raise ScramError("SCRAM server-final-message before the client-final-message")
        fields = _attributes(server_final)
        if fields and fields[0][0] == b"e":
            error = fields[0][1].decode("ascii", "replace")
            raise ScramError(f"SCRAM server error: {error}")
        if not fields or fields[0][0] != b"v":
            raise ScramError("malformed SCRAM server-final-message")
        try:
            signature = base64.b64decode(fields[0][1], validate=True)
        except (binascii.Error, ValueError):
            raise ScramError("SCRAM server signature is not valid base64") from None
        if not hmac.compare_digest(signature, self._server_signature):
            raise ScramError(
                "SCRAM server signature does not match: the server did not prove it knows "
                "the password"
            )
        self.verified = True


def _prepare(value: str | bytes, what: str) -> bytes:
    """A str through SASLprep, as UTF-8; bytes are taken as already prepared."""
    if isinstance(value, bytes):
        return value
    try:
        return saslprep(value).encode("utf-8")
    except ValueError as exc:
        # Name the rule, never the value.
        raise ScramError(f"the {what} cannot be used with SCRAM: {exc}") from None


def _attributes(message: bytes) -> list[tuple[bytes, bytes]]:
    """``a=value`` pairs separated by commas (RFC 5802 section 7); ScramError if not."""
    pairs = []
    for part in message.split(b","):
        name, sep, value = part.partition(b"=")
        if not sep or len(name) != 1 or not name.isalpha():
            raise ScramError("malformed SCRAM message from the server")
        pairs.append((name, value))
    return pairs
