"""The base64 AUTH encoders: known vectors, str and bytes, aiosmtplib equality."""

from __future__ import annotations

import base64
from types import ModuleType

import aiosmtplib.auth
import pytest

from fastsmtp.errors import SMTPAuthenticationError, SMTPAuthenticationRefusedLocally

RFC2195_CHALLENGE = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
RFC2195_RESPONSE = b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"


def test_plain_rfc4616_example(impl: ModuleType) -> None:
    encoded = impl.auth_plain_encode("tim", "tanstaaftanstaaf")
    assert encoded == b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
    assert base64.b64decode(encoded) == b"\x00tim\x00tanstaaftanstaaf"


def test_login(impl: ModuleType) -> None:
    assert impl.auth_login_encode("tim", "tanstaaftanstaaf") == (
        b"dGlt",
        b"dGFuc3RhYWZ0YW5zdGFhZg==",
    )


def test_crammd5_rfc2195_example(impl: ModuleType) -> None:
    assert impl.auth_crammd5_verify("tim", "tanstaaftanstaaf", RFC2195_CHALLENGE) == (
        RFC2195_RESPONSE
    )
    assert impl.auth_crammd5_verify(b"tim", b"tanstaaftanstaaf", RFC2195_CHALLENGE.encode()) == (
        RFC2195_RESPONSE
    )


def test_xoauth2_google_example(impl: ModuleType) -> None:
    # The example of https://developers.google.com/gmail/imap/xoauth2-protocol
    assert impl.auth_xoauth2_encode(
        "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
    ) == (
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNr"
        b"QmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )


def test_results_have_no_newline(impl: ModuleType) -> None:
    long = "u" * 200
    for result in (
        impl.auth_plain_encode(long, long),
        *impl.auth_login_encode(long, long),
        impl.auth_crammd5_verify(long, long, RFC2195_CHALLENGE),
        impl.auth_xoauth2_encode(long, long),
    ):
        assert type(result) is bytes
        assert b"\n" not in result


def test_str_is_utf8_encoded(impl: ModuleType) -> None:
    assert impl.auth_plain_encode("jürgen", "pässwörd") == impl.auth_plain_encode(
        "jürgen".encode(), "pässwörd".encode()
    )
    assert impl.auth_login_encode("ü", b"x") == (base64.b64encode("ü".encode()), b"eA==")
    assert impl.auth_xoauth2_encode("ü", "t") == impl.auth_xoauth2_encode("ü".encode(), b"t")
    assert impl.auth_crammd5_verify("ü", "p", RFC2195_CHALLENGE) == impl.auth_crammd5_verify(
        "ü".encode(), b"p", RFC2195_CHALLENGE.encode()
    )


def test_other_types_are_rejected(impl: ModuleType) -> None:
    with pytest.raises(AttributeError):
        impl.auth_plain_encode(1, "x")
    with pytest.raises(AttributeError):
        impl.auth_login_encode("x", bytearray(b"x"))


@pytest.mark.parametrize(
    "challenge",
    ["not base64!", "PDE4OTYu\nNjk3", "abc", "ab=c", "ab==cd==", "é", b"\xff\xfe", b"AA AA"],
)
def test_crammd5_bad_challenge(impl: ModuleType, challenge: str | bytes) -> None:
    with pytest.raises(SMTPAuthenticationError) as info:
        impl.auth_crammd5_verify("tim", "tanstaaftanstaaf", challenge)
    assert info.value.code == 334
    assert info.value.message == f"Invalid CRAM-MD5 challenge from server: {challenge!r}"
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("tim", "tanstaaftanstaaf"),
        (b"tim", b"tanstaaftanstaaf"),
        ("jürgen@example.com", "pässwörd ✓"),
        ("", ""),
        (b"\xff\x02", b"\x03\x7f"),
        ("u" * 300, "p" * 300),
    ],
)
def test_equal_to_aiosmtplib(
    impl: ModuleType, username: str | bytes, password: str | bytes
) -> None:
    assert impl.auth_plain_encode(username, password) == aiosmtplib.auth.auth_plain_encode(
        username, password
    )
    assert impl.auth_login_encode(username, password) == aiosmtplib.auth.auth_login_encode(
        username, password
    )
    assert impl.auth_xoauth2_encode(username, password) == aiosmtplib.auth.auth_xoauth2_encode(
        username, password
    )
    for challenge in (RFC2195_CHALLENGE, RFC2195_CHALLENGE.encode(), "", "AAECAw=="):
        assert impl.auth_crammd5_verify(
            username, password, challenge
        ) == aiosmtplib.auth.auth_crammd5_verify(username, password, challenge)


# -- credentials holding a field separator (security.md section 11, issue 12) -------------

REFUSED = "(refused by fastsmtp; nothing was sent)"


@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("us\x00er", "secret", "username"),
        (b"us\x00er", b"secret", "username"),
        ("user", "sec\x00ret", "password"),
        (b"user", b"\x00", "password"),
        ("\x00", "\x00", "username"),
    ],
)
def test_plain_refuses_nul_inside_a_field(
    impl: ModuleType, username: str | bytes, password: str | bytes, field: str
) -> None:
    # RFC 4616 section 2: authcid and passwd are 1*SAFE (UTF8 without NUL); a NUL would
    # make the message four fields instead of three.
    with pytest.raises(SMTPAuthenticationRefusedLocally) as info:
        impl.auth_plain_encode(username, password)
    error = info.value
    assert isinstance(error, SMTPAuthenticationError) and isinstance(error, ValueError)
    assert error.args == (
        501,
        f"5.5.4 The {field} for AUTH PLAIN contains NUL, which separates its fields {REFUSED}",
    )
    for secret in (username, password):
        text = secret if isinstance(secret, str) else secret.decode()
        assert len(text) < 2 or text not in str(error)


@pytest.mark.parametrize(
    ("username", "token", "field"),
    [
        ("user\x01auth=Bearer evil", "token", "username"),
        (b"user\x01", b"token", "username"),
        ("user", "tok\x01en", "access token"),
        ("user", b"\x01\x01", "access token"),
    ],
)
def test_xoauth2_refuses_ctrl_a_inside_a_field(
    impl: ModuleType, username: str | bytes, token: str | bytes, field: str
) -> None:
    with pytest.raises(SMTPAuthenticationRefusedLocally) as info:
        impl.auth_xoauth2_encode(username, token)
    assert info.value.args == (
        501,
        f"5.5.4 The {field} for AUTH XOAUTH2 contains ^A (0x01), which separates its "
        f"fields {REFUSED}",
    )
    assert "evil" not in str(info.value) and "tok\x01en" not in str(info.value)


def test_other_control_bytes_are_still_encoded_as_aiosmtplib_does(impl: ModuleType) -> None:
    # Only the separators are refused: PLAIN takes ^A, XOAUTH2 takes NUL, like aiosmtplib.
    assert impl.auth_plain_encode("u\x01", "p\x02") == aiosmtplib.auth.auth_plain_encode(
        "u\x01", "p\x02"
    )
    assert impl.auth_xoauth2_encode("u\x00", "t") == aiosmtplib.auth.auth_xoauth2_encode(
        "u\x00", "t"
    )
