"""The body on the go-ahead: a pipelined message written from the read that brings its 354.

RFC 2920 section 3.1: MAIL, every RCPT and DATA go out in one write, and the body waits for
DATA's 354 ("start mail input", RFC 5321 section 4.1.1.4). Awaiting those replies and then
writing the body from the sending task costs a turn of the event loop of its own: a future's
waiter is always woken on the loop's next turn, and on asyncio's loop every turn is an
``epoll_wait``. Here the replies are judged, and the body written, in the read callback
that completes them (:attr:`fastsmtp._pacing.Batch.then`); the task sleeps on one future
from the commands to the final reply and wakes once per message, not twice.

The cancellation rule (design.md) holds: a task cancelled while it waits has its future
cancelled at once (``Task.cancel`` cancels the future it waits on), and a cancelled future
is never carried on, so a caller that left before its body was written never has it
written. A caller cancelled after that leaves with the body out (the session is back in
command mode, so the connection is kept and the final reply consumed in order), as one
cancelled while awaiting :meth:`fastsmtp._sending.Submission.reply` always did.

The body is written here only when it is whole and nobody else waits for the connection;
otherwise the replies are handed back and the task writes the body itself, held back to
share a write with the next transaction (:meth:`SMTPProtocol.write_body`).
"""

from __future__ import annotations

from ._pacing import Batch
from ._session import Phase
from ._transaction import MailTransaction
from .errors import SMTPException
from .protocol import SMTPProtocol

__all__ = ("GoAhead",)

_BODY = Phase.BODY


class GoAhead:
    """Judges a pipelined transaction's replies and, if DATA got its 354, writes the body."""

    __slots__ = (
        "_body",
        "_idle_timeout",
        "_protocol",
        "_reply_timeout",
        "_transaction",
        "accepted",
        "error",
        "judged",
        "sent",
    )

    def __init__(
        self,
        protocol: SMTPProtocol,
        transaction: MailTransaction,
        body: bytes,
        reply_timeout: float | None,
        idle_timeout: float | None,
    ) -> None:
        self._protocol = protocol
        self._transaction = transaction
        self._body = body
        self._reply_timeout = reply_timeout
        self._idle_timeout = idle_timeout
        #: The replies went through the transaction's judge (else the task judges them).
        self.judged = False
        #: What the judge raised, for the task to raise in its turn.
        self.error: SMTPException | None = None
        #: The body is written; the batch's future now waits for the final reply.
        self.sent = False
        #: LMTP: the recipients the final replies are for (RFC 2033 section 4.2).
        self.accepted: list[str] | None = None

    def __call__(self, batch: Batch) -> bool:
        """The replies to MAIL, RCPT... and DATA are all in (``batch.then``)."""
        transaction = self._transaction
        self.judged = True
        try:
            take = transaction.take
            for reply in batch.replies:
                take(reply)
            transaction.check_open()
        except SMTPException as exc:
            self.error = exc
            return False
        protocol = self._protocol
        session = protocol.session
        if session.lmtp:
            self.accepted = transaction.accepted
        if (
            session.phase is not _BODY
            or not protocol.is_connected
            or protocol.queued > 1
            or protocol.turn.waiters
        ):
            # Someone waits to pipeline behind this message: the task writes the body
            # and holds its end back for their commands.
            return False
        protocol.body_now(self._body, batch.future, self._reply_timeout, self._idle_timeout)
        self.sent = True
        return True
