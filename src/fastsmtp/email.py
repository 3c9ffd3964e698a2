"""Message helpers with aiosmtplib's API: address extraction, quoting and flattening.

The public functions return what aiosmtplib 5.1.3 returns for the same input on the same
Python version (they deliberately use the same stdlib parsers, ``email.utils.parseaddr`` and
``getaddresses``, whose results vary between Python releases). The strict RFC 5321 grammar
used for the SMTP envelope lives in ``fastsmtp._address``; ``check_header_block`` and
``check_message_headers`` are fastsmtp's header-injection guards (not in aiosmtplib).
"""

from __future__ import annotations

import copy
import email._header_value_parser
import email.charset
import email.generator
import email.header
import email.headerregistry
import email.message
import email.policy
import email.utils
import functools
import io
import operator
import re
from collections.abc import Iterable
from typing import Any

from ._flatten import flatten_fast
from ._folding import fold_header
from ._speedups import header_block_well_formed
from .errors import HeaderInjectionError, HeaderNameEncodeError

__all__ = (
    "extract_recipients",
    "extract_sender",
    "flatten_message",
    "parse_address",
    "quote_address",
)

# aiosmtplib.email's public constants, for code that imports them (fastsmtp's own envelope
# checks are the RFC 5321 grammar in _address): characters that cannot stand unquoted in an
# address, characters to escape in a quoted-string, a leading quoted local part, RFC 5322
# specials, and a UTF-8 ``Charset``.
ADDRESS_INJECTION_REGEX = re.compile(r'[\s<>"]')
ESCAPES_REGEX = re.compile(r'[\\"]')
QUOTED_LOCAL_PART_REGEX = re.compile(r'^"(?:[^"\\\r\n]|\\.)*"')
SPECIALS_REGEX = re.compile(r'[][\\()<>@,:;".]')
UTF8_CHARSET = email.charset.Charset("utf-8")

# A quoted-string at the start of an address: inside it, whitespace and <>" are legitimate.
_LEADING_QUOTED = re.compile(r'"(?:[^"\\\r\n]|\\[^\r\n])*"')
_SMTP_UNSAFE = frozenset('<>"')


def parse_address(address: str) -> str:
    """Parse an email address, falling back to the raw (stripped) string given.

    :raises ValueError: if the parsed address contains characters that can't safely be
        sent on an SMTP command line (whitespace, ``<``, ``>`` or ``"`` outside a leading
        quoted local part).
    """
    parsed = email.utils.parseaddr(address)[1]
    if not parsed:
        parsed = address.strip()
    rest = parsed
    if parsed.startswith('"'):
        quoted = _LEADING_QUOTED.match(parsed)
        if quoted is not None:
            rest = parsed[quoted.end() :]
    if any(char.isspace() or char in _SMTP_UNSAFE for char in rest):
        raise ValueError(f"Address {parsed!r} contains characters not permitted in an SMTP mailbox")
    return parsed


def quote_address(address: str) -> str:
    """Return the address in angle brackets, as used by ``MAIL FROM:`` and ``RCPT TO:``."""
    return f"<{parse_address(address)}>"


# --- flattening --------------------------------------------------------------------------
#
# Most of the time of flattening an EmailMessage went into the stdlib's generator (a
# generator object, buffer and policy clone per MIME part, a write per body line) and its
# header refolding (email._header_value_parser._refold_parse_tree, which renders every
# parse-tree node again each time it looks at it). fastsmtp._flatten and fastsmtp._folding
# write the same bytes for the common shapes and leave the rest to the stdlib
# (tests/core/test_flatten_*.py compare the two with hypothesis on every Python the suite
# runs on).


class _OneLineFoldPolicy(email.policy.EmailPolicy):
    """``EmailPolicy`` whose header folding takes fastsmtp's path where it gives the
    stdlib's bytes (:func:`fastsmtp._folding.fold_header`)."""

    #: What ``fold_binary`` tries first, for ``fastsmtp._flatten`` to call directly.
    fastsmtp_fold_header = staticmethod(fold_header)

    def fold_binary(self, name: str, value: Any) -> bytes:
        folded = fold_header(value, self.max_line_length, self.linesep)
        if folded is None:
            return super().fold_binary(name, value)
        return folded.encode("ascii")


