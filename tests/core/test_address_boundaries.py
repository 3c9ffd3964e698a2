"""Envelope grammar and flattening at their edges, found missing by mutation testing (#19).

Quoted local parts, the 256-octet path limit on the slow path (angle brackets, quoted or
UTF-8 mailboxes), xtext's boundaries, and a header block whose only header is hidden.
"""

from __future__ import annotations

import email.message

import pytest

from fastsmtp._address import check_option, envelope_address, esmtp_keyword, xtext_encode
from fastsmtp.email import flatten_message


def invalid(address: str, reason: str, **kwargs: bool) -> None:
    with pytest.raises(ValueError) as info:
        envelope_address(address, **kwargs)
    assert str(info.value) == f"Invalid email address {address!r}: {reason}"


def test_non_ascii_without_smtputf8_is_a_unicode_encode_error() -> None:
    # Issue 12: what aiosmtplib raises here, with the reason fastsmtp gave before.
    with pytest.raises(UnicodeEncodeError) as info:
        envelope_address("\u00e9@x.c")
    assert str(info.value).endswith(": a non-ASCII address needs SMTPUTF8")


# --- quoted local parts (RFC 5321 section 4.1.2 Quoted-string) -----------------------------


@pytest.mark.parametrize(
    "mailbox",
    [
        '"a\\ b"@x.example',  # quoted-pair of a space
        '"a~b"@x.example',  # "~" (126) is the last qtextSMTP
        '"a b"@x.example',  # " " (32) is the first
        '"a!#[]b"@x.example',  # 33, 35, 91, 93: on either side of the excluded '"' and '\\'
        '"\\~\\ "@x.example',  # quoted-pairs at both ends of %d32-126
        '"a"@[192.0.2.1]',
    ],
)
def test_quoted_local_parts(mailbox: str) -> None:
    assert envelope_address(mailbox) == mailbox
    assert envelope_address(f"<{mailbox}>") == mailbox


def test_quoted_local_part_needs_an_at() -> None:
    reason = "quoted local part must be followed directly by '@'"
    invalid('"abc"', reason)
    invalid('<"abc">', reason)
    invalid('"abc"x@y.example', reason)
    invalid('"abc".d@y.example', reason)


def test_quoted_local_part_errors() -> None:
    invalid('"abc@x.example', "unterminated quoted local part")
    invalid('"abc\\', "unterminated quoted local part")
    invalid('"a\x7fb"@x.example', "contains '\\x7f'")
    invalid('"a\\\x80"@x.example', "quoted-pair with '\\x80'", utf8=True)
    invalid('"a\u2028"@x.example', "quoted local part contains '\\u2028'", utf8=True)
    assert envelope_address('"a\u00e9"@x.example', utf8=True) == '"a\u00e9"@x.example'


# --- the mailbox grammar's messages ----------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("a", "missing '@domain'"),
        ("<a>", "missing '@domain'"),
        ("a@", "missing domain after '@'"),
        ("<a@>", "missing domain after '@'"),
        ("@b.example", "empty local part"),
        ("a..b@c.example", "local part has an empty atom (leading, trailing or double dot)"),
        ("a(b@c.example", "local part contains '(' outside quotes"),
        ("a@b..c", "domain has an empty label (leading, trailing or double dot)"),
        ("a@-b.c", "domain label '-b' starts or ends with '-'"),
        ("a@b-.c", "domain label 'b-' starts or ends with '-'"),
        ("a@b_c.d", "domain contains '_'"),
        ("a@" + "b" * 64 + ".c", "domain label longer than 63 octets"),
        ("a@[1.2.3.4", "address literal must end with ']'"),
        ("a@[IPv6:zz]", "invalid IPv6 address literal '[IPv6:zz]'"),
        ("a@[IPv6:]", "invalid IPv6 address literal '[IPv6:]'"),
        ("a@[1.2.3.999]", "invalid address literal '[1.2.3.999]' (expected [IPv4] or [IPv6:...])"),
        ("a@[]", "invalid address literal '[]' (expected [IPv4] or [IPv6:...])"),
        ("a@[x]", "invalid address literal '[x]' (expected [IPv4] or [IPv6:...])"),
        ("a b@c", "local part contains a space outside quotes"),
        ("a\tb@c", "contains a tab"),
        ("a\x00b@c", "contains NUL"),
        ("a\rb@c", "contains CR"),
        ("a\nb@c", "contains LF"),
        ("a\x1fb@c", "contains '\\x1f'"),
        ("x>", "'>' without matching '<'"),
        ("Na\rme <a@b.c>", "display name contains CR"),
        ("<@r.example:a@b.c>", "source routes (<@host:mailbox>) are not supported"),
    ],
)
def test_reasons(address: str, reason: str) -> None:
    invalid(address, reason)


