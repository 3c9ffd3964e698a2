"""fastsmtp: a fast, hardened asyncio SMTP client; a drop-in replacement for aiosmtplib."""

from __future__ import annotations

from .errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPReadTimeoutError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from .response import SMTPResponse
from .typing import SMTPStatus, SMTPTokenGenerator

__title__ = "fastsmtp"
__version__ = "0.1.0"
__author__ = "fastsmtp developers"
__license__ = "MIT"
__copyright__ = "Copyright 2026 fastsmtp developers"

__all__ = (
    "SMTPAuthenticationError",
    "SMTPConnectError",
    "SMTPConnectResponseError",
    "SMTPConnectTimeoutError",
    "SMTPDataError",
    "SMTPException",
    "SMTPHeloError",
    "SMTPNotSupported",
    "SMTPReadTimeoutError",
    "SMTPRecipientRefused",
    "SMTPRecipientsRefused",
    "SMTPResponse",
    "SMTPResponseException",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SMTPStatus",
    "SMTPTimeoutError",
    "SMTPTokenGenerator",
)
