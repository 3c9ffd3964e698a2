"""fastsmtp._flatten writes exactly the bytes of email.generator.BytesGenerator.

Generated messages (EmailMessage and compat32 Message trees: text, HTML alternatives,
attachments, parsed 8-bit messages, boundaries given or not, preambles and epilogues, every
header class of email.headerregistry, non-ASCII) are flattened by both under the same
policy settings (max_line_length, linesep, cte_type, utf8), and by flatten_message
against the stdlib with send_message's policies. Random boundaries are drawn from the same
seed on both sides, so a boundary-less multipart must get the same one.
"""

from __future__ import annotations

import copy
import email
import email.generator
import email.policy
import io
import random
import sys
from collections.abc import Callable
from email.message import EmailMessage, Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastsmtp.email as ours
from fastsmtp import _flatten
from fastsmtp._flatten import flatten_fast

# Body text: line ends of every kind, "From " and "." at line starts, long lines, non-ASCII.
_BODY = st.lists(
    st.sampled_from(
        [
            "a",
            "Z",
            " ",
            "\t",
            "\n",
            "\r\n",
            "\r",
            "From ",
            ".",
            "..",
            "=",
            "x" * 90,
            "é",
            "\u2603",
            "--",
            "==",
            "\n--b\n",
            "\n--b--\n",
        ]
    ),
    max_size=40,
).map("".join)
_ASCII_BODY = st.lists(
    st.sampled_from(["a", " ", "\n", "\r\n", "\r", "From ", ".", "x" * 90, "--b", "\n--b\n"]),
    max_size=30,
).map("".join)
_WORD = st.text(alphabet="abcXYZ09", min_size=1, max_size=12)
_TEXT = st.lists(
    st.sampled_from(
        [
            *"abcXYZ09 .,;:@<>()[]\\\"'=?_-\t",
            "=?",
            "?=",
            "é",
            "ü",
            "\u2603",
            "=?utf-8?q?caf=C3=A9?=",
            " ",
            "word",
            "averyveryverylongwordwithoutanyspaces" * 2,
        ]
    ),
    max_size=60,
).map("".join)


@st.composite
def _address(draw: st.DrawFn) -> str:
    local = draw(_WORD)
    domain = draw(st.sampled_from(["example.com", "b", "bücher.de", "x.y.z"]))
    name = draw(st.sampled_from(["", "Ann", "Ann Example", 'A "q" B', "Zoë", "a, b", "(c)"]))
    if not name:
        return f"{local}@{domain}"
    if any(c in name for c in '",()'):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{local}@{domain}>"


_ADDRESS_LIST = st.lists(_address(), min_size=1, max_size=30).map(", ".join)
_DATES = ["Sun, 22 Nov 2026 10:00:00 +0000", "not a date", "22 Nov 2026 10:00 -0500", ""]
_IDS = ["<a@b>", "<send-message@example.com>", "no brackets", "<é@x>", ""]
_CTES = ["7bit", "8bit", "base64", "quoted-printable", "x-unknown", "Binary"]


