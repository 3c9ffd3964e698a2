"""fastsmtp.email: same results as aiosmtplib.email, plus the header-injection guards."""

from __future__ import annotations

import copy
import email.policy
import inspect
from collections.abc import Callable
from email import message_from_bytes, message_from_string
from email.header import Header
from email.headerregistry import Address, Group
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

import aiosmtplib.email as reference
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastsmtp.email as ours
from fastsmtp.email import check_header_block, check_message_headers
from fastsmtp.errors import HeaderInjectionError, HeaderNameEncodeError


def outcome(func: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """The result, or the exception type and message, of ``func(*args, **kwargs)``."""
    try:
        return ("ok", func(*args, **kwargs))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


PUBLIC = (
    "parse_address",
    "quote_address",
    "flatten_message",
    "extract_recipients",
    "extract_sender",
    "extract_addresses",
)


def test_all_matches() -> None:
    assert ours.__all__ == reference.__all__


@pytest.mark.parametrize("name", PUBLIC)
def test_signatures_match(name: str) -> None:
    theirs = inspect.signature(getattr(reference, name))
    mine = inspect.signature(getattr(ours, name))
    assert [(p.name, p.kind, p.default) for p in mine.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()
    ]


ADDRESSES = [
    "a@b.com",
    "<a@b.com>",
    "Name <a@b.com>",
    '"Quoted, Name" <a@b.com>',
    '"a b"@x',
    '""',
    "",
    "  ",
    "<>",
    "a@b.com> RET=FULL",
    "a b@c",
    '"a" b@c',
    'x"y@z',
    '"a\\"b"@c',
    "me",
    "a@b.com\r\nRCPT",
    "a\tb",
    '"a b" <c@d>',
    '"unterminated@x',
    "a@b, c@d",
    "(comment) a@b",
    "a@b (comment)",
    '"a""b"@c',
    '"a b"',
    '<"a b"@c>',
    '""@x',
    'a."b c"@d',
    "@",
    "a@b@c",
    "<a@b> SIZE=1",
    "x <y>",
    "é@x.com",
    '"a"@"b"',
    '"a<b"@c',
    '"a\nb"@c',
    '"a\\ b"@c',
    "a\xa0b@c",
    "a\u2028b@c",
    "a\x0bb@c",
    "a\x00b@c",
    "a\x7fb@c",
    '"a"',
    '"a" ',
    'x"a"@b',
    '"a"x"@b',
    '"a\\"',
    '"\\""@c',
    '"a" "b"@c',
    '" "',
    '"a"@b c',
    '"a"@b<c',
    '"a\\\\"@c',
    '"a\tb"@c',
    '"a\rb"@c',
    '"a\\\nb"@c',
    '"a\xa0b"@c',
    "Jörg <jörg@bücher.de>",
    "=?utf-8?q?J=C3=B6rg?= <j@x>",
    "undisclosed-recipients:;",
    "grp: a@b, c@d;",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_parse_and_quote_address(address: str) -> None:
    assert outcome(ours.parse_address, address) == outcome(reference.parse_address, address)
    assert outcome(ours.quote_address, address) == outcome(reference.quote_address, address)


ADDRESS_TEXT = st.text(
    alphabet=st.sampled_from([*list('ab@.<>" \\,;:()\t\r\n\x00é\xa0[]='), "\u2028"]),
    max_size=20,
)


@settings(max_examples=600)
@given(ADDRESS_TEXT)
def test_parse_address_differential(address: str) -> None:
    assert outcome(ours.parse_address, address) == outcome(reference.parse_address, address)
    assert outcome(ours.extract_addresses, address) == outcome(reference.extract_addresses, address)


HEADERS = [
    "a@b, c@d",
    'Name <a@b>, "X, Y" <c@d>',
    "me",
    "",
    "a@b, me",
    "a b@c",
    "undisclosed-recipients:;",
    "grp: a@b, c@d;",
    '"a b"@c, d@e',
    "a@b.com> RET=FULL",
    "<>",
    ",,",
    "a@b,,c@d",
    Header("a@b, c@d"),
    Header("Néme <a@b>", "utf-8"),
    Header("me"),
    Header(""),
    Header("a b@c"),
    Address("N", "a", "b.com"),
    Address("", "q r", "s.t"),
    Group("g", [Address("N", "a", "b.com")]),
    5,
    None,
    b"a@b",
    ["a@b"],
]


def _header_id(header: Any) -> str:
    # repr() of a Header shows its memory address, and pytest escapes a backslash or a
    # non-ASCII character of an explicit id again on each collection in one process
    # (mutation testing collects more than once): a stable, plain ASCII id.
    if isinstance(header, Header):
        return "Header:" + str(header).encode("ascii", "replace").decode()
    return repr(header)


@pytest.mark.parametrize("header", HEADERS, ids=_header_id)
def test_extract_addresses(header: Any) -> None:
    assert outcome(ours.extract_addresses, header) == outcome(reference.extract_addresses, header)


def _message(cls: type[Message], headers: list[tuple[str, Any]]) -> Message:
    message = cls()
    for name, value in headers:
        message[name] = value
    return message


HEADER_SETS: list[list[tuple[str, Any]]] = [
    [("From", "a@b")],
    [("From", "")],
    [("From", "N <a@b>, c@d")],
    [("Sender", "s@x"), ("From", "f@x")],
    [("Sender", ""), ("From", "f@x")],
    [("Resent-Date", "Mon"), ("From", "f@x")],
    [("Resent-Date", "Mon"), ("Resent-From", "rf@x"), ("From", "f@x")],
    [("Resent-Date", "Mon"), ("Resent-Sender", "rs@x"), ("Resent-From", "rf@x")],
    [("Resent-Date", "Mon"), ("Resent-Date", "Tue"), ("From", "f@x")],
    [("From", "me")],
    [("From", "undisclosed-recipients:;")],
    [],
    [("To", "a@b"), ("Cc", "c@d"), ("Bcc", "e@f")],
    [
        ("Resent-Date", "x"),
        ("To", "a@b"),
        ("Resent-To", "r@t"),
        ("Resent-Bcc", "rb@x"),
        ("Resent-Cc", "rc@x"),
    ],
    [("To", "")],
    [("To", "me, a@b")],
    [("To", '"Quoted, Name" <q@x>, Other <o@y>'), ("Cc", "grp: g1@x, g2@y;")],
    [("From", "Jörg <jörg@bücher.de>"), ("To", "用户 <用户@例子.广告>")],
    [("From", '"a b"@c'), ("To", '"x y"@z')],
]
LEGACY_ONLY: list[list[tuple[str, Any]]] = [
    [("To", "a@b"), ("Cc", "c@d"), ("Bcc", "e@f"), ("To", "g@h"), ("Bcc", "i@j")],
    [("From", Header("Néme <a@b>", "utf-8")), ("To", Header("x@y, z@w"))],
    [("From", Header("a b@c"))],
]


def _corpus() -> list[Message]:
    messages: list[Message] = []
    for headers in HEADER_SETS:
        messages.append(_message(Message, headers))
        messages.append(_message(EmailMessage, headers))
    for headers in LEGACY_ONLY:
        messages.append(_message(Message, headers))
    raw = (
        b"From: Sender <s@x>\nTo: a@b\nTo: c@d\nCc: e@f\nBcc: hidden@x\nResent-Bcc: rb@x\n"
        b"Subject: h\xc3\xa9\nContent-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: 8bit\n\nFrom the start\nh\xc3\xa9llo\n.\n"
    )
    messages.append(message_from_bytes(raw))
    messages.append(message_from_bytes(raw, policy=email.policy.default))
    messages.append(message_from_bytes(raw, _class=EmailMessage))
    messages.append(message_from_string(raw.decode("utf-8")))
    text = MIMEText("From x\nhéllo\n", "plain", "utf-8")
    text["Subject"] = "Héllo"
    text["Resent-Bcc"] = "z@z"
    text["From"] = "f@x"
    messages.append(text)
    multipart = MIMEMultipart()
    multipart["From"] = "f@x"
    multipart["To"] = "t@x"
    multipart["Bcc"] = "b@x"
    multipart.attach(MIMEText("part one"))
    multipart.attach(MIMEText("part twö", "plain", "utf-8"))
    multipart.set_boundary("BOUNDARY")
    messages.append(multipart)
    modern = EmailMessage()
    modern["From"] = "Jörg <jörg@bücher.de>"
    modern["To"] = "Jösé <j@x>, b@y"
    modern["Bcc"] = "secret@x"
    modern["Subject"] = "Héllo " + "word " * 30
    modern.set_content("hé" * 50 + "\nFrom here\n.\n")
    messages.append(modern)
    attached = EmailMessage()
    attached["From"] = "f@x"
    attached.set_content("plain body\n")
    attached.add_alternative("<p>html</p>", subtype="html")
    attached.add_attachment(
        b"\x00\x01binary", maintype="application", subtype="octet-stream", filename="x.bin"
    )
    for number, part in enumerate(attached.walk()):
        if part.is_multipart():
            part.set_boundary(f"BOUNDARY-{number}")
    messages.append(attached)
    old_policy = EmailMessage(policy=email.policy.compat32)
    old_policy["Subject"] = "word " * 30
    old_policy.set_payload("From x\nhi\n")
    messages.append(old_policy)
    default_policy_legacy = Message(policy=email.policy.default)
    default_policy_legacy["Subject"] = "word " * 30
    default_policy_legacy["Bcc"] = "b@c"
    default_policy_legacy.set_payload("From x\nhi\n")
    messages.append(default_policy_legacy)
    narrow = EmailMessage(policy=email.policy.default.clone(max_line_length=30))
    narrow["Subject"] = "word " * 30
    narrow.set_content("x")
    messages.append(narrow)
    return messages


CORPUS = _corpus()


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_extract_sender_and_recipients(index: int) -> None:
    message = CORPUS[index]
    assert outcome(ours.extract_sender, message) == outcome(reference.extract_sender, message)
    assert outcome(ours.extract_recipients, message) == outcome(
        reference.extract_recipients, message
    )


@pytest.mark.parametrize("index", range(len(CORPUS)))
@pytest.mark.parametrize(
    ("utf8", "cte_type"), [(False, "8bit"), (True, "8bit"), (False, "7bit"), (True, "7bit")]
)
def test_flatten_message(index: int, utf8: bool, cte_type: str) -> None:
    theirs_input = copy.deepcopy(CORPUS[index])
    mine_input = copy.deepcopy(CORPUS[index])
    before = [(name, str(value)) for name, value in mine_input.raw_items()]
    theirs = outcome(reference.flatten_message, theirs_input, utf8=utf8, cte_type=cte_type)
    mine = outcome(ours.flatten_message, mine_input, utf8=utf8, cte_type=cte_type)
    assert mine == theirs
    if mine[0] == "ok":
        assert b"\nBcc:" not in mine[1] and b"\nResent-Bcc:" not in mine[1]
        check_header_block(mine[1])
    # the caller's message keeps its Bcc headers
    assert [(name, str(value)) for name, value in mine_input.raw_items()] == before


class _LayeredMessage(EmailMessage):
    """A message class that keeps some headers outside ``_headers``: its ``keys()``,
    ``raw_items()`` and ``__delitem__`` see both layers."""

    def __init__(self) -> None:
        super().__init__()
        self.layer: list[tuple[str, str]] = []

    def keys(self) -> list[str]:
        return [*super().keys(), *(name for name, _ in self.layer)]

    def raw_items(self) -> Any:
        return iter([*super().raw_items(), *self.layer])

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        # Rebinds, as Message.__delitem__ does: a copy's deletion leaves the original.
        self.layer = [(k, v) for k, v in self.layer if k.lower() != name.lower()]


def test_flatten_message_reads_a_subclasss_header_names_from_its_keys() -> None:
    # A Bcc that only the class's own keys() reports is removed as well.
    message = _LayeredMessage()
    message["From"] = "s@example.com"
    message["Subject"] = "hi"
    message.layer = [("Bcc", "hidden@example.com"), ("X-Layer", "1")]
    message.set_content("body\n")
    flat = ours.flatten_message(message)
    assert b"hidden" not in flat and b"\r\nX-Layer: 1\r\n" in flat
    assert flat == ours.flatten_message(message)  # the caller's message keeps its layer
    assert message.layer == [("Bcc", "hidden@example.com"), ("X-Layer", "1")]


def test_check_message_headers_reads_a_subclasss_own_raw_items() -> None:
    # The fast form reads _headers only where raw_items() is Message's: a class with its
    # own raw_items() is checked on what that gives (what the generator writes).
    message = _LayeredMessage()
    message["Subject"] = "hi"
    message.layer = [("X-Layer", "ok")]
    check_message_headers(message)
    message.layer = [("X-Layer", "a\r\nBcc: victim@example.com")]
    with pytest.raises(HeaderInjectionError, match="X-Layer"):
        check_message_headers(message)
    message.layer = [("X Layer", "ok")]
    with pytest.raises(HeaderInjectionError):
        check_message_headers(message)


def _fetch_parse(name: str, value: str) -> Any:
    return email.policy.default.header_fetch_parse(name, value)


class _PlainFetchPolicy(email.policy.EmailPolicy):
    # A header_fetch_parse of its own (here a plain function, with no __func__).
    header_fetch_parse = staticmethod(_fetch_parse)


def test_the_address_fields_are_read_in_one_pass_only_from_a_plain_email_message() -> None:
    # extract_sender/extract_recipients read the address fields of an exact EmailMessage
    # with EmailPolicy's header_fetch_parse in one pass; anything else goes through the
    # get_all accessors (the reference reading, which gives the same addresses).
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["Subject"] = "s"
    message["to"] = "b@example.com"
    message["Cc"] = "c@example.com"
    found = ours._address_fields(message)
    assert found is not None
    fields, fetch = found
    assert fields == {
        "from": [("From", "a@example.com")],
        "to": [("to", "b@example.com")],
        "cc": [("Cc", "c@example.com")],
    }
    assert fetch == message.policy.header_fetch_parse
    assert ours.extract_sender(message) == "a@example.com"
    assert ours.extract_recipients(message) == ["b@example.com", "c@example.com"]

    legacy = Message()
    legacy["From"] = "a@example.com"
    assert ours._address_fields(legacy) is None

    class Mine(EmailMessage):
        pass

    assert ours._address_fields(Mine()) is None
    own_fetch = EmailMessage(policy=_PlainFetchPolicy())
    own_fetch["From"] = "a@example.com"
    assert ours._address_fields(own_fetch) is None
    assert ours.extract_sender(own_fetch) == "a@example.com"
    odd_name = EmailMessage()
    odd_name["From"] = "a@example.com"
    odd_name._headers.append((b"To", "b@example.com"))  # type: ignore[attr-defined]
    assert ours._address_fields(odd_name) is None


def test_flatten_message_line_endings() -> None:
    modern = EmailMessage()
    modern["Subject"] = "x"
    modern.set_content("a\nb\n")
    assert b"\r\n" in ours.flatten_message(modern)
    legacy = Message()
    legacy["Subject"] = "x"
    legacy.set_payload("a\nb\n")
    assert b"\r" not in ours.flatten_message(legacy)


# --- header injection (security.md §9) -----------------------------------------------------

INJECTIONS = [
    "x\r\nBcc: evil@x",
    "x\nBcc: evil@x",
    "x\r\n\r\nBcc: evil@x",
    "x\rBcc: evil@x",
    "x\nX-Injected: 1\n",
    "x\r\n\r\nInjected body",
    "x\r\nBcc evil@x",
    "x\n\n",
]


def _flatten_or_refuse(build: Callable[[], Message]) -> bytes | None:
    """Build and flatten a message as send_message would; None when something refused it."""
    try:
        message = build()
        check_message_headers(message)
        flat = ours.flatten_message(message)
        check_header_block(flat)
    except (ValueError, email.errors.HeaderParseError):
        return None
    return flat


def _no_injected_line(flat: bytes) -> None:
    header_block = flat.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    for line in header_block.replace(b"\r", b"\n").split(b"\n"):
        assert not line.startswith((b"Bcc", b"X-Injected", b"Injected")), flat
    body = flat.replace(b"\r\n", b"\n").split(b"\n\n", 1)[-1]
    assert b"Injected" not in body or b"Subject" not in body, flat
    assert b"Bcc: evil" not in body, flat


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize("cls", [EmailMessage, Message])
@pytest.mark.parametrize("where", ["Subject", "display name"])
def test_header_injection_never_passes(value: str, cls: type[Message], where: str) -> None:
    def build() -> Message:
        message = cls()
        message["From"] = "f@x"
        if where == "Subject":
            message["Subject"] = value
        else:
            message["To"] = f'"Na{value}me" <to@x>'
        message["X-After"] = "still a header"
        message.set_payload("body\n")
        return message

    flat = _flatten_or_refuse(build)
    if flat is None:
        return
    _no_injected_line(flat)
    # nothing was pushed out of the header block
    header_block = flat.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    assert b"X-After: still a header" in header_block, flat


def test_trailing_crlf_subject_is_refused() -> None:
    # On Python 3.10-3.12 policy.SMTP writes this CRLF verbatim and the header block ends
    # after the Subject; check_message_headers catches what the flattened bytes cannot show.
    message = EmailMessage()
    message["Subject"] = "x\r\n"
    message["From"] = "f@x"
    message.set_content("body")
    with pytest.raises(ValueError, match="Subject"):
        check_message_headers(message)


def test_legitimate_folding_is_accepted() -> None:
    message = Message()
    message["Subject"] = "x\r\n continued"
    message["To"] = "a" + " " * 200 + "b"
    check_message_headers(message)
    check_header_block(ours.flatten_message(message))
    parsed = message_from_bytes(b"Subject: a\n\tfolded\nTo: x@y\n\nbody")
    check_message_headers(parsed)
    check_header_block(ours.flatten_message(parsed))


@pytest.mark.parametrize(
    ("flat", "line"),
    [
        (b"Subject: x\r\nBcc evil\r\n\r\nbody", 2),
        (b"Subject: x\nno colon here\n\nbody", 2),
        (b" folded first\r\nSubject: x\r\n\r\n", 1),
        (b"Subject: x\rInjected line\r\n\r\n", 2),
        (b"Bad Name: x\r\n\r\n", 1),
        (b": empty name\r\n\r\n", 1),
        (b"Subject: x\r\nTo: y\r\n\x00Evil: z\r\n\r\n", 3),
        (b'To: "Na\nme" <a@b.com>\n\nbody', 2),
        (b"Subject: x", None),
    ],
)
def test_check_header_block(flat: bytes, line: int | None) -> None:
    if line is None:
        check_header_block(flat)
        return
    with pytest.raises(ValueError, match=rf"line {line}\b"):
        check_header_block(flat)


@pytest.mark.parametrize(
    "flat",
    [
        b"",
        b"\r\n",
        b"Subject: x\r\n\r\nbody\r\nnot a header: but body\r\n",
        b"Subject: x\r\n \r\n\tcontinued\r\nX-A:b\r\n\r\n",
        b"Subject: x\nTo: y\n\n\n",
        b"Subject: h\xc3\xa9\r\n\r\n",
    ],
)
def test_check_header_block_accepts(flat: bytes) -> None:
    check_header_block(flat)


@given(st.text(alphabet=st.sampled_from(list("ab: \r\n\t\x00é")), max_size=30))
def test_subject_fuzz_never_injects(value: str) -> None:
    for cls in (EmailMessage, Message):

        def build(cls: type[Message] = cls) -> Message:
            message = cls()
            message["Subject"] = value
            message["X-After"] = "still a header"
            message.set_payload("body\n")
            return message

        flat = _flatten_or_refuse(build)
        if flat is None:
            continue
        header_block = flat.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
        assert b"X-After: still a header" in header_block, flat
        for number, line in enumerate(header_block.replace(b"\r", b"\n").split(b"\n")):
            assert (line.startswith((b" ", b"\t")) and number > 0) or b":" in line, flat


_NOT_A_FIELD_NAME = "is not an RFC 5322 field-name (printable ASCII characters other than ':')"


@pytest.mark.parametrize("check", [check_message_headers, ours._check_message_headers_reference])
@pytest.mark.parametrize(
    ("name", "start"),
    [("Sübject", 1), ("Subjëct", 4), ("X-\x7fü", 3), ("Zoë", 2), ("\u2603", 0)],
)
def test_a_non_ascii_header_name_is_the_unicode_error_of_its_first_such_character(
    check: Callable[[Message], None], name: str, start: int
) -> None:
    # What the email generator raises for it (a UnicodeEncodeError naming the character),
    # and a HeaderInjectionError; a DEL before it is ASCII, refused but not the one named.
    message = Message()
    message[name] = "v"
    with pytest.raises(HeaderNameEncodeError) as caught:
        check(message)
    error = caught.value
    assert isinstance(error, UnicodeEncodeError) and isinstance(error, HeaderInjectionError)
    assert (error.encoding, error.object, error.start, error.end) == (
        "ascii",
        name,
        start,
        start + 1,
    )
    reason = f"header name {_NOT_A_FIELD_NAME}"
    assert error.reason == reason
    assert str(error) == str(UnicodeEncodeError("ascii", name, start, start + 1, reason))
    assert f"position {start}:" in str(error)


@pytest.mark.parametrize("check", [check_message_headers, ours._check_message_headers_reference])
@pytest.mark.parametrize("name", ["X Y", "X:Y", "X-\x7f", "", "X-A\r\nBcc", b"X-Bytes", 1])
def test_an_ascii_or_non_string_header_name_is_a_header_injection_error(
    check: Callable[[Message], None], name: object
) -> None:
    message = Message()
    message._headers.append((name, "v"))  # type: ignore[attr-defined]
    with pytest.raises(HeaderInjectionError) as caught:
        check(message)
    assert type(caught.value) is HeaderInjectionError  # not a UnicodeEncodeError
    assert str(caught.value) == f"Header name {name!r} {_NOT_A_FIELD_NAME}"


def test_the_set_of_names_found_good_is_bounded() -> None:
    # Names found well-formed are remembered, at most 1024 of them; names past that are
    # still checked (and a bad one refused) each time.
    saved = set(ours._GOOD_NAMES)
    ours._GOOD_NAMES.clear()
    try:
        message = EmailMessage()
        for number in range(1100):
            message[f"X-N{number}"] = "v"
        check_message_headers(message)
        assert len(ours._GOOD_NAMES) == 1024
        assert {f"X-N{number}" for number in range(1024)} == ours._GOOD_NAMES
        message["X Bad"] = "v"
        with pytest.raises(HeaderInjectionError):
            check_message_headers(message)
    finally:
        ours._GOOD_NAMES.clear()
        ours._GOOD_NAMES.update(saved)
