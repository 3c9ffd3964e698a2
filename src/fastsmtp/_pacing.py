"""The shell's bookkeeping: batches of owed replies, their deadlines, and write flow control.

A :class:`Batch` is one write of one or more commands and the replies it expects (RFC 2920
section 3.1: replies come back in the order the commands were sent). :class:`Deadlines`
watches every outstanding batch's whole-reply deadline with one event-loop timer per
connection: set for the earliest deadline and moved on lazily when it fires, so a batch
answered in time costs no timer operations (and a server dripping a byte at a time cannot
stretch a deadline). :class:`WriteFlow` is the transport's write flow control as something a
writer can await, with a no-progress limit.

These are parts of :class:`fastsmtp.protocol.SMTPProtocol`, kept apart so the shell reads
as what it does with them.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from .errors import (
    SMTPReadTimeoutError,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from .response import SMTPResponse

__all__ = ("Batch", "Deadlines", "WriteFlow", "fresh")


class Batch:
    """Replies expected for one write, and the future that gets them."""

    __slots__ = ("deadline", "expected", "future", "quit", "redact", "replies", "taken", "then")

    def __init__(self, future: asyncio.Future[list[SMTPResponse]], expected: int) -> None:
        self.future = future
        self.expected = expected
        self.replies: list[SMTPResponse] = []
        self.deadline: float | None = None
        self.redact = False
        self.quit = False
        self.taken = 0  # replies already handed to the session
        #: Called with the batch when its last reply is in, before its waiter is woken
        #: (and only if the waiter is still there); True means it carried the future
        #: on to a batch of its own (``fastsmtp._go_ahead``), so it is not resolved now.
        self.then: Callable[[Batch], bool] | None = None


def fresh(exc: Exception) -> Exception:
    """A new exception object like ``exc``: each waiter gets its own, so marking one
    (``outcome_unknown``) never changes what another caller sees."""
    try:
        if type(exc) is SMTPResponseException:
            new: Exception = SMTPResponseException(exc.code, exc.message)
        else:
            new = type(exc)(*exc.args)
    except Exception:  # an exception class with another signature: share it
        return exc
    new.__cause__ = exc.__cause__
    return new


class Deadlines:
    """One timer for the whole-reply deadlines of every outstanding batch."""

    __slots__ = ("_batches", "_loop", "_on_due", "_timer", "_when")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        batches: collections.deque[Batch],
        on_due: Callable[[Exception], None],
    ) -> None:
        self._loop = loop
        self._batches = batches  # the connection's outstanding batches, in order
        self._on_due = on_due  # called with the timeout error when a deadline passes
        self._timer: asyncio.TimerHandle | None = None
        self._when = 0.0  # when the timer is set for

    def arm(self, batch: Batch, timeout: float | None) -> None:
        """Give ``batch`` its whole-reply deadline, ``timeout`` seconds from now."""
        if timeout is None:
            return
        deadline = self._loop.time() + timeout
        batch.deadline = deadline
        timer = self._timer
        if timer is None or deadline < self._when:
            if timer is not None:
                timer.cancel()
            self._watch(deadline)

    def stop(self) -> None:
        """No batch is waited for any more (the connection ended)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _watch(self, when: float) -> None:
        self._timer = self._loop.call_at(when, self._reached, when)
        self._when = when

    def _reached(self, when: float) -> None:
        """The timer fired for ``when``: time out if a batch is due, else move on."""
        self._timer = None
        upcoming: float | None = None
        for batch in self._batches:
            deadline = batch.deadline
            if deadline is None:
                continue
            if deadline <= when:
                self._on_due(SMTPReadTimeoutError("Timed out waiting for server response"))
                return
            if upcoming is None or deadline < upcoming:
                upcoming = deadline
        if upcoming is not None:
            self._watch(upcoming)


class WriteFlow:
    """The transport's write flow control (``pause_writing``/``resume_writing``) as
    something to await, with a no-progress limit."""

    __slots__ = ("_loop", "_on_stall", "_resumes", "_waiter", "paused")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_stall: Callable[[Exception], None]
    ) -> None:
        self._loop = loop
        self._on_stall = on_stall  # called with the timeout error when a drain stalls
        self._waiter: asyncio.Future[None] | None = None
        #: The transport's buffer is above its high-water mark.
        self.paused = False
        self._resumes = 0  # how many times the buffer went below the mark

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._resumes += 1
        self.wake()

    def wake(self) -> None:
        """Let a writer waiting to drain go on (resumed, or it has nothing to wait for)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._waiter = None

    def lost(self) -> None:
        """The connection ended: a writer waiting to drain learns it."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(SMTPServerDisconnected("Connection lost"))
        self._waiter = None

    async def drain(self, timeout: float | None) -> None:
        """Wait until the buffer is below its high-water mark; a buffer that does not
        drain within ``timeout`` (the peer stopped reading) raises SMTPTimeoutError and
        reports it to ``on_stall`` (which closes the connection)."""
        if not self.paused:
            return
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = None
        if timeout is not None:
            timer = self._loop.call_at(self._loop.time() + timeout, self._stalled, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()

    def watch(self, timeout: float | None) -> None:
        """:meth:`drain` for a writer that cannot wait (a write made from a read
        callback): a buffer still above its mark ``timeout`` from now, never having
        gone below it meanwhile, is reported to ``on_stall`` all the same."""
        if not self.paused or timeout is None:
            return
        self._loop.call_at(self._loop.time() + timeout, self._unmoved, self._resumes)

    def _unmoved(self, resumes: int) -> None:
        if self.paused and self._resumes == resumes:
            self._on_stall(
                SMTPTimeoutError("Timed out sending message data: the server stopped reading")
            )

    def _stalled(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():
            return
        error = SMTPTimeoutError("Timed out sending message data: the server stopped reading")
        waiter.set_exception(error)
        self._on_stall(error)