@st.composite
def _headers(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Headers of every class in email.headerregistry's default map, and unstructured ones."""
    names = draw(
        st.lists(
            st.sampled_from(
                [
                    "From",
                    "To",
                    "Cc",
                    "Bcc",
                    "Reply-To",
                    "Sender",
                    "Resent-To",
                    "Resent-From",
                    "Resent-Cc",
                    "Resent-Sender",
                    "Resent-Bcc",
                    "Subject",
                    "Date",
                    "Resent-Date",
                    "Orig-Date",
                    "Message-ID",
                    "MIME-Version",
                    "Content-Disposition",
                    "Comments",
                    "Keywords",
                    "X-Mailer",
                    "X-" + "Long" * 20,
                ]
            ),
            max_size=8,
        )
    )
    out = []
    for name in names:
        lower = name.lower()
        if lower.endswith(("to", "cc", "from", "sender")) or lower == "reply-to":
            value = draw(st.one_of(_ADDRESS_LIST, _TEXT))
        elif "date" in lower:
            value = draw(st.sampled_from(_DATES))
        elif lower == "message-id":
            value = draw(st.sampled_from(_IDS))
        elif lower == "mime-version":
            value = draw(st.sampled_from(["1.0", "2.0 (x)", "x"]))
        elif lower == "content-disposition":
            value = draw(
                st.sampled_from(
                    [
                        "inline",
                        'attachment; filename="a b.txt"',
                        "attachment; filename=é.txt",
                        "attachment; filename=" + "n" * 90,
                    ]
                )
            )
        else:
            value = draw(_TEXT)
        out.append((name, value))
    return out


def _add_headers(message: Message, headers: list[tuple[str, str]]) -> None:
    for name, value in headers:
        try:
            message[name] = value
        except Exception:  # the stdlib refused the value: not a message anyone sends
            assume(False)


@st.composite
def _modern_leaf(draw: st.DrawFn) -> EmailMessage:
    part = EmailMessage()
    kind = draw(st.sampled_from(["text", "bytes", "raw", "empty"]))
    if kind == "text":
        cte = draw(st.sampled_from([None, "7bit", "8bit", "quoted-printable", "base64"]))
        body = draw(_BODY)
        try:
            part.set_content(
                body,
                subtype=draw(st.sampled_from(["plain", "html"])),
                cte=cte,
                charset=draw(st.sampled_from(["utf-8", "us-ascii", "iso-8859-1"])),
            )
        except Exception:  # e.g. 7bit with non-ASCII text: the stdlib refuses
            assume(False)
    elif kind == "bytes":
        data = draw(st.binary(max_size=300))
        part.set_content(
            data, "application", "octet-stream", filename=draw(st.sampled_from([None, "a.bin"]))
        )
    elif kind == "raw":
        part["Content-Type"] = draw(
            st.sampled_from(["text/plain", "image/png", "text/x-Odd; charset=utf-8", "bogus"])
        )
        if draw(st.booleans()):
            part["Content-Transfer-Encoding"] = draw(st.sampled_from(_CTES))
        part.set_payload(draw(_ASCII_BODY))
    return part


@st.composite
def _legacy_leaf(draw: st.DrawFn) -> Message:
    kind = draw(st.sampled_from(["mimetext", "application", "plain"]))
    if kind == "mimetext":
        try:
            return MIMEText(
                draw(_BODY),
                draw(st.sampled_from(["plain", "html"])),
                draw(st.sampled_from(["utf-8", "us-ascii", None])),
            )
        except UnicodeEncodeError:  # us-ascii with non-ASCII text: the stdlib refuses
            assume(False)
    if kind == "application":
        return MIMEApplication(draw(st.binary(max_size=200)))
    part = Message()
    if draw(st.booleans()):
        part["Content-Type"] = draw(st.sampled_from(["text/plain", "text/html; charset=x"]))
    part.set_payload(draw(_ASCII_BODY))
    return part


def _parsed(draw: st.DrawFn, modern: bool) -> Message:
    """A message parsed from bytes: 8-bit bodies become surrogate escapes, odd input defects."""
    head = draw(st.sampled_from([b"Subject: x\r\n", b"From: a@b\n", b"X: \xe9\n", b""]))
    ctype = draw(
        st.sampled_from(
            [
                b"",
                b"Content-Type: text/plain; charset=utf-8\n",
                b"Content-Type: text/plain\nContent-Transfer-Encoding: 8bit\n",
                b"Content-Type: multipart/mixed; boundary=b\n",
            ]
        )
    )
    body = draw(
        st.sampled_from(
            [
                b"caf\xc3\xa9\n",
                b"\xff\xfe\r\nFrom x\n",
                b"--b\n\nA\n--b--\n",
                b"plain\r\n.\r\n",
                b"pre\n--b\nContent-Type: text/plain\n\n\xe9\n--b--\nepi\n",
            ]
        )
    )
    raw = head + ctype + b"\n" + body
    if modern:
        return email.message_from_bytes(raw, policy=email.policy.default)
    return email.message_from_bytes(raw)


@st.composite
def _message(draw: st.DrawFn, modern: bool, depth: int = 0) -> Message:
    shapes = ["leaf", "leaf", "multipart", "parsed"] if depth < 2 else ["leaf"]
    shape = draw(st.sampled_from(shapes))
    if shape == "parsed":
        message = _parsed(draw, modern)
    elif shape == "leaf":
        message = draw(_modern_leaf() if modern else _legacy_leaf())
    else:
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "x-odd"]))
        parts = draw(st.lists(_message(modern, depth + 1), max_size=3))
        if modern:
            message = EmailMessage()
            message["Content-Type"] = f"multipart/{subtype}"
            message.set_payload(parts)
        else:
            message = MIMEMultipart(subtype, _subparts=parts)
        if draw(st.booleans()):
            message.set_boundary(draw(st.sampled_from(["b", "simple", "=_x", "a b", "é"])))
        if draw(st.booleans()):
            message.preamble = draw(_ASCII_BODY)
        if draw(st.booleans()):
            message.epilogue = draw(_ASCII_BODY)
    _add_headers(message, draw(_headers()))
    return message


