"""Shared types: reply codes, the OAuth token generator and the "not given" sentinel."""

from __future__ import annotations

import enum
import os
from collections.abc import Awaitable, Callable
from typing import Union

__all__ = ("Default", "SMTPStatus", "SMTPTokenGenerator", "SocketPathType", "_default")

SocketPathType = Union[str, bytes, "os.PathLike[str]"]
SMTPTokenGenerator = Callable[[], Awaitable[str]]


class Default(enum.Enum):
    """Marks a keyword argument that was not given (so an explicit ``None`` can clear it)."""

    token = 0


_default = Default.token


@enum.unique
class SMTPStatus(enum.IntEnum):
    """Named SMTP reply codes."""

    invalid_response = -1
    system_status_ok = 211
    help_message = 214
    ready = 220
    closing = 221
    auth_successful = 235
    completed = 250
    will_forward = 251
    cannot_vrfy = 252
    auth_continue = 334
    start_input = 354
    domain_unavailable = 421
    mailbox_unavailable = 450
    error_processing = 451
    insufficient_storage = 452
    tls_not_available = 454
    unrecognized_command = 500
    unrecognized_parameters = 501
    command_not_implemented = 502
    bad_command_sequence = 503
    parameter_not_implemented = 504
    domain_does_not_accept_mail = 521
    access_denied = 530
    auth_failed = 535
    mailbox_does_not_exist = 550
    user_not_local = 551
    storage_exceeded = 552
    mailbox_name_invalid = 553
    transaction_failed = 554
    syntax_error = 555
