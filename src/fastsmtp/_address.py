"""Strict envelope address and ESMTP parameter grammar (no I/O, no ``email.utils``).

The envelope (``MAIL FROM:<...>``, ``RCPT TO:<...>``) is parsed with the RFC 5321 grammar, not
with the RFC 5322 header grammar of ``email.utils.parseaddr`` (whose results differ between
Python 3.10 and 3.13 and which silently drops trailing garbage such as ``> RET=FULL``).

RFC 5321 §4.1.2 (Command Argument Syntax)::

    Reverse-path    = Path / "<>"
    Forward-path    = Path / "<Postmaster>"           ; (the domain form is also allowed)
    Path            = "<" [ A-d-l ":" ] Mailbox ">"    ; source routes (A-d-l) are rejected
    Mailbox         = Local-part "@" ( Domain / address-literal )
    Local-part      = Dot-string / Quoted-string
    Dot-string      = Atom *("." Atom)
    Atom            = 1*atext                          ; atext from RFC 5322 §3.2.3
    Quoted-string   = DQUOTE *QcontentSMTP DQUOTE
    QcontentSMTP    = qtextSMTP / quoted-pairSMTP
    quoted-pairSMTP = %d92 %d32-126                    ; backslash + printable ASCII or space
    qtextSMTP       = %d32-33 / %d35-91 / %d93-126     ; printable ASCII or space, not " or \\
    Domain          = sub-domain *("." sub-domain)
    sub-domain      = Let-dig [Ldh-str]
    Let-dig         = ALPHA / DIGIT
    Ldh-str         = *( ALPHA / DIGIT / "-" ) Let-dig
    address-literal = "[" ( IPv4-address-literal / IPv6-address-literal ) "]"
                      ; RFC 5321 §4.1.3; IPv6 literals carry the tag "IPv6:".
                      ; General-address-literal is not accepted.
    esmtp-param     = esmtp-keyword ["=" esmtp-value]
    esmtp-keyword   = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
    esmtp-value     = 1*(%d33-60 / %d62-126)           ; printable ASCII except "=" and SP

RFC 6531 §3.3 (SMTPUTF8) extends ``atext``, ``qtextSMTP`` and ``sub-domain`` (U-label) with
``UTF8-non-ascii``; this module allows those only when ``utf8=True``. Even then it refuses
non-ASCII control, separator and surrogate code points (Unicode categories Cc, Cs, Zs, Zl, Zp):
they are never needed in a mailbox and some of them act as line or word breaks downstream.

Lengths (RFC 5321 §4.5.3.1): local part at most 64 octets, domain at most 255 octets, the whole
path (including ``<`` and ``>``) at most 256 octets, counted on the UTF-8 encoding; an ASCII
domain label at most 63 octets (RFC 1035 §2.3.4).

Delivery status notification values built by fastsmtp are encoded as RFC 3461 §4 ``xtext``.

Internationalised domains without SMTPUTF8 (``idna=True``): a mailbox whose local part is
ASCII and whose domain is not goes out with the domain as A-labels (RFC 5890 §2.3.2.1,
``xn--``), which any server reads. The conversion follows UTS #46 with IDNA 2008 (RFC 5891)
when the ``idna`` package is installed (``pip install fastsmtplib[idna]``), else IDNA 2003
(RFC 3490, the standard library's ``idna`` codec), which maps a few characters differently
(``ß`` becomes ``ss``, for one). A non-ASCII local part has no ASCII form: it needs SMTPUTF8.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from types import ModuleType

_idna: ModuleType | None
try:  # optional: UTS #46 / IDNA 2008 (the extra fastsmtplib[idna])
    import idna as _idna
except ImportError:  # pragma: no cover - depends on the environment
    _idna = None

__all__ = ("check_option", "envelope_address", "esmtp_keyword", "idna_domain", "xtext_encode")

#: Which rules :func:`idna_domain` applies: "uts46" (the idna package) or "idna2003".
IDNA_RULES = "uts46" if _idna is not None else "idna2003"

MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256
MAX_LABEL = 63

# The common case (plain ASCII ``dot-string@domain``) is decided by one regular expression;
# everything else goes through the explicit parser below, which also produces the error text.
# The fast pattern accepts a strict subset of what the parser accepts (tested).
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_FAST_MAILBOX = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*@{_LABEL}(?:\.{_LABEL})*", re.ASCII)

_ATEXT_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
)
_LDH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
# Unicode categories never accepted, even with SMTPUTF8.
_FORBIDDEN_CATEGORIES = frozenset(("Cc", "Cs", "Zs", "Zl", "Zp"))
# Characters a display name (the part before "<") may not contain.
_DISPLAY_FORBIDDEN = frozenset("<>\r\n\x00")
# Surrounding whitespace removed from the whole argument.
_STRIP = " \t\r\n"

_ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*", re.ASCII)
_ESMTP_OPTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*(?:=[!-<>-~]+)?", re.ASCII)


class _Invalid(Exception):
    """Internal: carries the reason an address was rejected."""


class _NotAscii(_Invalid):
    """Internal: a non-ASCII mailbox without SMTPUTF8; ``index`` of the first such char."""

    def __init__(self, mailbox: str, index: int) -> None:
        # No message: envelope_address() turns this into a UnicodeEncodeError with its own.
        super().__init__()
        self.mailbox = mailbox
        self.index = index


def envelope_address(
    address: str,
    *,
    utf8: bool = False,
    allow_null: bool = False,
    allow_postmaster: bool = False,
    idna: bool = False,
) -> str:
    """Validate an envelope address and return the bare Mailbox for ``MAIL``/``RCPT``.

    Accepts ``local@domain``, ``<local@domain>`` or ``Display Name <local@domain>`` (surrounding
    whitespace ignored). The null path (``""`` or ``"<>"``, returned as ``""``) needs
    ``allow_null``; a bare ``Postmaster`` needs ``allow_postmaster``; non-ASCII needs ``utf8``
    (SMTPUTF8). Raises ``ValueError`` naming the problem for anything else; never truncates.

    A non-ASCII mailbox without ``utf8`` raises ``UnicodeEncodeError`` (a ``ValueError``),
    which is what aiosmtplib raises when it encodes such an address as ASCII; with
    ``idna`` only a non-ASCII local part does, a non-ASCII domain is returned as A-labels
    (see the module docstring).
    """
    if not isinstance(address, str):
        raise TypeError(f"email address must be str, not {type(address).__name__}")
    try:
        if idna and not utf8 and not address.isascii():
            return _envelope_address_idna(address, allow_null, allow_postmaster)
        return _envelope_address(address, utf8, allow_null, allow_postmaster)
    except _NotAscii as exc:
        raise UnicodeEncodeError(
            "ascii",
            exc.mailbox,
            exc.index,
            exc.index + 1,
            "ordinal not in range(128): a non-ASCII address needs SMTPUTF8",
        ) from None
    except _Invalid as exc:
        raise ValueError(f"Invalid email address {address!r}: {exc}") from None


def _envelope_address(address: str, utf8: bool, allow_null: bool, allow_postmaster: bool) -> str:
    text = address.strip(_STRIP)
    if _FAST_MAILBOX.fullmatch(text) is not None:
        # The common case. ASCII only (atext and letter-digit-hyphen labels), so
        # characters are octets and the length limits are plain comparisons. The path
        # limit implies the domain limit (a domain within 254 - 2 octets); anything over
        # a limit is checked again below, for the error message.
        if text.index("@") <= MAX_LOCAL_PART and len(text) + 2 <= MAX_PATH:
            return text
        mailbox = text
    else:
        mailbox = _unwrap_path(text)
        if mailbox == "":
            if allow_null:
                return ""
            raise _Invalid("empty address (the null path <>) is not allowed here")
        if mailbox.isascii() and mailbox.lower() == "postmaster":
            if allow_postmaster:
                return mailbox
            raise _Invalid("a bare Postmaster without domain is not allowed here")
        _check_mailbox(mailbox, utf8)
    _check_lengths(mailbox)
    return mailbox


def _envelope_address_idna(address: str, allow_null: bool, allow_postmaster: bool) -> str:
    """A non-ASCII address without SMTPUTF8: checked with the SMTPUTF8 grammar, then its
    domain as A-labels; a non-ASCII local part stays an error (``_NotAscii``)."""
    mailbox = _envelope_address(address, True, allow_null, allow_postmaster)
    if mailbox.isascii():
        return mailbox
    local, _, domain = mailbox.rpartition("@")
    if not local.isascii():
        raise _NotAscii(mailbox, next(i for i, char in enumerate(mailbox) if char > "\x7f"))
    try:
        ascii_domain = idna_domain(domain)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None
    return _envelope_address(f"{local}@{ascii_domain}", False, allow_null, allow_postmaster)


def idna_domain(domain: str) -> str:
    """``domain`` as A-labels (``xn--``), by UTS #46 / IDNA 2008 when the ``idna`` package
    is installed, else IDNA 2003; ValueError for a domain IDNA cannot encode."""
    if domain.isascii():
        return domain
    try:
        if _idna is not None:
            encoded: bytes = _idna.encode(domain, uts46=True)
        else:
            encoded = domain.encode("idna")
    except (UnicodeError, ValueError) as exc:
        raise ValueError(f"domain {domain!r} has no IDNA form: {exc}") from None
    return encoded.decode("ascii")


def _unwrap_path(text: str) -> str:
    """Strip an optional display name and the angle brackets; return the inside."""
    if not text.endswith(">"):
        # Bare mailbox. A valid one never ends with ">" (domains end with a letter, digit or
        # "]"), so anything with text after ">" is caught by the mailbox grammar.
        return text
    start = text.find("<")
    if start < 0:
        raise _Invalid("'>' without matching '<'")
    display = text[:start]
    bad = _DISPLAY_FORBIDDEN.intersection(display)
    if bad:
        raise _Invalid(f"display name contains {_describe(min(bad))}")
    inner = text[start + 1 : -1]
    if inner.startswith("@"):
        raise _Invalid("source routes (<@host:mailbox>) are not supported")
    return inner


def _check_mailbox(mailbox: str, utf8: bool) -> None:
    """Validate ``Local-part "@" (Domain / address-literal)``; raise ``_Invalid``."""
    for char in mailbox:
        if char in "\r\n\x00" or ord(char) < 0x20 or char == "\x7f":
            raise _Invalid(f"contains {_describe(char)}")
    if not utf8 and not mailbox.isascii():
        raise _NotAscii(mailbox, next(i for i, char in enumerate(mailbox) if char > "\x7f"))
    if mailbox.startswith('"'):
        at = _quoted_string_end(mailbox, utf8)
        if at >= len(mailbox) or mailbox[at] != "@":
            raise _Invalid("quoted local part must be followed directly by '@'")
    else:
        at = mailbox.find("@")
        if at < 0:
            raise _Invalid("missing '@domain'")
        _check_dot_string(mailbox[:at], utf8)
    domain = mailbox[at + 1 :]
    if not domain:
        raise _Invalid("missing domain after '@'")
    if domain.startswith("["):
        _check_address_literal(domain)
    else:
        _check_domain(domain, utf8)


def _quoted_string_end(mailbox: str, utf8: bool) -> int:
    """Scan the Quoted-string at the start of ``mailbox``; return the index after it."""
    index = 1
    length = len(mailbox)
    while index < length:
        char = mailbox[index]
        if char == '"':
            return index + 1
        if char == "\\":
            index += 1
            if index >= length:
                break
            char = mailbox[index]
            if not " " <= char <= "~":
                raise _Invalid(f"quoted-pair with {_describe(char)}")
        elif not (" " <= char <= "~" or (utf8 and _utf8_char_allowed(char))):
            raise _Invalid(f"quoted local part contains {_describe(char)}")
        index += 1
    raise _Invalid("unterminated quoted local part")


def _check_dot_string(local: str, utf8: bool) -> None:
    if not local:
        raise _Invalid("empty local part")
    for atom in local.split("."):
        if not atom:
            raise _Invalid("local part has an empty atom (leading, trailing or double dot)")
        for char in atom:
            if char in _ATEXT_CHARS or (utf8 and _utf8_char_allowed(char)):
                continue
            raise _Invalid(f"local part contains {_describe(char)} outside quotes")


def _check_domain(domain: str, utf8: bool) -> None:
    for label in domain.split("."):
        if not label:
            raise _Invalid("domain has an empty label (leading, trailing or double dot)")
        if label.startswith("-") or label.endswith("-"):
            raise _Invalid(f"domain label {label!r} starts or ends with '-'")
        for char in label:
            if char in _LDH_CHARS or (utf8 and _utf8_char_allowed(char)):
                continue
            raise _Invalid(f"domain contains {_describe(char)}")
        if label.isascii() and len(label) > MAX_LABEL:
            raise _Invalid(f"domain label longer than {MAX_LABEL} octets")


def _check_address_literal(domain: str) -> None:
    if not domain.endswith("]"):
        raise _Invalid("address literal must end with ']'")
    body = domain[1:-1]
    if body[:5].lower() == "ipv6:":
        candidate = body[5:]
        if candidate and _IPV6_CHARS.issuperset(candidate):
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                pass
            else:
                return
        raise _Invalid(f"invalid IPv6 address literal {domain!r}")
    if body and all("0" <= c <= "9" or c == "." for c in body):
        try:
            ipaddress.IPv4Address(body)
        except ValueError:
            pass
        else:
            return
    raise _Invalid(f"invalid address literal {domain!r} (expected [IPv4] or [IPv6:...])")


def _check_lengths(mailbox: str) -> None:
    encoded = mailbox.encode("utf-8")
    at = len(encoded) - encoded[::-1].index(b"@") - 1 if b"@" in encoded else len(encoded)
    if at > MAX_LOCAL_PART:
        raise _Invalid(f"local part longer than {MAX_LOCAL_PART} octets")
    if len(encoded) - at - 1 > MAX_DOMAIN:
        raise _Invalid(f"domain longer than {MAX_DOMAIN} octets")
    if len(encoded) + 2 > MAX_PATH:
        raise _Invalid(f"path longer than {MAX_PATH} octets")


def _utf8_char_allowed(char: str) -> bool:
    """RFC 6531 UTF8-non-ascii, minus control/separator/surrogate code points."""
    return char >= "\x80" and unicodedata.category(char) not in _FORBIDDEN_CATEGORIES


def _describe(char: str) -> str:
    names = {"\r": "CR", "\n": "LF", "\x00": "NUL", " ": "a space", "\t": "a tab"}
    if char in names:
        return names[char]
    return repr(char)


def esmtp_keyword(keyword: str) -> str:
    """Return ``keyword`` if it is an RFC 5321 esmtp-keyword, else raise ``ValueError``."""
    if not isinstance(keyword, str) or _ESMTP_KEYWORD.fullmatch(keyword) is None:
        raise ValueError(
            f"Invalid ESMTP keyword {keyword!r}: must be a letter or digit followed by "
            "letters, digits or '-'"
        )
    return keyword


def check_option(option: str) -> str:
    """Return a MAIL/RCPT option (``KEYWORD`` or ``KEYWORD=value``) unchanged if valid.

    The value must be printable ASCII without ``=`` or space (RFC 5321 esmtp-value); anything
    else (spaces, CR/LF, empty values) raises ``ValueError``.
    """
    if not isinstance(option, str) or _ESMTP_OPTION.fullmatch(option) is None:
        raise ValueError(
            f"Invalid ESMTP parameter {option!r}: expected KEYWORD or KEYWORD=value, the "
            "keyword made of letters, digits and '-', the value of printable ASCII "
            "characters other than '=' and space"
        )
    return option


def xtext_encode(value: str | bytes) -> str:
    """Encode ``value`` (str as UTF-8) as RFC 3461 xtext: ``+XX`` for non-xchars, ``+``, ``=``."""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return "".join(
        chr(octet) if 33 <= octet <= 126 and octet not in (43, 61) else f"+{octet:02X}"
        for octet in data
    )