def _one_line_folding(base: email.policy.EmailPolicy[Any]) -> email.policy.EmailPolicy[Any]:
    # The settings of ``base``, sharing its header registry as its clones do.
    return _OneLineFoldPolicy(**{**vars(base), "header_factory": base.header_factory})


def _make_policy(modern: bool, utf8: bool, cte_type: str) -> email.policy.Policy:
    if modern:
        base: email.policy.Policy = _one_line_folding(
            email.policy.SMTPUTF8 if utf8 else email.policy.SMTP
        )
    else:
        base = email.policy.compat32
    return base if cte_type == "8bit" else base.clone(cte_type=cte_type)


# A few combinations, each built once. Wrapped rather than decorated, so the mutation run
# (tools/mutation) mutates the function itself.
_policy = functools.lru_cache(maxsize=32)(_make_policy)


_HIDDEN = frozenset(("bcc", "resent-bcc"))
_LOWER = operator.methodcaller("lower")
_NAME = operator.itemgetter(0)
_KEYS = email.message.Message.keys


def flatten_message(
    message: email.message.EmailMessage | email.message.Message,
    /,
    *,
    utf8: bool = False,
    cte_type: str = "8bit",
) -> bytes:
    """Serialise ``message`` for DATA, without its ``Bcc`` and ``Resent-Bcc`` headers.

    ``EmailMessage`` objects use ``policy.SMTP`` (``policy.SMTPUTF8`` with ``utf8``), CRLF line
    ends; legacy ``Message`` objects use ``compat32`` (LF line ends, ``utf8`` ignored).
    ``cte_type`` other than ``"8bit"`` is applied to the policy (e.g. ``"7bit"``).
    """
    stripped = message
    if type(message).keys is _KEYS:  # keys(): the stored names, read here without a frame
        names: Iterable[str] = map(_NAME, message._headers)  # type: ignore[union-attr]
    else:
        names = message.keys()
    if not _HIDDEN.isdisjoint(map(_LOWER, names)):
        stripped = copy.copy(message)  # header deletion rebinds the list; the original is intact
        del stripped["Bcc"]
        del stripped["Resent-Bcc"]
    policy = _policy(isinstance(message, email.message.EmailMessage), utf8, cte_type)
    flat = flatten_fast(stripped, policy)
    if flat is not None:
        return flat
    buffer = io.BytesIO()
    email.generator.BytesGenerator(buffer, policy=policy).flatten(stripped)
    return buffer.getvalue()


def extract_addresses(
    header: str | email.headerregistry.AddressHeader | email.header.Header,
    /,
) -> list[str]:
    """Return the raw addresses (``local@domain``) of an address header, for the envelope.

    As aiosmtplib 5.1.3: ``Address`` objects give their ``addr_spec``; the plain strings
    an ``AddressHeader`` holds when a sequence was assigned to it (``msg["To"] =
    ("a@example.com", "b")``) and each decoded chunk of an ``email.header.Header`` go
    through :func:`parse_address`; anything else through ``getaddresses``. The envelope
    grammar then judges each address (a bad one is refused locally, never sent).
    """
    if isinstance(header, email.headerregistry.AddressHeader):
        fast = _addr_specs(header.addresses)
        if fast is not None:
            return fast
        addresses: list[str] = []
        for address in header.addresses:
            if isinstance(address, email.headerregistry.Address):
                addresses.append(address.addr_spec)
            else:
                addresses.append(parse_address(str(address)))
        return addresses
    if isinstance(header, email.header.Header):
        return [
            parse_address(chunk if isinstance(chunk, str) else chunk.decode(charset or "ascii"))
            for chunk, charset in email.header.decode_header(header)
        ]
    return [address for _, address in email.utils.getaddresses([str(header)])]


# --- the envelope from the headers, fast ------------------------------------------------
#
# For an EmailMessage whose address headers are the parsed objects the email package keeps
# (every message built or parsed with a modern policy), the headers are read in one pass
# and each Address's addr_spec is computed from its parts with the stdlib's own rule
# (headerregistry.Address.addr_spec: quote the local part if it holds a DOT_ATOM_ENDS
# character; "<>" for an empty address). Anything else takes the reference path through
# the email package's accessors; tests/core/test_envelope_headers.py compares the two.