def test_address_literals() -> None:
    assert envelope_address("a@[IPv6:::1]") == "a@[IPv6:::1]"
    assert envelope_address("a@[IPV6:2001:DB8::1]") == "a@[IPV6:2001:DB8::1]"
    assert envelope_address("a@[0.0.0.0]") == "a@[0.0.0.0]"


def test_utf8_characters_outside_quotes() -> None:
    assert envelope_address("j\u00f6rg@b\u00fccher.example", utf8=True) == (
        "j\u00f6rg@b\u00fccher.example"
    )
    # A non-ASCII label is not limited to 63 characters by the ASCII label rule.
    label = "\u00e9" * 64
    assert envelope_address(f"a@{label}.example", utf8=True) == f"a@{label}.example"
    invalid("a\u3000b@x.example", "local part contains '\\u3000' outside quotes", utf8=True)
    invalid("a@x\u2028y.example", "domain contains '\\u2028'", utf8=True)


# --- the 256-octet path limit on the slow path (RFC 5321 section 4.5.3.1.3) ----------------

DOMAIN_245 = ".".join(["d" * 60] * 4) + ".c"


@pytest.mark.parametrize(
    ("local", "utf8"),
    [
        ("l" * 8, False),  # plain, but written in angle brackets: the slow path
        ('"' + "q" * 6 + '"', False),  # quoted: 8 octets
        ("\u00e9" * 4, True),  # UTF-8: 8 octets in 4 characters
    ],
)
def test_254_octet_mailbox_fits_and_255_does_not(local: str, utf8: bool) -> None:
    mailbox = f"{local}@{DOMAIN_245}"
    assert len(mailbox.encode()) == 254  # 256 with the angle brackets: the limit, inclusive
    assert envelope_address(f"<{mailbox}>", utf8=utf8) == mailbox
    assert envelope_address(f"Name <{mailbox}>", utf8=utf8) == mailbox
    longer = ("x" + local) if not local.startswith('"') else '"x' + local[1:]
    longer_box = f"{longer}@{DOMAIN_245}"
    invalid(f"<{longer_box}>", "path longer than 256 octets", utf8=utf8)


def test_length_limits_on_the_slow_path() -> None:
    local64 = '"' + "q" * 62 + '"'
    assert envelope_address(f"<{local64}@x.example>") == f"{local64}@x.example"
    local65 = '"' + "q" * 63 + '"'
    invalid(f"<{local65}@x.example>", "local part longer than 64 octets")
    assert envelope_address(f"<{'l' * 64}@x.example>") == f"{'l' * 64}@x.example"
    invalid(f"<{'l' * 65}@x.example>", "local part longer than 64 octets")
    domain255 = ".".join(["d" * 63] * 4)
    assert len(domain255) == 255
    invalid(f"<a@{domain255}>", "path longer than 256 octets")
    domain256 = "d" + domain255
    invalid(f"<a@{domain256}>", "domain label longer than 63 octets")
    utf8_domain = ".".join(["\u00e9" * 40] * 4)  # 80 octets a label, 323 in all
    invalid(f"a@{utf8_domain}", "domain longer than 255 octets", utf8=True)


