"""flatten_message's one-line header fast path and check_header_block's one-regex path
give exactly what the stdlib generator and the line-by-line check give."""

from __future__ import annotations

import email.generator
import email.policy
import io
import sys
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastsmtp.email as ours
from fastsmtp import _parser_py as pure
from fastsmtp import _speedups
from fastsmtp._folding import fold_header
from fastsmtp.email import _check_header_lines, _OneLineFoldPolicy, _policy

# Characters that matter to the folding code: RFC 5322 specials, encoded-word markers,
# whitespace, quotes, comments, non-ASCII and (rarely) surrogate escapes.
_TEXT = st.lists(
    st.sampled_from(
        [
            *"abcXYZ09 .,;:@<>()[]\\\"'=?_-\t",
            "=?",
            "?=",
            "é",
            "ü",
            "\u2603",
            "\udcff",
            "\r\n ",
            "\n",
        ]
    ),
    max_size=90,
).map("".join)
_ATOM = st.text(alphabet="abcxyz09.-_+", min_size=1, max_size=20)


@st.composite
def _address_value(draw: st.DrawFn) -> str | Address:
    """An address header value: a raw string with odd spacing, or an Address object."""
    local = draw(_ATOM).strip(".") or "x"
    domain = draw(st.sampled_from(["example.com", "b", "bücher.de", "x.y.z"]))
    name = draw(st.text(alphabet='abc XYZ."é,()', max_size=25))
    if draw(st.booleans()):
        return Address(display_name=name, username=local, domain=domain)
    spaces = draw(st.sampled_from(["", " ", "   ", "\t"]))
    if not name:
        return f"{local}@{domain}"
    return f"{name}{spaces}<{local}@{domain}>"


@st.composite
def _message(draw: st.DrawFn) -> EmailMessage:
    limit = draw(st.sampled_from([78, 78, 30, 100, 1000]))
    message = EmailMessage(policy=email.policy.default.clone(max_line_length=limit))
    headers: list[tuple[str, object]] = [("From", draw(_address_value()))]
    recipients = draw(st.lists(_address_value(), min_size=1, max_size=4))
    headers.append(("To", ", ".join(str(r) for r in recipients)))
    if draw(st.booleans()):
        headers.append(("Cc", draw(_address_value())))
    headers.append(("Subject", draw(_TEXT)))
    headers.append(("X-Custom-" + draw(st.text(alphabet="ABC-", max_size=40)), draw(_TEXT)))
    dates = ["Sun, 22 Nov 2026 10:00:00 +0000", "not a date", "22 Nov 2026 10:00 -0500"]
    headers.append(("Date", draw(st.sampled_from(dates))))
    ids = ["<a@b>", "<send-message@example.com>", "no brackets", "<é@x>"]
    headers.append(("Message-ID", draw(st.sampled_from(ids))))
    try:
        for name, value in headers:
            message[name] = value
    except Exception:  # the stdlib refused (or tripped over) a header
        assume(False)
    body = draw(st.sampled_from(["hi\n", "é\n", "x" * 200 + "\n", "From me\n.\n"]))
    subtype = draw(st.sampled_from(["plain", "html"]))
    message.set_content(body, subtype=subtype)
    if draw(st.booleans()):
        message.set_param("format", draw(st.sampled_from(["flowed", "x y", "é"])))
    return message


def _outcome(func: Callable[..., object], *args: object, **kwargs: object) -> tuple[str, object]:
    """The result, or the exception type and message (the stdlib's refusals must be ours)."""
    try:
        return ("ok", func(*args, **kwargs))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def _stdlib(message: EmailMessage, utf8: bool, cte_type: str) -> bytes:
    policy = email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
    if cte_type != "8bit":
        policy = policy.clone(cte_type=cte_type)
    buffer = io.BytesIO()
    email.generator.BytesGenerator(buffer, policy=policy).flatten(message)
    return buffer.getvalue()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_message(), st.booleans(), st.sampled_from(["8bit", "7bit"]))
