"""The strict RFC 5321 envelope grammar of fastsmtp._address (security.md §1)."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fastsmtp._address import (
    _FAST_MAILBOX,
    _envelope_address,
    _Invalid,
    check_option,
    envelope_address,
    esmtp_keyword,
    xtext_encode,
)

VALID = [
    ("a@b.com", "a@b.com"),
    ("  a@b.com\t", "a@b.com"),
    ("<a@b.com>", "a@b.com"),
    ("Name <a@b.com>", "a@b.com"),
    ("Name<a@b.com>", "a@b.com"),
    ('"Quoted, Name" <a@b.com>', "a@b.com"),
    ('"Weird ( ) ; : @ , Name" <a@b.com>', "a@b.com"),
    ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
    ("!#$%&'*+-/=?^_`{|}~@example.org", "!#$%&'*+-/=?^_`{|}~@example.org"),
    ("user@localhost", "user@localhost"),
    ("user@123.example", "user@123.example"),
    ("a@x-y.z", "a@x-y.z"),
    ('"a b"@c.com', '"a b"@c.com'),
    ('""@c.com', '""@c.com'),
    ('"a<b>c"@d.com', '"a<b>c"@d.com'),
    ('<"a>b"@d.com>', '"a>b"@d.com'),
    ('"a\\"b"@c.com', '"a\\"b"@c.com'),
    ('"a\\\\"@c.com', '"a\\\\"@c.com'),
    ('"a@b"@c.com', '"a@b"@c.com'),
    ("a@[192.0.2.1]", "a@[192.0.2.1]"),
    ("a@[IPv6:2001:db8::1]", "a@[IPv6:2001:db8::1]"),
    ("a@[ipv6:::ffff:192.0.2.1]", "a@[ipv6:::ffff:192.0.2.1]"),
    ("A@EXAMPLE.COM", "A@EXAMPLE.COM"),
    ("x" * 64 + "@b.com", "x" * 64 + "@b.com"),
    ("a@" + ".".join(["b" * 63] * 3) + ".cc", "a@" + ".".join(["b" * 63] * 3) + ".cc"),
]

INVALID = [
    "a@b.com> RET=FULL ENVID=x",
    "a@b.com\r\nRCPT TO:<x@y>",
    "a@b.com\nRCPT TO:<x@y>",
    "a@b.com\rx",
    "<a@b> SIZE=1",
    "<a@b>> SIZE=1",
    "<<a@b>>",
    "a b@c",
    "a@b c",
    "a@b@c",
    "a@-b.com",
    "a@b-.com",
    "@b.com",
    "a@",
    "a",
    "a@b..com",
    "a@.b.com",
    "a@b.com.",
    ".a@b.com",
    "a.@b.com",
    "a..b@c.com",
    "a@b_c.com",
    '"a@b.com',
    '"a"b@c.com',
    'a"b"@c.com',
    '"a\tb"@c.com',
    '"a\r\nb"@c.com',
    '"a\x00b"@c.com',
    '"a\\\nb"@c.com',
    "a\x00@b.com",
    "a\x7f@b.com",
    "a\x1b@b.com",
    "a@b.com\x00",
    "<a@b.com",
    "a@b.com>",
    "Na>me <a@b.com>",
    "Na<me <a@b.com>",
    "Name\r\nBcc: x <a@b.com>",
    "Name <a@b.com> trailing",
    "<@relay.example:a@b.com>",
    "<@relay.example,@r2:a@b.com>",
    "a@[300.1.1.1]",
    "a@[1.2.3]",
    "a@[01.2.3.4]",
    "a@[IPv6:fe80::1%eth0]",
    "a@[IPv6:1.2.3.4]",
    "a@[2001:db8::1]",
    "a@[tag:general]",
    "a@[1.2.3.4",
    "a@[]",
    "a@b.com,c@d.com",
    "a@b.com;c@d.com",
    "é@x.com",
    "a@exämple.com",
    "x" * 65 + "@b.com",
    "a@" + "b" * 64 + ".com",
    "a@" + ".".join(["b" * 63] * 4) + ".com",
    "l" * 20 + "@" + ".".join(["b" * 60] * 4),  # path longer than 256 octets
]


@pytest.mark.parametrize(("address", "expected"), VALID)
def test_valid(address: str, expected: str) -> None:
    assert envelope_address(address) == expected


@pytest.mark.parametrize("address", INVALID)
def test_invalid(address: str) -> None:
    if not address.isascii():
        # Without SMTPUTF8 this is what aiosmtplib raises too (issue 12).
        with pytest.raises(UnicodeEncodeError, match="needs SMTPUTF8") as encode_info:
            envelope_address(address)
        assert encode_info.value.object == address
        assert encode_info.value.encoding == "ascii"
        return
    with pytest.raises(ValueError, match=r"^Invalid email address ") as info:
        envelope_address(address)
    assert repr(address) in str(info.value)


@pytest.mark.parametrize("address", INVALID)
def test_invalid_even_with_every_allowance(address: str) -> None:
    if not address.isascii():
        pytest.skip("non-ASCII examples are valid with utf8=True")
    with pytest.raises(ValueError):
        envelope_address(address, utf8=True, allow_null=True, allow_postmaster=True)


def test_error_message_says_what_is_wrong() -> None:
    with pytest.raises(ValueError) as info:
        envelope_address("a@b.com> RET=FULL")
    assert str(info.value).startswith("Invalid email address 'a@b.com> RET=FULL': ")
    with pytest.raises(ValueError, match="SMTPUTF8"):
        envelope_address("é@x.com")
    with pytest.raises(ValueError, match="LF"):
        envelope_address("a@b.com\nx")
    with pytest.raises(ValueError, match="64 octets"):
        envelope_address("x" * 65 + "@b.com")


@pytest.mark.parametrize("address", ["", "<>", "  <>  ", "Name <>"])
def test_null_path(address: str) -> None:
    assert envelope_address(address, allow_null=True) == ""
    with pytest.raises(ValueError, match="null path"):
        envelope_address(address)


@pytest.mark.parametrize(
    "address", ["Postmaster", "postmaster", "<POSTMASTER>", "Boss <postMaster>"]
)
def test_postmaster(address: str) -> None:
    expected = address.strip("<>").split("<")[-1]
    assert envelope_address(address, allow_postmaster=True) == expected
    with pytest.raises(ValueError, match="Postmaster"):
        envelope_address(address)


def test_postmaster_with_domain_is_an_ordinary_mailbox() -> None:
    assert envelope_address("postmaster@example.com") == "postmaster@example.com"


@pytest.mark.parametrize(
    "address",
    ["é@x.com", "用户@例子.广告", "a@exämple.com", '"ü b"@x.com', "Jörg <jörg@bücher.de>"],
)
def test_utf8_needs_smtputf8(address: str) -> None:
    with pytest.raises(ValueError, match="SMTPUTF8"):
        envelope_address(address)
    result = envelope_address(address, utf8=True)
    assert result in address


@pytest.mark.parametrize(
    "address",
    [
        "a\u00a0b@x.com",
        "a@x\u2028y.com",
        "a\x85@x.com",
        "a@b\u3000.com",
        "a\ud800@x.com",
        '"a\x9b"@x',
    ],
)
def test_utf8_refuses_controls_and_separators(address: str) -> None:
    with pytest.raises(ValueError):
        envelope_address(address, utf8=True)


def test_lengths_count_utf8_octets() -> None:
    local = "é" * 32  # 64 octets
    assert envelope_address(local + "@x.com", utf8=True) == local + "@x.com"
    with pytest.raises(ValueError, match="64 octets"):
        envelope_address(local + "e@x.com", utf8=True)


def test_path_length_limit_is_inclusive() -> None:
    domain = ".".join(["d" * 60] * 4) + ".c"  # 245 octets
    mailbox = "l" * 9 + "@" + domain  # 255 octets + 2 brackets = 257
    with pytest.raises(ValueError, match="256"):
        envelope_address(mailbox)
    assert envelope_address(mailbox[1:]) == mailbox[1:]  # exactly 256 with the brackets


def test_type_error_for_non_str() -> None:
    with pytest.raises(TypeError):
        envelope_address(b"a@b.com")  # type: ignore[arg-type]


# --- the property: nothing that leaves envelope_address can break the command line -------

ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"
UATEXT = rf"(?:{ATEXT}|[^\x00-\x7f])"
DOT_STRING = rf"{UATEXT}+(?:\.{UATEXT}+)*"
QUOTED = r'"(?:[ !#-\[\]-~]|[^\x00-\x7f]|\\[ -~])*"'
LABEL = (
    r"(?:[A-Za-z0-9]|[^\x00-\x7f])(?:(?:[A-Za-z0-9-]|[^\x00-\x7f])*(?:[A-Za-z0-9]|[^\x00-\x7f]))?"
)
DOMAIN = rf"{LABEL}(?:\.{LABEL})*"
LITERAL = r"\[(?:[0-9.]+|[Ii][Pp][Vv]6:[0-9A-Fa-f:.]+)\]"
POSTMASTER = r"(?i:postmaster)"
MAIL_FROM = re.compile(
    rf"MAIL FROM:<(?:(?:{DOT_STRING}|{QUOTED})@(?:{DOMAIN}|{LITERAL})|{POSTMASTER})?>"
)

HOSTILE = st.text(
    alphabet=st.sampled_from(
        list('\r\n\x00\x7f<>" ,;=@:') * 3
        + list("ab.c-[]\\\t()")
        + ["é", "ü", "\u2028", "\x85", "\u00a0", "用", "\ud800"]
    ),
    max_size=30,
)
PLAUSIBLE = st.builds(
    lambda pre, local, dom, post: f"{pre}{local}@{dom}{post}",
    HOSTILE,
    st.from_regex(rf"{ATEXT}{{1,5}}|\"[ -~]{{0,5}}\"", fullmatch=True),
    st.from_regex(r"[a-z0-9-]{1,6}(\.[a-z]{1,4}){0,2}|\[[0-9.:a-fA-Fv]{1,12}\]", fullmatch=True),
    HOSTILE,
)


def _outside_quotes(mailbox: str) -> str:
    return re.sub(QUOTED, "", mailbox)


@settings(max_examples=800)
@given(
    address=st.one_of(HOSTILE, PLAUSIBLE, st.text(max_size=40)),
    utf8=st.booleans(),
    allow_null=st.booleans(),
    allow_postmaster=st.booleans(),
)
@example("a@b.com> RET=FULL ENVID=x", False, False, False)
@example("a@b.com\r\nRCPT TO:<x@y>", True, True, True)
@example('"a b"@c.com', False, False, False)
def test_result_is_always_a_safe_mailbox(
    address: str, utf8: bool, allow_null: bool, allow_postmaster: bool
) -> None:
    try:
        result = envelope_address(
            address, utf8=utf8, allow_null=allow_null, allow_postmaster=allow_postmaster
        )
    except ValueError:
        return
    assert "\r" not in result and "\n" not in result and "\x00" not in result
    assert "<" not in _outside_quotes(result) and ">" not in _outside_quotes(result)
    assert " " not in _outside_quotes(result)
    assert all(ord(c) >= 0x20 and c != "\x7f" for c in result)
    if not utf8:
        assert result.isascii()
    assert result in address
    line = f"MAIL FROM:<{result}>"
    assert MAIL_FROM.fullmatch(line), line
    assert len(result.encode("utf-8")) + 2 <= 256


@settings(max_examples=500)
@given(st.one_of(HOSTILE, PLAUSIBLE, st.from_regex(rf"{ATEXT}+@[a-z0-9.-]+", fullmatch=True)))
def test_fast_path_agrees_with_full_parser(text: str) -> None:
    """The one-regex fast path accepts only what the explicit parser accepts."""
    if _FAST_MAILBOX.fullmatch(text) is None:
        return
    from fastsmtp._address import _check_mailbox

    try:
        _check_mailbox(text, False)
    except _Invalid as exc:  # pragma: no cover - a failure here is a bug
        pytest.fail(f"fast path accepted {text!r} but the parser says {exc}")
    assert _envelope_address(text, False, False, False) == text


# --- ESMTP keywords, options, xtext --------------------------------------------------------


@pytest.mark.parametrize("keyword", ["SIZE", "BODY", "X-FOO", "8BITMIME", "a", "1-"])
def test_esmtp_keyword_valid(keyword: str) -> None:
    assert esmtp_keyword(keyword) == keyword


@pytest.mark.parametrize("keyword", ["", "-X", "SI ZE", "SIZE=1", "SIZE\r\n", "KÉY", "A_B", "X\n"])
def test_esmtp_keyword_invalid(keyword: str) -> None:
    with pytest.raises(ValueError, match="Invalid ESMTP keyword"):
        esmtp_keyword(keyword)


@pytest.mark.parametrize(
    "option",
    [
        "SIZE=100",
        "BODY=8BITMIME",
        "SMTPUTF8",
        "NOTIFY=SUCCESS,FAILURE",
        "ORCPT=rfc822;a+2Bb@c",
        "RET=HDRS",
        "ENVID=QQ314159",
        "AUTH=<>",
        "X-A=!~<>",
    ],
)
def test_check_option_valid(option: str) -> None:
    assert check_option(option) == option


@pytest.mark.parametrize(
    "option",
    [
        "",
        "SIZE=",
        "=1",
        "SIZE=1 AUTH=x",
        "SIZE=1\r\nRCPT TO:<x@y>",
        "SIZE=1\n",
        "BODY=8BIT MIME",
        "A=b=c",
        "NOTIFY=é",
        "-X=1",
        "X=\x00",
        "X=\x7f",
        " SIZE=1",
        "SIZE=1 ",
    ],
)
def test_check_option_invalid(option: str) -> None:
    with pytest.raises(ValueError, match="Invalid ESMTP parameter"):
        check_option(option)


@given(st.text(max_size=20))
def test_check_option_result_is_one_token(option: str) -> None:
    try:
        result = check_option(option)
    except ValueError:
        return
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*(=[!-<>-~]+)?", result)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "abc"),
        ("a+b=c", "a+2Bb+3Dc"),
        ("a b", "a+20b"),
        ("\r\n", "+0D+0A"),
        ("é", "+C3+A9"),
        (b"\x00\xff~!", "+00+FF~!"),
        ("", ""),
    ],
)
def test_xtext_encode(value: str | bytes, expected: str) -> None:
    assert xtext_encode(value) == expected


@given(st.binary(max_size=40))
def test_xtext_round_trip(value: bytes) -> None:
    encoded = xtext_encode(value)
    assert re.fullmatch(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*", encoded)
    decoded = re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), encoded)
    assert decoded.encode("latin-1") == value
