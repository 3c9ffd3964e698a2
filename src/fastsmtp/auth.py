"""SASL response encoders for AUTH PLAIN, LOGIN, CRAM-MD5 and XOAUTH2.

The work is done by the protocol core (compiled when available); str arguments are
UTF-8 encoded, bytes are used as they are.
"""

from __future__ import annotations

from ._speedups import (
    auth_crammd5_verify,
    auth_login_encode,
    auth_plain_encode,
    auth_xoauth2_encode,
)
from .errors import SMTPAuthenticationError as SMTPAuthenticationError  # as in aiosmtplib.auth
from .typing import SMTPStatus as SMTPStatus  # as in aiosmtplib.auth

__all__ = (
    "auth_crammd5_verify",
    "auth_login_encode",
    "auth_plain_encode",
    "auth_xoauth2_encode",
)
