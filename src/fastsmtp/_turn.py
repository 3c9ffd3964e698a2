"""The turn: one caller at a time writes to a connection, and what happens when it leaves.

Replies come back in the order the commands were sent (RFC 5321 section 4.1; RFC 2920
section 3.1), so a caller that writes must not interleave with another: it takes the turn
(``async with protocol.turn:``), writes, and may keep several commands outstanding within it
(pipelining). Waiters are served first come, first served.

A caller that leaves the turn with an exception of any kind, ``CancelledError`` included,
is reported to the connection (``on_abandon(turn_start, exc)``), which applies the session's one
cancellation rule (:meth:`fastsmtp._session.SMTPSession.abandon`) before the next caller
gets the turn.

The turn is re-entrant for the task that holds it: an exchange of several commands (AUTH,
STARTTLS and its handshake, DATA and its body) holds the turn and sends each command through
the client's ``execute_command``, which takes the turn again. Only the outermost holder
releases it or reports leaving early.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Protocol

__all__ = ("Turn",)

_current_task = asyncio.current_task


class _Counted(Protocol):
    sent_count: int


class Turn:
    """The right to write on one connection, as an async context manager.

    One object per connection (no allocation per turn).
    """

    __slots__ = (
        "_busy",
        "_depth",
        "_loop",
        "_on_abandon",
        "_owner",
        "_session",
        "start",
        "waiters",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        session: _Counted,
        on_abandon: Callable[[int, BaseException | None], None],
    ) -> None:
        self._loop = loop
        self._session = session
        self._on_abandon = on_abandon
        #: Callers waiting for the turn, first come first served.
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._busy = False
        self._owner: asyncio.Task[object] | None = None  # the task holding the turn
        self._depth = 0  # how many times the owner took it again
        #: The session's ``sent_count`` when the current turn began.
        self.start = 0

    async def __aenter__(self) -> None:
        task = _current_task()
        if self._busy:
            if task is self._owner and task is not None:
                self._depth += 1
                return
            await self.acquire()
        else:
            self._busy = True  # (acquire()'s fast path, without a second coroutine)
        self._owner = task
        self.start = self._session.sent_count

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: object,
    ) -> None:
        if self._depth:
            self._depth -= 1  # the outermost holder reports and releases
            return
        try:
            if exc_type is not None:
                self._on_abandon(self.start, exc)
        finally:
            self.release()

    async def acquire(self) -> None:
        """Wait for the turn (prefer ``async with``, which also handles leaving early)."""
        if not self._busy:
            self._busy = True
            return
        waiter = self._loop.create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # we were handed the turn but are leaving: pass it on
            else:
                waiter.cancel()
            raise

    def release(self) -> None:
        """Hand the turn to the next waiting caller, or mark the connection idle."""
        self._owner = None
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # still busy: the turn passes on
                return
        self._busy = False
