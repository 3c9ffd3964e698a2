"""Rate limits for the pool: at most ``limit`` events in any ``period`` seconds.

Used for transactions started (``max_messages_per_period``) and for connections opened,
each with its login (``max_logins_per_period``): providers throttle both.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Protocol

__all__ = ("AllLimits", "RateLimit", "RateLimiter")


class RateLimiter(Protocol):
    """What ``SMTPPool(rate_limiter=...)`` accepts: one ``acquire()`` per transaction
    started, returning when it may start (e.g. ``fastsmtp.fleet.RedisRateLimiter``,
    shared by every worker of a fleet)."""

    async def acquire(self) -> None: ...


class AllLimits:
    """Several limits at once: ``acquire`` waits for each in turn."""

    def __init__(self, *limits: RateLimiter) -> None:
        self.limits = limits

    async def acquire(self) -> None:
        for limit in self.limits:
            await limit.acquire()


class RateLimit:
    """At most ``limit`` events in any ``period`` seconds (a sliding log of start times)."""

    def __init__(self, limit: int, period: float) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a rate limit needs a count >= 1 and a period > 0")
        self.limit = limit
        self.period = period
        self._times: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()  # first come, first served

    async def acquire(self) -> None:
        """Wait until one more event fits in the window, and record it."""
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