def test_fast_path_limits() -> None:
    # The plain ASCII form takes the fast path; its limits are the same.
    assert envelope_address("l" * 64 + "@x.example") == "l" * 64 + "@x.example"
    invalid("l" * 65 + "@x.example", "local part longer than 64 octets")
    mailbox = "l" * 8 + "@" + DOMAIN_245
    assert envelope_address(mailbox) == mailbox
    invalid("l" + mailbox, "path longer than 256 octets")


# --- xtext (RFC 3461 section 4) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\x7f", "+7F"),  # DEL is not an xchar
        (" ", "+20"),
        ("!", "!"),  # 33, the first xchar
        ("~", "~"),  # 126, the last
        ("+", "+2B"),
        ("=", "+3D"),
        ("*,<>", "*,<>"),  # either side of "+" (43) and "=" (61)
        (b"\x80\n", "+80+0A"),
        ("\x7fA", "+7FA"),
    ],
)
def test_xtext_boundaries(value: str | bytes, expected: str) -> None:
    assert xtext_encode(value) == expected


# --- a header block whose only header is hidden --------------------------------------------


def test_only_header_bcc_is_dropped() -> None:
    message = email.message.EmailMessage()
    message["Bcc"] = "hidden@example.com"
    message.set_payload("body\r\n")
    del message["Content-Transfer-Encoding"]
    flat = flatten_message(message)
    assert b"hidden" not in flat
    assert flat == b"\r\nbody\r\n"
    assert message["Bcc"] == "hidden@example.com"  # the caller's message is left intact


def test_only_headers_bcc_and_resent_bcc_legacy_message() -> None:
    message = email.message.Message()
    message["Bcc"] = "a@example.com"
    message["Resent-Bcc"] = "b@example.com"
    message.set_payload("x")
    assert flatten_message(message) == b"\nx"
    assert message.keys() == ["Bcc", "Resent-Bcc"]


def test_hidden_headers_any_case() -> None:
    message = email.message.Message()
    message["To"] = "to@example.com"
    message["bcc"] = "a@example.com"
    message["RESENT-BCC"] = "b@example.com"
    message.set_payload("x")
    assert flatten_message(message) == b"To: to@example.com\n\nx"


# --- ESMTP parameters: the messages ----------------------------------------------------------


def test_esmtp_keyword_message() -> None:
    with pytest.raises(ValueError) as info:
        esmtp_keyword("-X")
    assert str(info.value) == (
        "Invalid ESMTP keyword '-X': must be a letter or digit followed by letters, digits or '-'"
    )


def test_check_option_message() -> None:
    with pytest.raises(ValueError) as info:
        check_option("SIZE=1 X")
    assert str(info.value) == (
        "Invalid ESMTP parameter 'SIZE=1 X': expected KEYWORD or KEYWORD=value, the keyword "
        "made of letters, digits and '-', the value of printable ASCII characters other than "
        "'=' and space"
    )


@pytest.mark.parametrize("utf8", [False, True])
@pytest.mark.parametrize("cte_type", ["8bit", "7bit"])
def test_fresh_policies_flatten_as_the_stdlib(utf8: bool, cte_type: str) -> None:
    # The policies are cached; build them again so the code that makes them runs here.
    import email.generator
    import email.policy
    import io

    import fastsmtp.email

    fastsmtp.email._policy.cache_clear()
    message = email.message.EmailMessage()
    message["From"] = "Sender <s@example.com>"
    message["To"] = "r@example.com"
    message["Subject"] = "a subject that fits on one line"
    message.set_content("body\n")
    base = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    policy = base if cte_type == "8bit" else base.clone(cte_type=cte_type)
    buffer = io.BytesIO()
    email.generator.BytesGenerator(buffer, policy=policy).flatten(message)
    assert flatten_message(message, utf8=utf8, cte_type=cte_type) == buffer.getvalue()
    made = fastsmtp.email._policy(True, utf8, cte_type)
    assert made.linesep == "\r\n"
    assert made.utf8 is utf8
    assert made.header_factory is base.header_factory