_EMAIL_MESSAGE = email.message.EmailMessage
_FETCH_PARSE = email.policy.EmailPolicy.header_fetch_parse
_ADDRESS_FIELDS = frozenset(
    (
        "resent-date",
        "sender",
        "from",
        "to",
        "cc",
        "bcc",
        "resent-sender",
        "resent-from",
        "resent-to",
        "resent-cc",
        "resent-bcc",
    )
)
_ADDRESS = email.headerregistry.Address
_ONLY_ADDRESS = frozenset((_ADDRESS,))
_ONLY_STR = frozenset((str,))
# A local part holding one of these is quoted (the stdlib's DOT_ATOM_ENDS, one regex).
_QUOTED_IF = re.compile(
    "[" + re.escape("".join(sorted(email._header_value_parser.DOT_ATOM_ENDS))) + "]"
)
_quote_string = email._header_value_parser.quote_string
_USERNAME = operator.attrgetter("_username")
_DOMAIN = operator.attrgetter("_domain")


#: (name as stored, value) pairs of the address fields, by lower-case name, in order.
_Fields = dict[str, list[tuple[str, Any]]]


def _address_fields(message: email.message.Message) -> tuple[_Fields, Any] | None:
    """The address fields (and Resent-Date) of ``message`` with the policy's
    ``header_fetch_parse``; None unless fetching them with it gives what the
    ``get_all``/``get`` accessors give: an exact ``EmailMessage`` with a modern policy."""
    if type(message) is not _EMAIL_MESSAGE:
        return None
    fetch = message.policy.header_fetch_parse
    if getattr(fetch, "__func__", None) is not _FETCH_PARSE:
        return None
    fields: _Fields = {}
    for name, value in message._headers:  # type: ignore[attr-defined]
        if type(name) is not str:
            return None
        lower = name.lower()
        if lower in _ADDRESS_FIELDS:
            pairs = fields.get(lower)
            if pairs is None:
                fields[lower] = [(name, value)]
            else:
                pairs.append((name, value))
    return fields, fetch


def _resent(fields: _Fields, fetch: Any) -> bool:
    """``_has_resent_block`` on the fields read by ``_address_fields``."""
    dates = fields.get("resent-date")
    if dates is None:
        return False
    for name, value in dates:
        fetch(name, value)  # as get_all does (a value that fails to parse fails the same)
    if len(dates) > 1:
        raise ValueError("Message has more than one 'Resent-' header block")
    return True


def _sender_of(fields: _Fields, fetch: Any) -> str | None:
    """``extract_sender`` on the fields read by ``_address_fields``."""
    if _resent(fields, fetch):
        pairs = fields.get("resent-sender") or fields.get("resent-from")
    else:
        pairs = fields.get("sender") or fields.get("from")
    if pairs is None:
        return None
    addresses = extract_addresses(fetch(*pairs[0]))
    return addresses[0] if addresses else None


def _recipients_of(fields: _Fields, fetch: Any) -> list[str]:
    """``extract_recipients`` on the fields read by ``_address_fields``."""
    if _resent(fields, fetch):
        names: tuple[str, ...] = ("resent-to", "resent-cc", "resent-bcc")
    else:
        names = ("to", "cc", "bcc")
    recipients: list[str] = []
    for lower in names:
        for name, value in fields.get(lower, ()):
            recipients.extend(extract_addresses(fetch(name, value)))
    return recipients


def _addr_spec(username: str, domain: str) -> str:
    """``Address(username=..., domain=...).addr_spec``."""
    if _QUOTED_IF.search(username) is not None:
        username = _quote_string(username)
    if domain:
        return username + "@" + domain
    if not username:
        return "<>"
    return username


