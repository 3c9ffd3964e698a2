"""The delivery policy: what an attempt's outcome means, and when to try again.

* :func:`classify` sorts a failure: transient (try again), permanent (give up) or
  unknown (never try again). RFC 5321 section 4.2.1: a 4yz reply is transient, a 5yz
  permanent; security.md section 10 and RFC 1047: once the whole message is out, only a
  reply decides, so a failure with no reply then is an unknown outcome.
* :func:`connection_fate` says what a failure leaves the connection fit for.
* :class:`RetryPolicy` holds the attempts and the backoff (RFC 5321 section 4.5.4.1:
  retry later, never hammer; these short in-call retries do not replace a queue).
* :class:`Tally` folds each attempt's :class:`Outcome` into the message's ``SendResult``.

The reply rule: ``SendResult.reply`` is the final reply (250) of the last attempt that
delivered the message to someone; only while no attempt has, it is the reply carried by
the last failure. A retry for the recipients deferred (4yz) by a delivering attempt can
fail, but that does not undo the delivery: its exception goes to ``exception``, and
its reply (to MAIL, or to the end of data) becomes the refusal of each recipient it
kept the message from. So ``sendmail`` through the pool returns the 250 text with the
refused map, as ``SMTP.sendmail`` does for a partial delivery.
"""

from __future__ import annotations

import asyncio
import enum
import random

from ..errors import (
    SMTPDataError,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
)
from ..response import SMTPResponse
from ..results import RecipientRefusal, SendResult, SendStatus
from ..smtp import SMTP
from ._slots import PoolClosedError
from ._store import Fate

__all__ = ("Kind", "Outcome", "RetryPolicy", "Tally", "classify", "connection_fate", "is_reply")


class Kind(enum.Enum):
    TRANSIENT = 1
    PERMANENT = 2
    UNKNOWN = 3


def is_reply(exc: BaseException) -> bool:
    """True for a real 4yz/5yz reply: the server answered, so nothing was accepted."""
    return isinstance(exc, SMTPResponseException) and 400 <= exc.code < 600


def classify(exc: BaseException, body_sent: bool) -> Kind:
    """Sort a failed attempt: try again, give up, or unknown (never try again)."""
    # security.md section 10: once the whole message is out, only a reply decides.
    if getattr(exc, "outcome_unknown", False) or (body_sent and not is_reply(exc)):
        return Kind.UNKNOWN
    if isinstance(exc, SMTPResponseException):
        # RFC 5321 section 4.2.1: 4yz is transient, 5yz permanent. Anything else (a
        # malformed reply, code -1) closed the connection before the body: try again.
        return Kind.PERMANENT if 500 <= exc.code < 600 else Kind.TRANSIENT
    # asyncio.TimeoutError: SMTPTimeoutError's base, the builtin TimeoutError from 3.11 on.
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError, OSError)):
        return Kind.TRANSIENT  # disconnects, connect errors, timeouts (all fastsmtp's too)
    return Kind.PERMANENT  # bad arguments, a missing extension, a bad configuration


def connection_fate(exc: Exception, client: SMTP) -> Fate:
    """What a transaction that raised ``exc`` before its message was out leaves the
    connection fit for."""
    if not client.is_connected:
        return Fate.ABORT  # SMTP closed it: its state was unknown
    # After a refusal SMTP has sent RSET, and bad input is refused before anything is
    # written: the connection is in a known state.
    if isinstance(exc, SMTPResponseException):
        # A transient (4yz) reply will be retried, and on a fresh connection: this one
        # may be what the server is unhappy with (RFC 5321 section 4.5.4.1).
        return Fate.RETIRE if 400 <= exc.code < 500 else Fate.REUSE
    # SMTPNotSupported (SMTPUTF8, PIPELINING, CHUNKING, BINARYMIME asked of a server that
    # did not advertise it) is raised after EHLO and before the transaction's first
    # command: nothing is owed, so the connection is as good as before.
    if isinstance(exc, (SMTPNotSupported, SMTPRecipientsRefused, ValueError, TypeError)):
        return Fate.REUSE
    return Fate.ABORT


class Outcome:
    """How one attempt ended: the refused recipients and final reply, or an exception."""

    __slots__ = ("body_sent", "enhanced", "exception", "refused", "relay", "reply", "unanswered")

    def __init__(
        self,
        refused: dict[str, SMTPResponse] | None,
        reply: SMTPResponse | None,
        exception: Exception | None,
        enhanced: bool,
        body_sent: bool,
        relay: str | None = None,
        *,
        unanswered: bool = False,
    ) -> None:
        self.refused = refused
        self.reply = reply
        self.exception = exception
        self.enhanced = enhanced
        self.body_sent = body_sent
        #: The name of the relay the attempt ran on (None: it reached none).
        self.relay = relay
        #: The connection was lost with this transaction's commands pipelined behind
        #: another message's end of data, none of them answered (``_pipelining``).
        self.unanswered = unanswered


