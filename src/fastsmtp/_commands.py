"""Command framing and validation: intents in, command lines (bytes) out. No I/O.

RFC 5321 section 4.1.1 command syntax::

    ehlo        = "EHLO" SP ( Domain / address-literal ) CRLF
    mail        = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF
    rcpt        = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
                  Forward-path ) [SP Rcpt-parameters] CRLF
    Mail-parameters = esmtp-param *(SP esmtp-param)      (section 4.1.2)
    esmtp-param     = esmtp-keyword ["=" esmtp-value]

Everything a caller passes is checked here, before a byte is written: no argument may
carry a C0 control character or DEL (that is how command injection works), envelope
addresses go through the strict grammar of :mod:`fastsmtp._address`, and ESMTP
parameters must be ``keyword[=value]`` with no room for a second parameter or command.

A refusal raises what aiosmtplib code already catches for that command (README,
"Differences from aiosmtplib"): a bad sender or MAIL parameter
:class:`~fastsmtp.errors.SMTPSenderRefusedLocally`, a bad recipient or RCPT parameter
:class:`~fastsmtp.errors.SMTPRecipientRefusedLocally`, a VRFY/EXPN argument that could
inject :class:`~fastsmtp.errors.SMTPCommandRefusedLocally` (each also a ``ValueError``),
and a non-ASCII mailbox without SMTPUTF8 ``UnicodeEncodeError``, as aiosmtplib raises.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from ._address import check_option, envelope_address
from .dsn import check_raw_parameters
from .errors import (
    REFUSED_LOCALLY,
    SMTPCommandRefusedLocally,
    SMTPRecipientRefusedLocally,
    SMTPSenderRefusedLocally,
)

__all__ = (
    "CRLF",
    "check_arguments",
    "command_line",
    "mail_line",
    "message_size",
    "rcpt_line",
    "refused_text",
    "validate_local_hostname",
    "vrfy_line",
)

CRLF = b"\r\n"

# C0 controls and DEL: any of them in an argument could end the command line early
# (CR, LF) or confuse the server's parser (NUL).
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


def check_arguments(args: tuple[bytes, ...]) -> None:
    """Raise ValueError if any command argument contains a control character or DEL."""
    for arg in args:
        if _CONTROL.search(arg):
            raise ValueError(f"Command argument {arg!r} contains prohibited control characters")


def command_line(*args: bytes) -> bytes:
    """Join checked arguments into one command line ending in CRLF."""
    check_arguments(args)
    return b" ".join(args) + CRLF


def command_args(line: bytes) -> tuple[bytes, ...]:
    """A checked command line (ending in CRLF) as ``execute_command`` arguments: joined
    again by :func:`command_line`, they give the same bytes."""
    return tuple(line[:-2].split(b" "))


def validate_local_hostname(hostname: str) -> str:
    """Strip and check a HELO/EHLO name; returns the stripped name.

    The name becomes part of a command line, so it must be a single token.
    """
    hostname = hostname.strip()
    if not hostname:
        raise ValueError("The local_hostname param must not be empty")
    if _WHITESPACE_OR_CONTROL.search(hostname):
        raise ValueError(
            "The local_hostname param contains prohibited whitespace or control characters"
        )
    return hostname


def _options(options: Iterable[str] | None) -> list[bytes]:
    # Options are ASCII by grammar (esmtp-value is %d33-60 / %d62-126); check_option
    # enforces that, so the encoding below cannot fail. A raw RET or NOTIFY must also be
    # one RFC 3461 defines.
    given = options if isinstance(options, (list, tuple)) else list(options or ())
    encoded = [check_option(option).encode("ascii") for option in given]
    if any(option[:1] in "RrNn" for option in given):  # (most options are neither)
        check_raw_parameters(given, ("RET", "NOTIFY"))
    return encoded


def _checked_path(
    verb: bytes, address: str, encoding: str, allow_null: bool, allow_postmaster: bool
) -> bytes:
    """``MAIL FROM:<mailbox>`` / ``RCPT TO:<mailbox>`` for a checked address (cached as
    :func:`_path`)."""
    # Without SMTPUTF8 a non-ASCII domain goes as A-labels (IDNA), which every server
    # reads; only a non-ASCII local part needs SMTPUTF8 (RFC 6531 section 3.2).
    mailbox = envelope_address(
        address,
        utf8=encoding.lower() != "ascii",
        allow_null=allow_null,
        allow_postmaster=allow_postmaster,
        idna=True,
    )
    return verb + mailbox.encode(encoding) + b">"


# Cached: validation depends on nothing else, and senders and recipients repeat (an error
# is raised again every time; lru_cache never caches exceptions). Wrapped rather than
# decorated, so the mutation run (tools/mutation) mutates the function itself.
_path = functools.lru_cache(maxsize=8192)(_checked_path)


def _path_line(path: bytes, options: Iterable[str] | None) -> bytes:
    if not options:
        return path + CRLF
    return b" ".join([path, *_options(options)]) + CRLF


def refused_text(enhanced: str, exc: ValueError) -> str:
    """The text of a local refusal, worded as a server's reply (RFC 3463 code first)."""
    return f"{enhanced} {exc} {REFUSED_LOCALLY}"


