"""One mail transaction, planned as commands and judged reply by reply. No I/O.

RFC 5321 section 3.3: a transaction is MAIL, one RCPT per recipient, then DATA (or,
with RFC 3030 CHUNKING, BDAT chunks instead of DATA). RFC 2920 section 3.1 lets a
client send MAIL, every RCPT and DATA in one write when the server advertises
PIPELINING; the replies then come back in order.

:class:`MailTransaction` is the single judge of those replies. It is fed the replies
one at a time in command order and raises exactly what a lockstep client raises at
that point, so lockstep sending (a batch of one command) and pipelined sending (one
batch of all of them) are the same code and give the same results:

- MAIL not 250: ``SMTPSenderRefused``;
- RCPT not 250/251: the recipient goes into ``refused``; once every recipient has been
  answered and all were refused (or there were none): ``SMTPRecipientsRefused``.
  Recipients refused locally (bad input, never sent; ``local``) count as refused:
  they start ``refused``, and then the exception is ``SMTPRecipientsRefusedLocally``;
- DATA not 354: ``SMTPDataError``;
- a 421 reply (RFC 5321 section 3.8, the server is closing): the next command a
  lockstep client would send finds no connection: ``SMTPServerDisconnected``.

"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Sequence
from typing import IO

from ._session import Kind
from .errors import (
    SMTPDataError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPRecipientsRefusedLocally,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from .response import SMTPResponse

__all__ = (
    "CHUNK_SIZE",
    "LineEndings",
    "MailTransaction",
    "MessageSource",
)

#: What ``sendmail``/``data`` accept as a message.
MessageSource = str | bytes | Iterable[bytes] | AsyncIterable[bytes] | IO[bytes]

#: Size of the pieces a large message is written in: small enough to keep memory and
#: latency bounded, large enough that per-chunk overhead is negligible.
CHUNK_SIZE = 256 * 1024

DATA = b"DATA\r\n"
_MAIL, _RCPT, _DATA = Kind.MAIL, Kind.RCPT, Kind.DATA
# What the replies of a group of MAIL, n RCPT (and DATA) answer, by (n, with DATA).
_GROUPS: dict[tuple[int, bool], tuple[Kind, ...]] = {}


class MailTransaction:
    """The commands of one transaction and the judge of their replies."""

    __slots__ = (
        "_errors",
        "_local",
        "_next",
        "accepted",
        "commands",
        "data_accepted",
        "kinds",
        "recipients",
        "refused",
        "sender",
        "server_closing",
    )

    def __init__(
        self,
        sender: str,
        recipients: Sequence[str],
        mail: bytes,
        rcpts: Sequence[bytes],
        *,
        data: bool = True,
        local: Sequence[SMTPRecipientRefused] = (),
    ) -> None:
        self.sender = sender
        self.recipients = list(recipients)
        # With no recipient there is nothing to send DATA for: the transaction fails
        # after MAIL (as lockstep does), so DATA is never queued.
        with_data = data and bool(recipients)
        self.commands: list[bytes] = [mail, *rcpts, *([DATA] if with_data else [])]
        kinds = _GROUPS.get((len(rcpts), with_data))
        if kinds is None:
            kinds = (_MAIL, *((_RCPT,) * len(rcpts)), *((_DATA,) if with_data else ()))
            if len(rcpts) <= 16:  # the shapes most messages have, made once
                _GROUPS[len(rcpts), with_data] = kinds
        self.kinds: tuple[Kind, ...] = kinds
        self.refused: dict[str, SMTPResponse] = {}
        #: Recipients whose RCPT succeeded, in RCPT order (over LMTP, each is owed its
        #: own reply after the message: RFC 2033 section 4.2).
        self.accepted: list[str] = []
        self._errors: list[SMTPRecipientRefused] = []
        self._local = len(local)
        for error in local:
            self.refused[error.recipient] = SMTPResponse(error.code, error.message)
            self._errors.append(error)
        self._next = 0
        self.server_closing = False
        self.data_accepted = False

    def check_open(self) -> None:
        """Raise what a lockstep client raises if it sent the next command now."""
        if self.server_closing:
            if self._next == len(self.recipients) + 1:  # DATA, via SMTP.data()
                raise SMTPServerDisconnected("Connection lost")
            raise SMTPServerDisconnected("Server not connected")

    def take(self, reply: SMTPResponse) -> None:
        """Judge the reply to the next command; raises as lockstep sending would."""
        self.check_open()
        index = self._next
        self._next += 1
        if reply.code == 421:
            self.server_closing = True
        count = len(self.recipients)
        if index == 0:
            if reply.code != 250:
                raise SMTPSenderRefused(reply.code, reply.message, self.sender)
            if count == 0:
                raise SMTPRecipientsRefused([])
        elif index <= count:
            if reply.code not in (250, 251):
                recipient = self.recipients[index - 1]
                self._errors.append(SMTPRecipientRefused(reply.code, reply.message, recipient))
                self.refused[recipient] = reply
            else:
                self.accepted.append(self.recipients[index - 1])
            if index == count and len(self._errors) == count + self._local:
                if self._local:
                    raise SMTPRecipientsRefusedLocally(self._errors)
                raise SMTPRecipientsRefused(self._errors)
        else:
            if reply.code != 354:
                raise SMTPDataError(reply.code, reply.message)
            self.data_accepted = True


class LineEndings:
    """Streaming CRLF normaliser without dot-stuffing, for BDAT (RFC 3030 section 3).

    BDAT sends exact byte counts, so nothing is stuffed; but an Internet message still
    ends its lines in CRLF (RFC 5322 section 2.3), and a bare CR or LF is what SMTP
    smuggling is built from, so they are normalised like DATA's.
    """

    __slots__ = ("_pending_cr",)

    def __init__(self) -> None:
        self._pending_cr = False

    def normalise(self, chunk: bytes) -> bytes:
        """Return ``chunk`` with every CRLF, bare CR and bare LF as CRLF."""
        if self._pending_cr and chunk:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return b""
        self._pending_cr = chunk[-1] == 13
        if b"\r" not in chunk:
            return chunk.replace(b"\n", b"\r\n")
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
