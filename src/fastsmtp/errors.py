"""The exception hierarchy, name for name and argument for argument as aiosmtplib 5.1.3.

Every constructor takes its arguments positionally and ``args`` is exactly that tuple,
so exceptions pickle and compare the way aiosmtplib's do.
"""

from __future__ import annotations

import asyncio
import email.errors

# aiosmtplib.errors shows it too: ``except aiosmtplib.errors.TimeoutError`` catches asyncio's
# TimeoutError (the builtin one on 3.11+), which every SMTPTimeoutError is.
from asyncio import TimeoutError as TimeoutError
from typing import TYPE_CHECKING

from ._reply_text import parse_enhanced_status
from .response import SMTPResponse

__all__ = (
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPNotSupported",
    "SMTPRecipientRefused",
    "SMTPRecipientsRefused",
    "SMTPResponseException",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SMTPTimeoutError",
    "SMTPConnectTimeoutError",
    "SMTPReadTimeoutError",
    "SMTPConnectResponseError",
)


class SMTPException(Exception):
    """Base class for all fastsmtp errors.

    ``outcome_unknown`` is True on an error raised after the whole message had been
    handed to the connection and before the server's final reply was read (a timeout
    or a disconnect then): the server may or may not have accepted the message, so
    sending it again risks a duplicate (RFC 1047). It is False everywhere else.
    """

    outcome_unknown: bool = False

    def __init__(self, message: str, /) -> None:
        super().__init__(message)
        self.message = message


class SMTPServerDisconnected(SMTPException, ConnectionError):
    """The connection was lost, or a command was run on a client that is not connected."""


class SMTPConnectError(SMTPException, ConnectionError):
    """Opening the connection (TCP, Unix socket or TLS handshake) failed."""


class SMTPTimeoutError(SMTPException, asyncio.TimeoutError):
    """An operation did not finish within its timeout."""


class SMTPConnectTimeoutError(SMTPTimeoutError, SMTPConnectError):
    """Connecting, or waiting for the greeting, timed out."""


class SMTPReadTimeoutError(SMTPTimeoutError):
    """Waiting for a reply from the server timed out."""


class SMTPNotSupported(SMTPException):
    """The server does not support an extension the call needs."""


class SMTPResponseException(SMTPException):
    """The server answered with an unexpected reply code (or a malformed reply, code -1)."""

    def __init__(self, code: int, message: str, /) -> None:
        Exception.__init__(self, code, message)
        self.code = code
        self.message = message

    @property
    def enhanced_status(self) -> str | None:
        """The RFC 3463 code at the start of the reply text (``"5.1.1"``), or None
        (fastsmtp's addition: computed from ``message``, not an argument)."""
        return parse_enhanced_status(self.message)


class SMTPConnectResponseError(SMTPResponseException, SMTPConnectError):
    """The greeting was not 220."""


class SMTPHeloError(SMTPResponseException):
    """HELO or EHLO was refused."""


class SMTPDataError(SMTPResponseException):
    """DATA, or the message body, was refused."""


class LMTPDataError(SMTPDataError):
    """LMTP (RFC 2033 section 4.2): after the message, the server refused it for every
    recipient it had accepted (fastsmtp only; not in ``__all__``).

    ``code`` and ``message`` are the first refusal's after the message; ``refused`` maps
    every recipient to the reply that refused it (at RCPT, or after the message), as
    ``sendmail``'s refused dict does.
    """

    def __init__(self, code: int, message: str, refused: dict[str, SMTPResponse], /) -> None:
        Exception.__init__(self, code, message, refused)
        self.code = code
        self.message = message
        self.refused = refused


class SMTPAuthenticationError(SMTPResponseException):
    """Authentication failed."""


class SMTPSenderRefused(SMTPResponseException):
    """MAIL FROM was refused; ``sender`` is the address as given."""

    def __init__(self, code: int, message: str, sender: str, /) -> None:
        Exception.__init__(self, code, message, sender)
        self.code = code
        self.message = message
        self.sender = sender


class SMTPRecipientRefused(SMTPResponseException):
    """RCPT TO was refused; ``recipient`` is the address as given."""

    def __init__(self, code: int, message: str, recipient: str, /) -> None:
        Exception.__init__(self, code, message, recipient)
        self.code = code
        self.message = message
        self.recipient = recipient