def test_flatten_is_byte_identical_to_the_stdlib(
    message: EmailMessage, utf8: bool, cte_type: str
) -> None:
    expected = _outcome(_stdlib, message, utf8, cte_type)
    got = _outcome(ours.flatten_message, message, utf8=utf8, cte_type=cte_type)
    assert got == expected


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["Subject", "X-A", "Comments", "Keywords", "X-" + "n" * 70]),
    _TEXT,
    st.sampled_from([78, 30, 0]),
    st.booleans(),
)
def test_each_header_folds_as_the_stdlib_does(
    name: str, value: str, limit: int, utf8: bool
) -> None:
    stdlib = email.policy.SMTP.clone(max_line_length=limit or None, utf8=utf8)
    mine = _policy(True, utf8, "8bit").clone(max_line_length=limit or None)
    assert isinstance(mine, _OneLineFoldPolicy)
    try:
        header = stdlib.header_factory(name, value)
    except Exception:
        assume(False)
    assert _outcome(mine.fold_binary, name, header) == _outcome(stdlib.fold_binary, name, header)


def _typical() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Sender <sender@example.com>"
    message["To"] = "Recipient <rcpt0@example.com>, other@example.com"
    message["Subject"] = "A short subject"
    message["Message-ID"] = "<id@example.com>"
    message["Date"] = "Sun, 22 Nov 2026 10:00:00 +0000"
    message.set_content("body\n")
    return message


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="fast path off on unverified versions")
def test_typical_headers_take_the_fast_path() -> None:
    policy = _policy(True, False, "8bit")
    assert isinstance(policy, email.policy.EmailPolicy)
    message = _typical()
    for name, value in message.raw_items():
        folded = fold_header(value, 78, "\r\n")
        assert folded == f"{name}: {value}\r\n", name
    long_subject = policy.header_factory("Subject", "word " * 30)
    assert fold_header(long_subject, 78, "\r\n") == long_subject.fold(policy=policy)
    assert fold_header(policy.header_factory("Subject", "é"), 78, "\r\n") is None  # RFC 2047
    assert fold_header("plain string value", 78, "\r\n") is None


def test_flatten_without_bcc_leaves_the_message_untouched() -> None:
    message = _typical()
    before = list(message.raw_items())
    flat = ours.flatten_message(message)
    assert flat == _stdlib(message, False, "8bit")
    assert list(message.raw_items()) == before
    message["Bcc"] = "hidden@example.com"
    message["RESENT-BCC"] = "hidden2@example.com"
    flat = ours.flatten_message(message)
    assert b"hidden" not in flat
    assert message["Bcc"] == "hidden@example.com"  # the caller's copy keeps it


# --- check_header_block -------------------------------------------------------------------

