"""The exception hierarchy, name for name and argument for argument as aiosmtplib 5.1.3.

Every constructor takes its arguments positionally and ``args`` is exactly that tuple,
so exceptions pickle and compare the way aiosmtplib's do.
"""

from __future__ import annotations

import asyncio

# aiosmtplib.errors shows it too: ``except aiosmtplib.errors.TimeoutError`` catches asyncio's
# TimeoutError (the builtin one on 3.11+), which every SMTPTimeoutError is.
from asyncio import TimeoutError as TimeoutError

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


class SMTPConnectResponseError(SMTPResponseException, SMTPConnectError):
    """The greeting was not 220."""


class SMTPHeloError(SMTPResponseException):
    """HELO or EHLO was refused."""


class SMTPDataError(SMTPResponseException):
    """DATA, or the message body, was refused."""


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