def _addr_specs(addresses: Any) -> list[str] | None:
    """The addr_spec of each of ``addresses``; None unless they are all plain ``Address``
    objects of ``str`` parts (the stdlib's property is then what this computes)."""
    if len(addresses) == 1:  # most headers: no sets, maps or joins
        address = addresses[0]
        if type(address) is not _ADDRESS:
            return None
        user, domain = _USERNAME(address), _DOMAIN(address)
        if type(user) is not str or type(domain) is not str:
            return None
        if domain and (user.isalnum() or _QUOTED_IF.search(user) is None):
            return [user + "@" + domain]
        return [_addr_spec(user, domain)]
    if {*map(type, addresses)} != _ONLY_ADDRESS:
        return None
    users = list(map(_USERNAME, addresses))
    domains = list(map(_DOMAIN, addresses))
    if {*map(type, users), *map(type, domains)} != _ONLY_STR:
        return None
    joined = "".join(users)
    if "" in domains or (not joined.isalnum() and _QUOTED_IF.search(joined) is not None):
        return [_addr_spec(user, domain) for user, domain in zip(users, domains, strict=True)]
    return list(map("@".join, zip(users, domains, strict=True)))


def _has_resent_block(message: email.message.Message) -> bool:
    """True if ``message`` has one Resent- block; ``ValueError`` if it has several."""
    dates = message.get_all("Resent-Date")
    if dates is None:
        return False
    if len(dates) > 1:
        raise ValueError("Message has more than one 'Resent-' header block")
    return True


def extract_sender(message: email.message.EmailMessage | email.message.Message, /) -> str | None:
    """Return the sender address (``Sender``, else ``From``; their ``Resent-`` forms when
    the message has a Resent- block), or ``None`` when there is none."""
    fields = _address_fields(message)
    if fields is None:
        return _extract_sender_reference(message)
    return _sender_of(*fields)


def extract_recipients(message: email.message.EmailMessage | email.message.Message, /) -> list[str]:
    """Return every address of ``To``, ``Cc`` and ``Bcc`` (or of ``Resent-To``,
    ``Resent-Cc`` and ``Resent-Bcc`` when the message has a Resent- block), in that order."""
    fields = _address_fields(message)
    if fields is None:
        return _extract_recipients_reference(message)
    return _recipients_of(*fields)


def _extract_sender_reference(
    message: email.message.EmailMessage | email.message.Message, /
) -> str | None:
    """``extract_sender`` through the email package's accessors (any message)."""
    if _has_resent_block(message):
        preferred, fallback = "Resent-Sender", "Resent-From"
    else:
        preferred, fallback = "Sender", "From"
    header = message[preferred] if preferred in message else message[fallback]
    if header is None:
        return None
    addresses = extract_addresses(header)
    return addresses[0] if addresses else None


def _extract_recipients_reference(
    message: email.message.EmailMessage | email.message.Message, /
) -> list[str]:
    """``extract_recipients`` through the email package's accessors (any message)."""
    if _has_resent_block(message):
        names: tuple[str, ...] = ("Resent-To", "Resent-Cc", "Resent-Bcc")
    else:
        names = ("To", "Cc", "Bcc")
    recipients: list[str] = []
    for name in names:
        for header in message.get_all(name, ()):
            recipients.extend(extract_addresses(header))
    return recipients


# --- header-injection guards (fastsmtp only; security.md §9) -----------------------------
#
# RFC 5322 §2.2: a header field is a name of printable ASCII other than ":" (33-57, 59-126),
# a colon and a body; long fields are folded by CRLF followed by whitespace. The DATA encoder
# turns bare CR and bare LF into CRLF, so all three count as line ends here.

_LINE = re.compile(rb"([^\r\n]*)(\r\n|\r|\n|\Z)")
_FIELD_NAME = re.compile(rb"[!-9;-~]+:")
# RFC 5322 section 3.6.8: field-name = 1*ftext; ftext = %d33-57 / %d59-126.
_FIELD_NAME_TEXT = re.compile(r"[!-9;-~]+")
_BAD_BREAK = re.compile(r"(?:\r\n|\r(?!\n)|\n)(?![ \t])")


def check_header_block(flat: bytes) -> None:
    """Raise ``HeaderInjectionError`` (a ``ValueError``) if a header line of a flattened
    message is malformed.

    Looks at the header block (up to the first empty line): each line must be a field
    (``Name: value``) or a folded continuation (starting with space or tab) of one.
    """
    if not header_block_well_formed(flat):
        _check_header_lines(flat)


