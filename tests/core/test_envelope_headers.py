"""The fast envelope-from-headers path returns what the reference path returns.

``extract_sender``, ``extract_recipients`` and ``check_message_headers`` read an
``EmailMessage``'s header list in one pass and compute each ``addr_spec`` from the
``Address`` parts (fastsmtp.email); the ``_reference`` forms are the code they replace,
through the email package's accessors. Generated messages (EmailMessage built, parsed or
given Address objects; compat32 Message; display names, quoted and non-ASCII local parts,
groups, empty domains, Resent- blocks, Bcc/Resent-Bcc, duplicate and odd-case headers, line
breaks) must give the same strings in the same order, or the same exception and message.
"""

from __future__ import annotations

import email
import email.message
import email.policy
from collections.abc import Callable
from email.headerregistry import Address, Group
from email.message import EmailMessage
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsmtp import email as fe
from fastsmtp._commands import mail_line
from fastsmtp._envelope import message_envelope

_LOCAL = st.sampled_from(
    ["a", "r1", "first.last", "x+tag", "o'neil", '"a b"', '"a\\"b"', "zoë", "a..b", '"q"', ""]
)
_DOMAIN = st.sampled_from(["example.com", "b", "bücher.de", "[127.0.0.1]", "", "x.y"])
_DISPLAY = st.sampled_from(["", "Ann", '"Doe, J"', "Zoë", "=?utf-8?q?Zo=C3=AB?=", "(c) A"])


@st.composite
def _mailbox(draw: st.DrawFn) -> str:
    local, domain, name = draw(_LOCAL), draw(_DOMAIN), draw(_DISPLAY)
    spec = f"{local}@{domain}" if domain else local
    if name:
        return f"{name} <{spec}>"
    return spec


@st.composite
def _address_value(draw: st.DrawFn) -> str:
    items = draw(st.lists(_mailbox(), max_size=6))
    if draw(st.booleans()):
        group = draw(st.lists(_mailbox(), max_size=3))
        items.insert(draw(st.integers(0, len(items))), f"G: {', '.join(group)};")
    junk = draw(st.sampled_from(["", "<>", "undisclosed-recipients:;", "@b", "a@", ",,", "\t"]))
    if junk:
        items.append(junk)
    return ", ".join(items)


_NAMES = st.sampled_from(
    [
        "From",
        "Sender",
        "To",
        "Cc",
        "Bcc",
        "to",
        "CC",
        "Resent-From",
        "Resent-Sender",
        "Resent-To",
        "Resent-Cc",
        "Resent-Bcc",
        "Resent-Date",
        "resent-to",
        "Subject",
        "X-Other",
    ]
)


def _header_value(draw: st.DrawFn, name: str) -> str:
    if name.lower() == "resent-date":
        return draw(st.sampled_from(["Sun, 22 Nov 2026 10:00:00 +0000", "garbage"]))
    value = draw(st.one_of(_address_value(), st.sampled_from(["hi", "café", "a\r\n b"])))
    if draw(st.integers(0, 20)) == 0:
        value += draw(st.sampled_from(["\r\nX-Injected: 1", "\n", "\r\n"]))
    return value


def _address_object(draw: st.DrawFn) -> Address | Group | str:
    kind = draw(st.integers(0, 3))
    if kind == 3:
        return draw(_mailbox())  # a plain string in a sequence (aiosmtplib's case too)
    address = Address(draw(_DISPLAY), draw(_LOCAL), draw(_DOMAIN))
    if kind == 2:
        return Group("G", [address])
    return address


@st.composite
def _message(draw: st.DrawFn) -> email.message.Message:
    kind = draw(st.sampled_from(["modern", "parsed", "compat32", "objects"]))
    headers = [(draw(_NAMES), None) for _ in range(draw(st.integers(0, 8)))]
    fields = [(name, _header_value(draw, name)) for name, _ in headers]
    if kind == "parsed":
        text = "".join(f"{name}: {value}\r\n" for name, value in fields) + "\r\nbody\r\n"
        return email.message_from_bytes(text.encode(), policy=email.policy.default)
    message: email.message.Message
    message = email.message.Message() if kind == "compat32" else email.message.EmailMessage()
    for name, value in fields:
        item: Any = value
        if kind == "objects" and name.lower() not in ("subject", "x-other", "resent-date"):
            item = [_address_object(draw) for _ in range(draw(st.integers(1, 3)))]
        try:
            message[name] = item
        except Exception:  # the email package refuses it (e.g. a second To): not added
            continue
    return message