_HEADER_BYTES = st.lists(
    st.sampled_from(
        [b"A", b"Bc-d", b":", b" ", b"\t", b"x", b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"~"]
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=2000, deadline=None)
@given(_HEADER_BYTES)
def test_header_block_regex_agrees_with_the_line_check(flat: bytes) -> None:
    try:
        _check_header_lines(flat)
        slow = True
    except ValueError:
        slow = False
    fast = pure.header_block_well_formed(flat)
    # The compiled core scans the lines itself: it must say what the regex says.
    assert _speedups.header_block_well_formed(flat) is fast
    assert fast <= slow  # the regex never accepts what the line check refuses
    if slow and not fast:
        # the one shape it leaves to the line check: data ending inside a continuation line
        last_line = flat.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")[-1]
        assert last_line[:1] in (b" ", b"\t")


@pytest.mark.parametrize(
    "flat",
    [
        b"From: a\r\nSubject: x\r\n folded\r\n\r\nbody",
        b"A: b\r\n",
        b"A: b",
        b"",
        b"\r\nbody: not a header",
        b"A: b\r\n\tc\r\n d",
        b"A: b\r\r\nnot a header\r\n",  # bare CR, then CRLF: an empty line ends the block
    ],
)
def test_well_formed_blocks(flat: bytes) -> None:
    ours.check_header_block(flat)


@pytest.mark.parametrize(
    ("flat", "well_formed"),
    [
        (b"From: a\r\nSubject: x\r\n folded\r\n\r\nbody", True),
        (b"A: b", True),
        (b"", True),
        (b"\r\nbody: not a header", True),
        (b"A: b\r\r\nnot a header\r\n", True),
        (b"A:\n\tc\rD:e\r\n", True),
        (b"A: b\r\n\tc\r\n d", False),  # ends inside a continuation line
        (b" cont\r\n", False),
        (b"A: b\r\nnot a header\r\n\r\n", False),
        (b":b\r\n", False),
        (b"A", False),
        (b"A\xff: b\r\n", False),
        (b"A b: c\r\n", False),
    ],
)
def test_header_block_well_formed_on_both_cores(impl: Any, flat: bytes, well_formed: bool) -> None:
    assert impl.header_block_well_formed(flat) is well_formed


def test_header_block_well_formed_takes_bytes(impl: Any) -> None:
    with pytest.raises(TypeError, match="needs bytes, not bytearray"):
        impl.header_block_well_formed(bytearray(b"A: b\r\n"))


@pytest.mark.parametrize(
    ("flat", "line"),
    [
        (b"A: b\r\nnot a header\r\n\r\n", 2),
        (b"A: b\rBcc evil\r\n\r\n", 2),
        (b"A: b\r\n c\nbad\r\n", 3),
        (b" cont\r\n", 1),
    ],
)
def test_malformed_blocks_name_the_line(flat: bytes, line: int) -> None:
    with pytest.raises(ValueError, match=f"line {line}"):
        ours.check_header_block(flat)


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="fast path off on unverified versions")
def test_the_label_table_stays_bounded() -> None:
    # Header names come from the message: the "Name: " table keeps at most 1024 of them
    # (hostile input must not grow it without end), and names beyond that still fold.
    from fastsmtp._folding import FOLD_TABLES

    labels = FOLD_TABLES[1]
    saved = dict(labels)
    labels.clear()
    try:
        for n in range(1100):
            header = email.policy.SMTP.header_factory(f"X-Name-{n}", "hi")
            assert fold_header(header, 78, "\r\n") == f"X-Name-{n}: hi\r\n"
        assert len(labels) == 1024
        assert labels["X-Name-1023"] == "X-Name-1023: "
        assert "X-Name-1024" not in labels
    finally:
        labels.clear()
        labels.update(saved)


def test_the_handler_table_stays_bounded() -> None:
    # The generator's handler is remembered by content type, for at most 256 types (the
    # type comes from the message); types beyond that are still written as the stdlib does.
    from fastsmtp import _flatten

    handlers = _flatten._HANDLERS
    saved = dict(handlers)
    handlers.clear()
    try:
        for n in range(300):
            message = EmailMessage()
            message["Subject"] = "hi"
            message.set_content(b"data\n", "application", f"x-type-{n}")
            assert ours.flatten_message(message) == _stdlib(message, False, "8bit")
        assert len(handlers) == 256
        assert "application/x-type-255" in handlers
        assert "application/x-type-256" not in handlers
    finally:
        handlers.clear()
        handlers.update(saved)


@pytest.mark.parametrize("cached", [False, True])
def test_multipart_signed_parts_keep_their_long_lines(cached: bool) -> None:
    # The generator writes the parts of multipart/signed (RFC 1847) without refolding
    # their headers (_handle_multipart_signed): the subtype's own handler is found first,
    # not multipart's, on first sight of the type and from the table.
    from fastsmtp import _flatten

    long = " ".join(["word"] * 30)  # longer than 78: the generator would refold it elsewhere
    raw = (
        "Subject: signed\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/signed; protocol="application/pgp-signature"; boundary="b"\r\n'
        f"\r\n--b\r\nContent-Type: text/plain\r\nX-Long: {long}\r\n\r\nsigned text\r\n"
        "--b\r\nContent-Type: application/pgp-signature\r\n\r\nsig\r\n--b--\r\n"
    ).encode()
    handlers = _flatten._HANDLERS
    saved = dict(handlers)
    if not cached:
        handlers.clear()
    try:
        signed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(signed, EmailMessage)
        flat = ours.flatten_message(signed)
        assert flat == _stdlib(signed, False, "8bit")
        assert f"X-Long: {long}\r\n".encode() in flat
    finally:
        handlers.clear()
        handlers.update(saved)
