"""Fair connection slots: at most ``limit`` sends hold a connection at once.

A slot is what a send (or a connection being retired) holds while it uses a connection;
idle connections hold none. Waiters are served first come, first served: a released
slot is handed straight to the longest waiter, so a newcomer can never take it first.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

from ..errors import SMTPException

__all__ = ("PoolClosedError", "Slots")


class PoolClosedError(SMTPException):
    """The pool was closed before this send got a connection."""


class Slots:
    """``limit`` slots, handed out in FIFO order; :meth:`close` fails every waiter."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._drained: asyncio.Event | None = None  # created in the loop that waits
        self.closed = False

    async def acquire(self) -> None:
        """Take a slot, waiting in line if none is free; raises PoolClosedError."""
        if self.closed:
            raise PoolClosedError("The SMTP pool is closed")
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            self._drained_event().clear()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the releasing holder hands its slot over
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # handed over just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def waiting(self) -> bool:
        """True if a send is waiting for a slot."""
        return bool(self._waiters)

    def release(self) -> None:
        """Give the slot to the next waiter, or free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # in_use is unchanged: the slot changes hands
                return
        self.in_use -= 1
        if not self.in_use:
            self._drained_event().set()

    def close(self) -> None:
        """Take no more holders; every waiter fails with PoolClosedError."""
        self.closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosedError("The SMTP pool is closed"))

    async def drained(self) -> None:
        """Wait until no slot is held."""
        if self.in_use:
            await self._drained_event().wait()

    def _drained_event(self) -> asyncio.Event:
        if self._drained is None:
            self._drained = asyncio.Event()
        return self._drained
