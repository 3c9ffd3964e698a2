"""The units of bulk sending: jobs, their outcomes, and how a failure is classified.

:class:`fastsmtp.pool.SMTPPool` runs :class:`_Job` s on pooled connections; each attempt
ends in an :class:`_Outcome`, and :func:`_classify` decides what a failure means for a
retry (RFC 5321 section 4.2.1: 4yz transient, 5yz permanent; security.md section 10:
an unknown outcome is never retried).
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import Callable, Iterator, Sequence
from email.message import Message
from typing import Any, TypeAlias

from ._transaction import MessageSource
from .errors import SMTPResponseException
from .response import SMTPResponse
from .results import SendResult
from .smtp import SMTP, Submission
from .typing import _default

__all__ = (
    "BulkItem",
    "BulkProgress",
    "_Job",
    "_Kind",
    "_Outcome",
    "_RateLimit",
    "_SyncSource",
    "_classify",
    "_is_reply",
    "_recipient_list",
)

#: One item of ``send_many``: a message object, or ``(message, sender, recipients)``.
BulkItem: TypeAlias = (
    "Message | tuple[Message | bytes | str, str | None, str | Sequence[str] | None]"
)
#: ``progress(done, result)``: messages finished so far, and the one just finished.
BulkProgress = Callable[[int, SendResult], object]


class _Kind(enum.Enum):
    TRANSIENT = 1
    PERMANENT = 2
    UNKNOWN = 3


def _is_reply(exc: BaseException) -> bool:
    """True for a real 4yz/5yz reply: the server answered, so nothing was accepted."""
    return isinstance(exc, SMTPResponseException) and 400 <= exc.code < 600


def _classify(exc: BaseException, body_sent: bool) -> _Kind:
    """Sort a failed attempt: try again, give up, or unknown (never try again)."""
    # security.md section 10: once the whole message is out, only a reply decides.
    if getattr(exc, "outcome_unknown", False) or (body_sent and not _is_reply(exc)):
        return _Kind.UNKNOWN
    if isinstance(exc, SMTPResponseException):
        # RFC 5321 section 4.2.1: 4yz is transient, 5yz permanent. Anything else (a
        # malformed reply, code -1) closed the connection before the body: try again.
        return _Kind.PERMANENT if 500 <= exc.code < 600 else _Kind.TRANSIENT
    # asyncio.TimeoutError: SMTPTimeoutError's base, the builtin TimeoutError from 3.11 on.
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError, OSError)):
        return _Kind.TRANSIENT  # disconnects, connect errors, timeouts (all fastsmtp's too)
    return _Kind.PERMANENT  # bad arguments, a missing extension, a bad configuration


class _Outcome:
    """How one attempt ended: the refused recipients and reply text, or an exception."""

    __slots__ = ("body_sent", "enhanced", "exception", "refused", "text")

    def __init__(
        self,
        refused: dict[str, SMTPResponse] | None,
        text: str,
        exception: Exception | None,
        enhanced: bool,
        body_sent: bool,
    ) -> None:
        self.refused = refused
        self.text = text
        self.exception = exception
        self.enhanced = enhanced
        self.body_sent = body_sent


class _RateLimit:
    """At most ``limit`` events in any ``period`` seconds (a sliding log of start times)."""

    def __init__(self, limit: int, period: float) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a rate limit needs a count >= 1 and a period > 0")
        self.limit = limit
        self.period = period
        self._times: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()  # first come, first served

    async def acquire(self) -> None:
        async with self._lock:
            loop = asyncio.get_running_loop()
            while True:
                now = loop.time()
                while self._times and self._times[0] <= now - self.period:
                    self._times.popleft()
                if len(self._times) < self.limit:
                    self._times.append(now)
                    return
                await asyncio.sleep(self._times[0] + self.period - now)


class _Job:
    """One message to send: how to run a transaction for some of its recipients."""

    __slots__ = ("kwargs", "message", "recipients", "replayable", "sender")

    def __init__(
        self,
        message: Message | MessageSource,
        sender: str | None,
        recipients: list[str],
        kwargs: dict[str, Any],
    ) -> None:
        self.message = message
        self.sender = sender
        self.recipients = recipients
        self.kwargs = kwargs
        # A stream can be read once only: no second attempt.
        self.replayable = isinstance(message, (bytes, str, Message))

    async def start(self, client: SMTP, recipients: list[str]) -> Submission:
        """Run the transaction up to the end of the message (``SMTP._submit``)."""
        kwargs = self.kwargs
        if isinstance(self.message, Message):
            return await client._submit_message(
                self.message,
                sender=self.sender,
                recipients=recipients,
                mail_options=kwargs.get("mail_options"),
                rcpt_options=kwargs.get("rcpt_options"),
                timeout=kwargs.get("timeout", _default),
            )
        assert self.sender is not None
        return await client._submit(
            self.sender,
            recipients,
            self.message,
            mail_options=kwargs.get("mail_options"),
            rcpt_options=kwargs.get("rcpt_options"),
            timeout=kwargs.get("timeout", _default),
            size=kwargs.get("size"),
            progress=kwargs.get("progress"),
        )


def _recipient_list(recipients: str | Sequence[str]) -> list[str]:
    return [recipients] if isinstance(recipients, str) else list(recipients)


class _SyncSource:
    """An iterator seen as an async iterator (``next`` never awaits, so no lock)."""

    def __init__(self, iterator: Iterator[BulkItem]) -> None:
        self._iterator = iterator

    async def next(self) -> BulkItem:
        try:
            return next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None