def test_bad_header_lines_are_quoted_up_to_100_octets() -> None:
    from fastsmtp.email import check_header_block

    long_line = b"x" * 150
    with pytest.raises(ValueError) as info:
        check_header_block(b"A: b\r\n" + long_line + b"\r\n\r\nbody")
    assert str(info.value) == (
        "Message header line 2 is neither 'Name: value' nor a folded continuation "
        f"(possible header injection): {long_line[:100]!r}"
    )
    with pytest.raises(ValueError) as info:
        check_header_block(b" " + long_line + b"\r\nA: b\r\n\r\n")
    assert str(info.value) == (
        "Message header line 1 is a continuation with no header to continue: "
        f"{(b' ' + long_line)[:100]!r}"
    )


def test_flatten_defaults_to_ascii_headers() -> None:
    message = email.message.EmailMessage()
    message["Subject"] = "caf\u00e9"
    message.set_content("x")
    assert flatten_message(message).startswith(b"Subject: =?utf-8?q?caf=C3=A9?=\r\n")
    assert flatten_message(message, utf8=True).startswith("Subject: caf\u00e9\r\n".encode())


def test_length_limits_find_the_last_at() -> None:
    # The local part ends at the last "@": one inside quotes does not shorten it.
    local = '"@' + "a" * 62 + '"'  # 65 octets
    invalid(f"{local}@x.example", "local part longer than 64 octets")
    domain256 = ".".join(["d" * 63] * 3 + ["d" * 62, "d"])
    assert len(domain256) == 256
    invalid(f"a@{domain256}", "domain longer than 255 octets")


def test_a_second_angle_bracket_is_in_the_local_part() -> None:
    invalid("<a<b@c.example>", "local part contains '<' outside quotes")


def test_non_str_address_message() -> None:
    with pytest.raises(TypeError) as info:
        envelope_address(b"a@b.example")  # type: ignore[arg-type]
    assert str(info.value) == "email address must be str, not bytes"


@pytest.mark.parametrize(
    ("address", "index"),
    [("\u00e9@x.example", 0), ("ab\u00e9@x.example", 2), ("a@x.\u00e9xample", 4)],
)
def test_unicode_encode_error_points_at_the_first_non_ascii_character(
    address: str, index: int
) -> None:
    # What str.encode("ascii") says of the same string (aiosmtplib's error).
    with pytest.raises(UnicodeEncodeError) as info:
        envelope_address(address)
    assert (info.value.start, info.value.end) == (index, index + 1)
    assert info.value.object == address
    with pytest.raises(UnicodeEncodeError) as ascii_info:
        address.encode("ascii")
    assert (ascii_info.value.start, ascii_info.value.end) == (index, index + 1)


@pytest.mark.parametrize("space", ["\x0b", "\x0c", "\x1c", "\x85", "\xa0"])
def test_only_sp_tab_cr_lf_are_stripped(space: str) -> None:
    # Other characters str.strip() would remove are part of the address, and refused.
    with pytest.raises(ValueError, match="Invalid email address"):
        envelope_address(f"{space}a@x.example", utf8=True)
    with pytest.raises(ValueError, match="Invalid email address"):
        envelope_address(f"a@x.example{space}", utf8=True)
    assert envelope_address(" \t\r\na@x.example \t\r\n") == "a@x.example"


def test_a_second_at_outside_quotes_is_in_the_domain() -> None:
    invalid("a@b@c.example", "domain contains '@'")
    invalid("<a@b@c.example>", "domain contains '@'")


def test_null_path_and_postmaster_refusals_named_exactly() -> None:
    invalid("<>", "empty address (the null path <>) is not allowed here")
    invalid("", "empty address (the null path <>) is not allowed here")
    invalid("Postmaster", "a bare Postmaster without domain is not allowed here")
    invalid("<postmaster>", "a bare Postmaster without domain is not allowed here")