def _outcome(func: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, object]:
    try:
        return ("ok", func(*args, **kwargs))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def _generate(message: Message, policy: Any) -> bytes:
    buffer = io.BytesIO()
    email.generator.BytesGenerator(buffer, policy=policy).flatten(message)
    return buffer.getvalue()


_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _stock_policy(modern: bool, utf8: bool, cte_type: str, limit: int | None, linesep: str) -> Any:
    base: Any = (
        (email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
        if modern
        else (email.policy.compat32)
    )
    return base.clone(cte_type=cte_type, max_line_length=limit, linesep=linesep)


@_SETTINGS
@given(
    st.booleans().flatmap(lambda modern: st.tuples(st.just(modern), _message(modern))),
    st.booleans(),
    st.sampled_from(["8bit", "7bit"]),
    st.sampled_from([78, 78, 30, 100, 998, None]),
    st.sampled_from(["\r\n", "\n"]),
    st.integers(0, 2**32),
)
def test_flatten_fast_writes_the_generators_bytes(
    modern_message: tuple[bool, Message],
    utf8: bool,
    cte_type: str,
    limit: int | None,
    linesep: str,
    seed: int,
) -> None:
    modern, message = modern_message
    stock = _stock_policy(modern, utf8, cte_type, limit, linesep)
    theirs, mine = copy.deepcopy(message), copy.deepcopy(message)
    random.seed(seed)
    expected = _outcome(_generate, theirs, stock)
    random.seed(seed)
    got = flatten_fast(mine, stock)
    if got is not None:
        assert ("ok", got) == expected
        # A boundary chosen on the way is stored in the message, as the stdlib does.
        assert _outcome(_generate, mine, stock) == _outcome(_generate, theirs, stock)
    # and with send_message's own policy (fast header folding), through flatten_message:
    fast_policy = ours._policy(modern, utf8, cte_type).clone(max_line_length=limit, linesep=linesep)
    theirs, mine = copy.deepcopy(message), copy.deepcopy(message)
    random.seed(seed)
    expected = _outcome(_generate, theirs, stock)
    random.seed(seed)
    fast = _outcome(flatten_fast, mine, fast_policy)
    if fast[1] is not None:
        assert fast == expected


@_SETTINGS
@given(
    st.booleans().flatmap(lambda modern: st.tuples(st.just(modern), _message(modern))),
    st.booleans(),
    st.sampled_from(["8bit", "7bit"]),
    st.integers(0, 2**32),
)
def test_flatten_message_writes_the_generators_bytes(
    modern_message: tuple[bool, Message], utf8: bool, cte_type: str, seed: int
) -> None:
    modern, message = modern_message
    stripped = copy.deepcopy(message)
    del stripped["Bcc"]
    del stripped["Resent-Bcc"]
    random.seed(seed)
    expected = _outcome(
        _generate,
        stripped,
        _stock_policy(modern, utf8, cte_type, 78, "\r\n")
        if modern
        else _stock_policy(False, False, cte_type, 78, "\n"),
    )
    mine = copy.deepcopy(message)
    random.seed(seed)
    assert _outcome(ours.flatten_message, mine, utf8=utf8, cte_type=cte_type) == expected


# --- the shapes people send take the fast path ---------------------------------------------


def _typical() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Sender <sender@example.com>"
    message["To"] = ", ".join(f"Recipient {i} <rcpt{i}@example.com>" for i in range(100))
    message["Subject"] = "A subject"
    message.set_content("Hello\n.\nFrom here\n" * 50)
    message.add_alternative("<p>Hello</p>\n", subtype="html")
    message.add_attachment(b"\x00\x01" * 500, "application", "octet-stream", filename="a.bin")
    return message


@pytest.mark.parametrize("cte_type", ["8bit", "7bit"])
@pytest.mark.parametrize("linesep", ["\r\n", "\n"])
def test_typical_message_takes_the_fast_path(cte_type: str, linesep: str) -> None:
    message = _typical()
    policy = ours._policy(True, False, cte_type).clone(linesep=linesep)
    stock = _stock_policy(True, False, cte_type, 78, linesep)
    random.seed(1)
    got = flatten_fast(copy.deepcopy(message), policy)
    random.seed(1)
    assert got is not None
    assert got == _generate(copy.deepcopy(message), stock)
    assert got.count(linesep.encode()) > 100  # the To header was folded, the body written


def test_legacy_mime_tree_takes_the_fast_path() -> None:
    message = MIMEMultipart("mixed", boundary="BOUNDARY")
    message["From"] = "a@example.com"
    message.attach(MIMEText("From the start\nsecond line\r\nthird\rfourth\n", "plain"))
    message.attach(MIMEApplication(b"\xff" * 100))
    message.preamble = "From preamble"
    policy = ours._policy(False, False, "8bit")
    got = flatten_fast(message, policy)
    assert got is not None
    assert got == _generate(message, email.policy.compat32)
    assert b">From the start\n" in got and b">From preamble\n" in got  # mbox From_ mangling


@pytest.mark.parametrize(
    "make",
    [
        lambda: email.message_from_bytes(
            b"Content-Type: message/rfc822\n\nSubject: inner\n\nbody\n", policy=email.policy.default
        ),
        lambda: email.message_from_bytes(
            b"Content-Type: multipart/signed; boundary=b\n\n--b\n\nx\n--b--\n",
            policy=email.policy.default,
        ),
        lambda: email.message_from_bytes(
            b"Content-Type: text/plain; charset=utf-8\n\ncaf\xc3\xa9\n", policy=email.policy.default
        ),
    ],
    ids=["message-rfc822", "multipart-signed", "8bit-bytes-for-7bit"],
)
def test_other_shapes_go_to_the_stdlib(make: Callable[[], Message]) -> None:
    message = make()
    assert flatten_fast(message, ours._policy(True, False, "7bit")) is None
    assert ours.flatten_message(make(), cte_type="7bit") == _generate(
        make(), _stock_policy(True, False, "7bit", 78, "\r\n")
    )


def test_unknown_policy_or_message_class_goes_to_the_stdlib() -> None:
    class Custom(EmailMessage):
        pass

    message = Custom()
    message.set_content("x\n")
    assert flatten_fast(message, email.policy.SMTP) is None
    assert flatten_fast(EmailMessage(), object()) is None


def _empty_multipart() -> Message:
    message = EmailMessage()  # a multipart Content-Type with no payload at all
    message["Content-Type"] = "multipart/mixed; boundary=given"
    return message


def _with_epilogue() -> Message:
    message = MIMEMultipart("alternative")
    message.attach(MIMEText("text\n"))
    message.attach(MIMEText("<p>html</p>\n", "html"))
    message.preamble = "This is a MIME message."
    message.epilogue = "From the epilogue\r\nlast line"
    return message


def _headers_only() -> Message:
    message = EmailMessage()  # no body at all: the header block and its empty line
    message["Subject"] = "no body"
    return message


@pytest.mark.parametrize(
    "make",
    [_empty_multipart, _with_epilogue, _headers_only],
    ids=["no-payload", "epilogue", "headers-only"],
)
@pytest.mark.parametrize("modern", [True, False])
def test_multipart_edges_take_the_fast_path(make: Callable[[], Message], modern: bool) -> None:
    policy = ours._policy(modern, False, "8bit")
    random.seed(7)
    got = flatten_fast(make(), policy)
    random.seed(7)
    assert got is not None
    assert got == _generate(make(), _stock_policy(modern, False, "8bit", 78, policy.linesep))


def test_a_random_boundary_found_in_a_part_is_drawn_again() -> None:
    # RFC 2046 section 5.1.1: the boundary must not occur in the parts. The boundary the
    # seed gives first is put in a part's body, so a second one ("<first>.0") is needed.
    random.seed(3)
    first = email.generator.Generator._make_boundary()

    def make() -> Message:
        message = MIMEMultipart("mixed")
        message.attach(MIMEText(f"--{first}\nis in the body\n"))
        return message

    random.seed(3)
    got = flatten_fast(make(), email.policy.compat32)
    random.seed(3)
    assert got is not None
    assert got == _generate(make(), email.policy.compat32)
    assert f'boundary="{first}.0"'.encode() in got
    assert got.endswith(f"\n--{first}.0--\n".encode())


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="the generator's code of 3.10-3.13")
def test_the_own_header_loop_is_on_where_the_generator_is_known() -> None:
    # Python 3.10-3.13 have the same BytesGenerator._write_headers: the header block is
    # written by _flatten's loop. (Also keeps the mutation run honest: a mutated or
    # trampolined copy of that code would turn the loop off for every mutant.)
    assert _flatten._PLAIN_HEADER_WRITER is True