def _outcome(function: Callable[[Any], Any], message: email.message.Message) -> Any:
    try:
        return ("returned", function(message))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_message())
def test_extraction_matches_reference(message: email.message.Message) -> None:
    assert _outcome(fe.extract_sender, message) == _outcome(fe._extract_sender_reference, message)
    assert _outcome(fe.extract_recipients, message) == _outcome(
        fe._extract_recipients_reference, message
    )
    assert _outcome(fe.check_message_headers, message) == _outcome(
        fe._check_message_headers_reference, message
    )


def _envelope_reference(message: email.message.Message) -> tuple[str, list[str]]:
    """``message_envelope(message, None, None)`` as written before, on the references."""
    fe._check_message_headers_reference(message)
    sender = fe._extract_sender_reference(message)
    if sender is None:
        raise ValueError("No From header provided in message")
    recipients = fe._extract_recipients_reference(message)
    if not recipients:
        raise ValueError("No recipient headers provided in message")
    utf8 = not sender.isascii() or any(not r.isascii() for r in recipients)
    mail_line(sender, None, "utf-8" if utf8 else "ascii")
    return sender, recipients


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_message())
def test_message_envelope_matches_reference(message: email.message.Message) -> None:
    assert _outcome(lambda m: message_envelope(m, None, None), message) == _outcome(
        _envelope_reference, message
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.builds(Address, _DISPLAY, _LOCAL, _DOMAIN), min_size=1, max_size=8))
def test_addr_specs_match_the_property(addresses: list[Address]) -> None:
    assert fe._addr_specs(tuple(addresses)) == [a.addr_spec for a in addresses]


def test_multipart_and_odd_names_match_reference() -> None:
    outer = email.message.EmailMessage()
    outer["From"] = "a@example.com"
    outer["To"] = "b@example.com"
    outer.set_content("text")
    outer.add_attachment(b"data", maintype="application", subtype="octet-stream")
    assert fe.check_message_headers(outer) is None
    inner = next(part for part in outer.walk() if part is not outer)
    inner._headers.append(("X-Bad\r\nName", "1"))  # type: ignore[attr-defined]
    for bad in (outer, inner):
        assert _outcome(fe.check_message_headers, bad) == _outcome(
            fe._check_message_headers_reference, bad
        )
        assert _outcome(fe.check_message_headers, bad)[0] == "raised"
    legacy = email.message.Message()
    legacy._headers.append((1, "x"))  # type: ignore[attr-defined]
    legacy["Zoë"] = "x"
    assert _outcome(fe.check_message_headers, legacy) == _outcome(
        fe._check_message_headers_reference, legacy
    )


class _Subclass(email.message.EmailMessage):
    def get_all(self, name: str, failobj: Any = None) -> Any:
        return ["Other <o@example.com>"] if name.lower() == "to" else failobj


def test_subclass_takes_the_reference_path() -> None:
    message = _Subclass()
    message["To"] = "r@example.com"
    assert fe.extract_recipients(message) == ["o@example.com"]


def test_extract_addresses_of_a_sequence_mixing_address_objects_and_strings() -> None:
    # A sequence assigned to an address header keeps its items (Address objects and
    # strings): each is read on its own, the objects by addr_spec, the strings parsed.
    message = EmailMessage()
    message["To"] = (
        Address("Ann", "a", "example.com"),
        "Bob <b@example.com>",
        Address("", "c d", "example.com"),
    )
    header = message["To"]
    assert fe.extract_addresses(header) == ["a@example.com", "b@example.com", '"c d"@example.com']
    assert fe.extract_recipients(message) == ["a@example.com", "b@example.com", '"c d"@example.com']


class _Alnum(str):
    """A str subclass that calls itself alphanumeric whatever it holds."""

    def isalnum(self) -> bool:
        return True


def test_address_parts_that_are_not_exact_str_are_read_by_the_stdlib() -> None:
    # The one-pass addr_spec trusts only exact str parts; anything else goes through
    # Address.addr_spec (which quotes the local part by its own reading).
    for user, domain in ((_Alnum("a b"), "example.com"), ("a b", _Alnum("example.com"))):
        address = Address(username=user, domain=domain)
        assert fe._addr_specs((address,)) is None
        assert fe._addr_specs((address, Address(username="x", domain="example.com"))) is None
    assert fe._addr_specs((Address(username="a b", domain="example.com"),)) == ['"a b"@example.com']