class RetryPolicy:
    """``max_attempts`` transactions per message; retry n waits ``base * 2**(n-1)``
    seconds, capped at ``backoff_max``, and with ``jitter`` a random 50-100 % of that
    (so messages deferred together do not all come back together)."""

    def __init__(
        self, max_attempts: int, backoff_base: float, backoff_max: float, jitter: bool
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.jitter = jitter

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        delay = min(self.backoff_max, self.backoff_base * 2.0 ** (attempt - 1))
        if self.jitter:
            delay *= random.uniform(0.5, 1.0)
        return delay


class Tally:
    """The ``SendResult`` of one message, built attempt by attempt.

    ``pending`` is who still awaits the message. RFC 5321 section 4.2.5: a recipient
    accepted once is never sent to again; only those refused with a 4yz are retried.
    """

    __slots__ = ("kind", "pending", "result")

    def __init__(self, recipients: list[str]) -> None:
        self.result = SendResult(SendStatus.FAILED_TEMPORARILY)
        self.pending = recipients
        self.kind = Kind.TRANSIENT

    def add(self, outcome: Outcome) -> bool:
        """Count one attempt; True if it is worth another (something transient left)."""
        result = self.result
        result.attempts += 1
        exc = outcome.exception
        if outcome.relay is not None and (exc is None or not result.accepted):
            result.relay = outcome.relay  # follows ``reply`` (see SendResult.relay)
        if exc is None:
            self._delivered(outcome)
        else:
            result.exception = exc
            if isinstance(exc, PoolClosedError):
                result.attempts -= 1  # never reached a connection
                self.kind = Kind.TRANSIENT
                return False
            self.kind = classify(exc, outcome.body_sent)
            if isinstance(exc, SMTPResponseException):
                self._failed_with_reply(exc, outcome.enhanced)
            if isinstance(exc, SMTPRecipientsRefused) and self.kind is not Kind.UNKNOWN:
                refused = {e.recipient: SMTPResponse(e.code, e.message) for e in exc.recipients}
                self.pending = self._refusals(refused, outcome.enhanced)
                self.kind = Kind.TRANSIENT if self.pending else Kind.PERMANENT
        return self.kind is Kind.TRANSIENT

    def _failed_with_reply(self, exc: SMTPResponseException, enhanced: bool) -> None:
        result = self.result
        response = SMTPResponse(exc.code, exc.message)
        if not result.accepted:
            result.reply = response  # nothing delivered yet: this is the message's reply
            return
        # A retry after a partial delivery: the 250 stands (see the module docstring).
        # The transaction's own refusal (MAIL, or the end of data) is now the last reply
        # that kept the message from each recipient it was for.
        if isinstance(exc, (SMTPSenderRefused, SMTPDataError)) and self.kind is not Kind.UNKNOWN:
            refusal = RecipientRefusal.from_response(response, enhanced=enhanced)
            for recipient in self.pending:
                result.refused[recipient] = refusal

    def _delivered(self, outcome: Outcome) -> None:
        result = self.result
        refused = outcome.refused or {}
        result.reply = outcome.reply
        result.exception = None
        for recipient in self.pending:
            if recipient not in refused:
                result.accepted.append(recipient)
                result.refused.pop(recipient, None)
        self.pending = self._refusals(
            {r: refused[r] for r in self.pending if r in refused}, outcome.enhanced
        )
        self.kind = Kind.TRANSIENT if self.pending else Kind.PERMANENT

    def _refusals(self, refused: dict[str, SMTPResponse], enhanced: bool) -> list[str]:
        """Record refusals; return the recipients refused only for now (4yz)."""
        retry = []
        for recipient, response in refused.items():
            refusal = RecipientRefusal.from_response(response, enhanced=enhanced)
            self.result.refused[recipient] = refusal
            if not refusal.permanent:
                retry.append(recipient)
        return retry

    def finish(self) -> SendResult:
        """The result, with its status set."""
        result = self.result
        if self.kind is Kind.UNKNOWN:
            result.status = SendStatus.OUTCOME_UNKNOWN
        elif result.accepted:
            partial = result.refused or result.exception is not None
            result.status = SendStatus.PARTIALLY_SENT if partial else SendStatus.SENT
        elif self.kind is Kind.PERMANENT:
            result.status = SendStatus.FAILED_PERMANENTLY
        else:
            result.status = SendStatus.FAILED_TEMPORARILY
        return result