@pytest.mark.parametrize("plain", [True, False], ids=["own-loop", "generator"])
@pytest.mark.parametrize("modern", [True, False])
def test_both_header_writers_give_the_generators_bytes(
    plain: bool, modern: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The header block is written by _flatten's own loop when the installed
    # BytesGenerator._write_headers is the 3.10-3.13 code, else by the installed method:
    # both must give the generator's bytes, whichever this Python has.
    monkeypatch.setattr(_flatten, "_PLAIN_HEADER_WRITER", plain)
    message = _typical() if modern else MIMEMultipart("mixed", boundary="B")
    if not modern:
        message["Subject"] = "legacy " * 20
        message.attach(MIMEText("one\n"))
        message.attach(MIMEText("two\n"))
    for linesep in ("\r\n", "\n"):
        policy = ours._policy(modern, False, "8bit").clone(linesep=linesep)
        random.seed(2)
        got = flatten_fast(copy.deepcopy(message), policy)
        random.seed(2)
        assert got is not None
        stock = _stock_policy(modern, False, "8bit", 78, linesep)
        assert got == _generate(copy.deepcopy(message), stock)


def _compiled(source: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<test>", "exec"), namespace)  # a fixed source: two functions to compare
    return namespace["f"]


def test_same_code_compares_bytecode_names_and_constants() -> None:
    code = "def f(self, msg):\n    for h, v in msg.raw_items():\n        self.write(h, 1)\n"
    assert _flatten._same_code(_compiled(code), _compiled(code))
    assert not _flatten._same_code(_compiled(code), _compiled(code.replace("for h, v", "for v, h")))
    assert not _flatten._same_code(_compiled(code), _compiled(code.replace("write", "writes")))
    assert not _flatten._same_code(_compiled(code), _compiled(code.replace("h, 1", "h, 2")))
    # Something without bytecode (a C method, None) is never the same code.
    for other in (None, str.join):
        assert not _flatten._same_code(_compiled(code), other)
        assert not _flatten._same_code(other, _compiled(code))
        assert not _flatten._same_code(other, other)


@pytest.mark.parametrize("modern", [True, False])
def test_parsed_8bit_bytes_take_the_fast_path_when_8bit_is_allowed(modern: bool) -> None:
    # Undecodable bytes of a parsed message are held as surrogate escapes and written back
    # as they came (RFC 6152 8BITMIME), in the body and in a multipart's preamble.
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\ncaf\xc3\xa9 preamble\n--b\n"
        b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        b"caf\xc3\xa9\r\n\xff\n--b--\n"
    )
    policy_in = email.policy.default if modern else email.policy.compat32

    def make() -> Message:
        return email.message_from_bytes(raw, policy=policy_in)

    policy = ours._policy(modern, False, "8bit")
    got = flatten_fast(make(), policy)
    assert got is not None
    assert got == _generate(make(), _stock_policy(modern, False, "8bit", 78, policy.linesep))
    assert b"caf\xc3\xa9" in got and b"\xff" in got


def test_each_part_keeps_its_own_policy() -> None:
    # Generator.flatten gives the message its policy while writing, then restores it.
    message = _typical()
    before = [part.policy for part in message.walk()]
    assert flatten_fast(message, email.policy.SMTP.clone(linesep="\n")) is not None
    assert all(part.policy is old for part, old in zip(message.walk(), before, strict=True))


def test_a_message_that_writes_its_own_headers_goes_to_the_stdlib() -> None:
    # Generator._write calls a message's own _write_headers(generator) when it has one.
    def make() -> Message:
        message = EmailMessage()
        message["Subject"] = "ignored"
        message.set_content("body\n")
        message._write_headers = lambda generator: generator.write("X-Own: yes\n\n")  # type: ignore[attr-defined]
        return message

    assert flatten_fast(make(), ours._policy(True, False, "8bit")) is None
    flat = ours.flatten_message(make())
    assert flat == _generate(make(), _stock_policy(True, False, "8bit", 78, "\r\n"))
    assert flat.startswith(b"X-Own: yes\n\n")


class _CountingPolicy(ours._OneLineFoldPolicy):
    """fastsmtp's flattening policy, counting how each header is folded."""

    calls: ClassVar[list[str]] = []

    @staticmethod
    def fastsmtp_fold_header(value: Any, max_line_length: int | None, linesep: str) -> Any:
        _CountingPolicy.calls.append(f"text:{value.name}")
        return ours.fold_header(value, max_line_length, linesep)

    def fold_binary(self, name: str, value: Any) -> bytes:
        _CountingPolicy.calls.append(f"binary:{name}")
        return super().fold_binary(name, value)


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="fast path off on unverified versions")
def test_each_header_takes_the_shortest_way_that_gives_the_generators_bytes() -> None:
    # The header block of a message: headers that fit on their line are written by the
    # core, a longer one by fold_text (fastsmtp's fold), one fastsmtp leaves to the stdlib
    # (non-ASCII here) and every header after it by the policy's fold_binary.
    base = email.policy.SMTP
    policy = _CountingPolicy(**{**vars(base), "header_factory": base.header_factory})

    def message() -> EmailMessage:
        m = EmailMessage()
        m["Subject"] = "hello there"
        m["To"] = "Ann <a@example.com>, b@example.com"
        m["X-Long"] = "word " * 30
        m["X-Accent"] = "h\u00e9llo"
        m["X-After"] = "fits"
        return m

    _CountingPolicy.calls.clear()
    first = flatten_fast(message(), policy)  # learns the header classes and names
    assert first is not None and first == _generate(message(), base)
    _CountingPolicy.calls.clear()
    second = flatten_fast(message(), policy)
    assert second == first
    assert _CountingPolicy.calls == [
        "text:X-Long",
        "text:X-Accent",
        "binary:X-Accent",
        "binary:X-After",
    ]
    assert _flatten._Writer(policy).fold_text is _CountingPolicy.fastsmtp_fold_header
    assert _flatten._Writer(ours._policy(True, False, "8bit")).fold_text is ours.fold_header
    assert _flatten._Writer(base).fold_text is None