def _check_header_lines(flat: bytes) -> None:
    """``check_header_block`` line by line, naming the first bad line."""
    position = 0
    number = 0
    end = len(flat)
    while position < end:
        match = _LINE.match(flat, position)
        assert match is not None  # the pattern matches at every position
        line, line_end = match.group(1), match.group(2)
        position = match.end()
        number += 1
        if not line:
            return  # the empty line that ends the header block
        if line[:1] in (b" ", b"\t"):
            if number == 1:
                raise HeaderInjectionError(
                    f"Message header line 1 is a continuation with no header to continue: "
                    f"{line[:100]!r}"
                )
        elif _FIELD_NAME.match(line) is None:
            raise HeaderInjectionError(
                f"Message header line {number} is neither 'Name: value' nor a folded "
                f"continuation (possible header injection): {line[:100]!r}"
            )
        if not line_end:
            return


def _refuse_name(name: object) -> None:
    reason = "is not an RFC 5322 field-name (printable ASCII characters other than ':')"
    if isinstance(name, str) and not name.isascii():
        start = next(i for i, char in enumerate(name) if char > "\x7f")
        raise HeaderNameEncodeError("ascii", name, start, start + 1, f"header name {reason}")
    raise HeaderInjectionError(f"Header name {name!r} {reason}")


def check_message_headers(message: email.message.Message) -> None:
    """Raise ``HeaderInjectionError`` (a ``ValueError``, and ``email.errors.HeaderWriteError``
    where Python has it) if a header of ``message`` (or of any MIME part) has a name outside
    RFC 5322's field-name (printable ASCII but ":") or a value holding a line break that is
    not a fold (CR/LF followed by space or tab).

    This catches what ``check_header_block`` cannot see in the flattened bytes: on Python
    3.10-3.12 ``policy.SMTP`` writes a trailing CRLF of a header value verbatim, which ends
    the header block early and pushes the remaining headers into the body; a name such as
    ``"X-A: 1\r\nX-B"`` flattens to two well-formed header lines; and Bcc, which is never
    flattened, still gives the envelope its recipients.
    """
    message_type = type(message)
    parts: Any
    if (
        message_type.walk is _WALK
        and message_type.is_multipart is _IS_MULTIPART
        and not message.is_multipart()
    ):
        parts = (message,)  # what walk() yields for a message that is not multipart
    else:
        parts = message.walk()
    for part in parts:
        if type(part).raw_items is _RAW_ITEMS:
            _check_fields(part._headers.copy())  # what raw_items() iterates
        else:
            _check_fields(part.raw_items())


_WALK = email.message.Message.walk
_IS_MULTIPART = email.message.Message.is_multipart
_RAW_ITEMS = email.message.Message.raw_items
_STR_STR = str.__str__
#: Field names already found well-formed (exact ``str`` only, so membership is the test).
_GOOD_NAMES: set[str] = set()


def _check_fields(fields: Iterable[tuple[Any, Any]]) -> None:
    """The header-injection check of one part's (name, value) pairs."""
    good = _GOOD_NAMES
    for name, value in fields:
        if type(name) is not str or name not in good:
            if type(name) is not str or _FIELD_NAME_TEXT.fullmatch(name) is None:
                _refuse_name(name)
            if len(good) < 1024:  # bounded: names are few in practice
                good.add(name)
        # str(value) of a str (or a header object: str's own __str__) is its text.
        plain = type(value) is str or type(value).__str__ is _STR_STR  # type: ignore[comparison-overlap]
        text = value if plain else str(value)
        if ("\r" in text or "\n" in text) and _BAD_BREAK.search(text) is not None:
            raise HeaderInjectionError(
                f"Header {name!r} contains a line break that is not a fold: {value!r}"
            )


def _check_message_headers_reference(message: email.message.Message) -> None:
    """``check_message_headers`` as it was written first: the reference the tests
    compare the fast form with."""
    for part in message.walk():
        for name, value in part.raw_items():
            if type(name) is not str or _FIELD_NAME_TEXT.fullmatch(name) is None:
                _refuse_name(name)
            if _BAD_BREAK.search(str(value)) is not None:
                raise HeaderInjectionError(
                    f"Header {name!r} contains a line break that is not a fold: {value!r}"
                )