class SMTPRecipientsRefused(SMTPException):
    """Every recipient of a transaction was refused; ``recipients`` holds each refusal."""

    def __init__(self, recipients: list[SMTPRecipientRefused], /) -> None:
        Exception.__init__(self, recipients)
        self.recipients = recipients


# -- bad input refused before anything is written (fastsmtp only) -------------------------
#
# fastsmtp refuses input that aiosmtplib would send (an envelope address outside RFC 5321's
# grammar, a malformed ESMTP parameter, a credential that would add a SASL field). The rule
# (README, "Differences from aiosmtplib"): each such refusal is an instance of what
# aiosmtplib raises in the same situation, whether aiosmtplib refuses the input itself or
# the server refuses it, and also of ``ValueError``, which fastsmtp raised for it before.
# So ``except SMTPRecipientsRefused`` written for aiosmtplib, and ``except ValueError``
# written for earlier fastsmtp releases, both still catch it. These classes are not in
# ``__all__`` (aiosmtplib has no such names); import them from ``fastsmtp.errors``.
#
# Codes are those a server answers for the same input (RFC 5321 section 4.2.2/4.2.3,
# enhanced codes from RFC 3463 section 3.2): 553 for a mailbox name not allowed (5.1.7
# sender, 5.1.3 recipient syntax), 501 for a syntax error in parameters or arguments
# (5.5.4 invalid command arguments). The message says the input never left the machine.

#: Appended to the message of every local refusal.
REFUSED_LOCALLY = "(refused by fastsmtp; nothing was sent)"


class SMTPInputRefused(ValueError):
    """Marker base: bad input refused by fastsmtp before anything was written."""


class SMTPSenderRefusedLocally(SMTPSenderRefused, SMTPInputRefused):
    """An invalid sender address or MAIL parameter, refused before ``MAIL`` was written."""


class SMTPRecipientRefusedLocally(SMTPRecipientRefused, SMTPInputRefused):
    """An invalid recipient address or RCPT parameter, refused before ``RCPT`` was written.

    ``sendmail`` records it in its ``refused`` dict as it records a server's refusal, and
    sends the message to the other recipients.
    """


class SMTPRecipientsRefusedLocally(SMTPRecipientsRefused, SMTPInputRefused):
    """Every recipient was refused, at least one of them by fastsmtp (the others, if any,
    by the server); ``recipients`` holds each refusal."""


class SMTPCommandRefusedLocally(SMTPResponseException, SMTPInputRefused):
    """A command argument that could inject (VRFY/EXPN), refused before it was written."""


class SMTPSizeRefusedLocally(SMTPSenderRefusedLocally):
    """A message the server said in advance it would refuse: larger than the maximum it
    advertised with SIZE (RFC 1870 section 4), refused (552, 5.3.4) before ``MAIL`` was
    written. An ``SMTPSenderRefused``: aiosmtplib announces the size on MAIL and the server
    refuses that MAIL with 552."""


class SMTPAuthenticationRefusedLocally(SMTPAuthenticationError, SMTPInputRefused):
    """Credentials that would change the fields of a SASL message (a NUL in PLAIN, ^A in
    XOAUTH2), refused before ``AUTH`` was written. The message never holds the secret."""


class _NoHeaderWriteError(Exception):
    """Stands in for ``email.errors.HeaderWriteError`` on Pythons that lack it."""


if TYPE_CHECKING:
    _HeaderWriteError = _NoHeaderWriteError
else:
    # Python 3.13 (and the 3.12.5 / 3.11.10 / 3.10.15 security releases) raise it when a
    # generated header holds a line break that is not a fold; aiosmtplib's send_message
    # lets it through, so code written for aiosmtplib there catches it.
    _HeaderWriteError = getattr(email.errors, "HeaderWriteError", _NoHeaderWriteError)


class HeaderInjectionError(_HeaderWriteError, SMTPInputRefused):
    """A message header that could add header lines (a line break that is not a fold in a
    value, a name outside RFC 5322's field-name), refused before anything was written.

    An ``email.errors.HeaderWriteError`` where the running Python has that class (what
    its email generator raises for such a header), and a ``ValueError``.
    """


class HeaderNameEncodeError(HeaderInjectionError, UnicodeEncodeError):
    """A header name with non-ASCII characters: also the ``UnicodeEncodeError`` the email
    generator raises for it when aiosmtplib flattens such a message."""
