"""What happened to one message sent through :class:`fastsmtp.SMTPPool`.

A :class:`SendResult` says, per message, which recipients the server accepted, which it
refused and why, the final reply, how many transactions were tried, and one
:class:`SendStatus`. Refusals carry the RFC 3463 enhanced status code when the server
advertised ENHANCEDSTATUSCODES (RFC 2034)::

    status-code = class "." subject "." detail      ; RFC 3463 section 2
    class       = "2" / "4" / "5"
    subject     = 1*3digit
    detail      = 1*3digit
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ._reply_text import parse_enhanced_status as parse_enhanced_status
from ._reply_text import parse_queue_id
from .errors import SMTPResponseException
from .response import SMTPResponse

__all__ = (
    "RecipientRefusal",
    "SendResult",
    "SendStatus",
    "enhanced_status",
    "parse_enhanced_status",
    "queue_id",
)


def queue_id(reply: SMTPResponse | SMTPResponseException | str | None) -> str | None:
    """The queue id the server gave an accepted message, or None.

    ``reply`` is a final reply (a 2yz ``SMTPResponse``), or the text of one (what
    ``sendmail`` returns). Read from the reply shapes of Postfix (``queued as``), Exim
    (``id=``), Sendmail, Exchange/Office 365 (``InternalId``), Gmail, SendGrid, Amazon
    SES and Dovecot LMTP; a refusal, or a text in no known shape, has none.
    """
    if reply is None or isinstance(reply, SMTPResponseException):
        return None
    if isinstance(reply, str):
        return parse_queue_id(reply)
    return reply.queue_id


def enhanced_status(reply: SMTPResponse | SMTPResponseException | str | None) -> str | None:
    """The RFC 3463 enhanced status code (``"5.1.1"``) of a reply, a refusal exception
    or a reply text, or None. Read from the text whether or not the server advertised
    ENHANCEDSTATUSCODES (RFC 2034): a text starting with one carries one."""
    if reply is None:
        return None
    return parse_enhanced_status(reply if isinstance(reply, str) else reply.message)


class SendStatus(enum.Enum):
    """The fate of one message."""

    #: Every recipient accepted; the final reply was 250.
    SENT = "sent"
    #: Some recipients accepted, the others refused (permanently, or temporarily after
    #: the last retry).
    PARTIALLY_SENT = "partially_sent"
    #: Nothing delivered, and retrying will not help (a 5yz reply, or a bad message).
    FAILED_PERMANENTLY = "failed_permanently"
    #: Nothing delivered after the last attempt, but a later try may succeed (4yz
    #: replies, disconnects, timeouts before the message was sent).
    FAILED_TEMPORARILY = "failed_temporarily"
    #: The message was sent but its final reply never came (a disconnect or a timeout):
    #: the server may have accepted it. Never retried automatically (RFC 1047).
    OUTCOME_UNKNOWN = "outcome_unknown"


@dataclass(frozen=True)
class RecipientRefusal:
    """One refused recipient: the reply code, its RFC 3463 code if any, and the text."""

    code: int
    #: ``class.subject.detail`` from the start of ``text``, when the server advertised
    #: ENHANCEDSTATUSCODES; else None.
    enhanced_status: str | None
    #: The reply text as received (the enhanced code included).
    text: str

    @property
    def permanent(self) -> bool:
        """True for a 5yz refusal (RFC 5321 section 4.2.1): do not try again."""
        return self.code >= 500 or self.code < 400

    @property
    def response(self) -> SMTPResponse:
        """The refusal as the ``SMTPResponse`` that ``SMTP.sendmail`` reports."""
        return SMTPResponse(self.code, self.text)

    @classmethod
    def from_response(cls, response: SMTPResponse, *, enhanced: bool) -> RecipientRefusal:
        """Build from a reply; parse the enhanced code only if ``enhanced`` (advertised)."""
        status = parse_enhanced_status(response.message) if enhanced else None
        return cls(response.code, status, response.message)


@dataclass
class SendResult:
    """The result of sending one message: never an exception, always a status."""

    status: SendStatus
    #: Recipients the server accepted (in the order given).
    accepted: list[str] = field(default_factory=list)
    #: Refused recipients, each with the last reply refusing it.
    refused: dict[str, RecipientRefusal] = field(default_factory=dict)
    #: The 250 of the last attempt that delivered to anyone (a later failed retry for
    #: other recipients does not replace it); for a message delivered to nobody, the
    #: reply carried by the exception that ended the last attempt.
    reply: SMTPResponse | None = None
    #: Transactions attempted (0 when the message never reached a connection).
    attempts: int = 0
    #: What ended the last failed attempt, if anything failed.
    exception: BaseException | None = None
    #: The relay (``"host:port"``, or a socket path) of the attempt whose reply is
    #: ``reply``: the one that took the message. For a message delivered to nobody,
    #: the relay of its last attempt that reached one (None if none did).
    relay: str | None = None
    #: The final reply for each accepted recipient, where the server gives one per
    #: recipient (LMTP, RFC 2033 section 4.2); empty over SMTP, where ``reply`` is the
    #: one final reply for them all.
    replies: dict[str, SMTPResponse] = field(default_factory=dict)

    @property
    def queue_id(self) -> str | None:
        """The queue id in the final reply of a message that was delivered (see
        :func:`queue_id`), or None."""
        return queue_id(self.reply) if self.ok else None

    @property
    def ok(self) -> bool:
        """True if at least one recipient got the message (SENT or PARTIALLY_SENT)."""
        return self.status in (SendStatus.SENT, SendStatus.PARTIALLY_SENT)
