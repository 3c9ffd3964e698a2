"""The reply type: one complete SMTP reply (RFC 5321 section 4.2)."""

from __future__ import annotations

from typing import NamedTuple

from ._reply_text import parse_enhanced_status, parse_queue_id

__all__ = ("SMTPResponse",)


class SMTPResponse(NamedTuple):
    """A server reply: the three-digit ``code`` and the text of all its lines joined by newlines."""

    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}"

    # fastsmtp's additions: read-only properties computed from the text, not fields, so
    # the tuple, its fields, repr and pickling stay aiosmtplib's.

    @property
    def enhanced_status(self) -> str | None:
        """The RFC 3463 code at the start of the text (``"2.0.0"``), or None."""
        return parse_enhanced_status(self.message)

    @property
    def queue_id(self) -> str | None:
        """The queue id of an accepted message (a 2yz final reply), or None.

        Read from the common servers' reply shapes (Postfix ``queued as``, Exim ``id=``,
        Sendmail, Exchange, Gmail, Amazon SES, Dovecot LMTP; see
        :func:`fastsmtp.results.queue_id`)."""
        return parse_queue_id(self.message) if 200 <= self.code < 300 else None
