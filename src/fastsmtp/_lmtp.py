"""LMTP's rules (RFC 2033), sans I/O: the replies after a message, one per recipient.

LMTP is SMTP for the last hop into a mailbox store, with two differences the client
sees (everything else, the session and the transaction, is shared with SMTP):

- LHLO replaces EHLO and there is no HELO (section 4.1): a server that refuses LHLO is
  not an LMTP server, and nothing is retried with another greeting;
- after the final dot (or BDAT LAST, with CHUNKING), the server sends one reply for each
  RCPT that succeeded, in the order the RCPTs were sent (section 4.2). Each is the fate
  of the message for that recipient alone: some may be delivered and others refused
  (a full mailbox: 452; no such user any more: 550).

:class:`SMTPSession` counts the replies owed (``SMTPSession(lmtp=True)``); this module
pairs them with their recipients and judges them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import LMTPDataError
from .response import SMTPResponse

__all__ = ("LHLO", "Deliveries", "judge_deliveries")

#: The LMTP greeting command (RFC 2033 section 4.1).
LHLO = b"LHLO"


class Deliveries:
    """The per-recipient outcome of one LMTP message."""

    __slots__ = ("delivered", "refused", "reply")

    def __init__(
        self,
        delivered: dict[str, SMTPResponse],
        refused: dict[str, SMTPResponse],
        reply: SMTPResponse,
    ) -> None:
        #: Each recipient that got the message, with its 250.
        self.delivered = delivered
        #: Each recipient refused after the message, with its reply.
        self.refused = refused
        #: The first 250, which stands for the message as SMTP's one final reply does.
        self.reply = reply


def judge_deliveries(
    accepted: Sequence[str],
    replies: Sequence[SMTPResponse],
    refused_before: Mapping[str, SMTPResponse] | None = None,
) -> Deliveries:
    """Pair the replies after a message with the recipients whose RCPT succeeded.

    RFC 2033 section 4.2: one reply per accepted recipient, in RCPT order; a 250 means
    delivered, anything else refused for that recipient. Raises ``LMTPDataError`` (an
    ``SMTPDataError`` with the first refusal's code and text) when no recipient got the
    message: for one recipient, exactly what SMTP raises; its ``refused`` holds every
    recipient, those refused at RCPT (``refused_before``) first. A count that does not match (which
    the session never lets happen) is a ValueError rather than a guess at the pairing.
    """
    if len(replies) != len(accepted) or not replies:
        raise ValueError(f"{len(replies)} replies after the message for {len(accepted)} RCPTs")
    delivered: dict[str, SMTPResponse] = {}
    refused: dict[str, SMTPResponse] = {}
    every: dict[str, SMTPResponse] = dict(refused_before) if refused_before else {}
    first_ok: SMTPResponse | None = None
    first_refusal: SMTPResponse | None = None
    for recipient, reply in zip(accepted, replies, strict=True):
        every[recipient] = reply
        if reply.code == 250:
            delivered[recipient] = reply
            if first_ok is None:
                first_ok = reply
        else:
            refused[recipient] = reply
            if first_refusal is None:
                first_refusal = reply
    if first_ok is None:
        assert first_refusal is not None
        raise LMTPDataError(first_refusal.code, first_refusal.message, every)
    # A recipient named twice was sent two RCPTs: a refusal for either copy is reported.
    for recipient in refused:
        delivered.pop(recipient, None)
    return Deliveries(delivered, refused, first_ok)
