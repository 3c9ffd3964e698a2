"""fastsmtp: a fast, hardened asyncio SMTP client; a drop-in replacement for aiosmtplib."""

from __future__ import annotations

from ._options import Timeouts as Timeouts  # additive: importable, not in __all__
from .api import send
from .dsn import DSN as DSN  # additive: importable, not in __all__
from .dsn import DSNRecipient as DSNRecipient
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
from .lmtp import LMTP as LMTP  # additive: importable, not in __all__
from .pool import Relay as Relay
from .pool import RelaysUnavailableError as RelaysUnavailableError
from .pool import SMTPPool as SMTPPool  # additive: importable, not in __all__ (see below)
from .response import SMTPResponse
from .results import RecipientRefusal as RecipientRefusal
from .results import SendResult as SendResult
from .results import SendStatus as SendStatus
from .results import enhanced_status as enhanced_status
from .results import queue_id as queue_id
from .smtp import SMTP
from .typing import SMTPStatus, SMTPTokenGenerator

__title__ = "fastsmtp"
__version__ = "0.1.0"
__author__ = "fastsmtp developers"
__license__ = "MIT"
__copyright__ = "Copyright 2026 fastsmtp developers"

# Exactly aiosmtplib's names. fastsmtp's additions (SMTPPool, Relay,
# RelaysUnavailableError, LMTP, SendResult, SendStatus, RecipientRefusal, Timeouts, DSN,
# DSNRecipient, queue_id, enhanced_status) are importable from here but deliberately not
# listed.
__all__ = (
    "send",
    "SMTP",
    "SMTPResponse",
    "SMTPStatus",
    "SMTPTokenGenerator",
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