_refused = refused_text


# RFC 5321 section 4.2.3: 553 mailbox name not allowed (mailbox syntax incorrect), 501
# syntax error in parameters or arguments. RFC 3463: 5.1.7 bad sender's mailbox syntax,
# 5.1.3 bad destination mailbox syntax, 5.5.4 invalid command arguments.
_BAD_MAILBOX = 553
_BAD_PARAMETER = 501


def mail_line(sender: str, options: Iterable[str] | None, encoding: str) -> bytes:
    """``MAIL FROM:<sender> [params]``; the null reverse-path ``<>`` is allowed.

    Raises :class:`~fastsmtp.errors.SMTPSenderRefusedLocally` (a ``ValueError``) for a
    sender or parameter outside the grammar, ``UnicodeEncodeError`` for a non-ASCII
    local part without SMTPUTF8 (a non-ASCII domain is sent in IDNA).
    """
    try:
        path = _path(b"MAIL FROM:<", sender, encoding, True, False)
    except UnicodeEncodeError:
        raise
    except ValueError as exc:
        raise SMTPSenderRefusedLocally(_BAD_MAILBOX, _refused("5.1.7", exc), sender) from None
    try:
        return _path_line(path, options)
    except ValueError as exc:
        raise SMTPSenderRefusedLocally(_BAD_PARAMETER, _refused("5.5.4", exc), sender) from None


def rcpt_line(recipient: str, options: Iterable[str] | None, encoding: str) -> bytes:
    """``RCPT TO:<recipient> [params]``; a bare ``Postmaster`` is allowed (section 4.1.1.3).

    Raises :class:`~fastsmtp.errors.SMTPRecipientRefusedLocally` (a ``ValueError``) for a
    recipient or parameter outside the grammar, ``UnicodeEncodeError`` for a non-ASCII
    local part without SMTPUTF8 (a non-ASCII domain is sent in IDNA).
    """
    try:
        path = _path(b"RCPT TO:<", recipient, encoding, False, True)
    except UnicodeEncodeError:
        raise
    except ValueError as exc:
        raise SMTPRecipientRefusedLocally(_BAD_MAILBOX, _refused("5.1.3", exc), recipient) from None
    try:
        return _path_line(path, options)
    except ValueError as exc:
        raise SMTPRecipientRefusedLocally(
            _BAD_PARAMETER, _refused("5.5.4", exc), recipient
        ) from None


def vrfy_line(verb: bytes, argument: str, options: Iterable[str] | None, utf8: bool) -> bytes:
    """``VRFY``/``EXPN`` with a user name or mailbox (RFC 5321 section 3.5.3).

    Sent as aiosmtplib sends it: stripped, a ``Name <mailbox>`` or ``<mailbox>`` reduced to
    the mailbox, encoded as UTF-8 with SMTPUTF8 and as ASCII otherwise
    (``UnicodeEncodeError``), an empty argument (after stripping, which also takes Unicode
    whitespace such as U+0085) as ``VERB `` for the server to judge.
    Only what could inject is refused, with
    :class:`~fastsmtp.errors.SMTPCommandRefusedLocally` (a ``ValueError``): a control
    character, whitespace or an angle bracket left inside the argument (a second
    parameter or command), a parameter outside the esmtp-param grammar, or parameters
    without an argument.
    """
    name = verb.decode()
    text = argument.strip()
    try:
        if "<" in text or ">" in text:
            text = envelope_address(text, utf8=utf8)
        if _WHITESPACE_OR_CONTROL.search(text):
            raise ValueError(f"Invalid {name} argument {argument!r}")
        params = _options(options)
        if not text and params:
            # "VRFY  SMTPUTF8": with no argument the first parameter would stand where
            # the server reads the argument.
            raise ValueError(f"{name} parameters need an argument (got {argument!r})")
    except UnicodeEncodeError:
        raise
    except ValueError as exc:
        raise SMTPCommandRefusedLocally(_BAD_PARAMETER, _refused("5.5.4", exc)) from None
    encoded = text.encode("utf-8" if utf8 else "ascii")
    return b" ".join([verb, encoded, *params]) + CRLF


def message_size(data: bytes, *, terminated: bool = True) -> int:
    """Octets of ``data`` as sent: CRLF line ends and (``terminated``, as DATA sends it)
    a final CRLF, before dot-stuffing.

    This is the SIZE parameter value (RFC 1870 section 3), and equals
    ``DataEncoder.size`` after ``finish()`` for the same input. BDAT sends no final
    CRLF of its own (RFC 3030 section 2): ``terminated=False``.
    """
    # Counted, not rewritten (no copy of a large message): a CRLF stays two octets and
    # each bare CR or bare LF becomes two, one more than it was.
    pairs = data.count(b"\r\n")
    size = len(data) + data.count(b"\r") - pairs + data.count(b"\n") - pairs
    if terminated and not data.endswith((b"\r", b"\n")):
        size += 2
    return size
