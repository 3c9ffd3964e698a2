"""One event loop, one SMTPPool and one Redis client per worker process, for its life.

A synchronous task queue worker (Celery's prefork, threads or solo pool) runs tasks on
threads that have no event loop. Calling ``asyncio.run`` per message would open and close
a connection per message; instead each worker process keeps a :class:`FleetRuntime`: a
daemon thread running one loop (uvloop when installed) that owns the pool, and tasks hand
it coroutines with ``run``. A process started by fork (prefork children) gets its own,
made on its first task.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, TypeVar

from ..pool import SMTPPool
from ._ledger import DeliveryLedger
from ._limiter import RedisRateLimiter
from ._redis import redis_asyncio
from ._send import send_once

__all__ = ("FleetRuntime", "FleetSettings")

T = TypeVar("T")


@dataclass
class FleetSettings:
    """What each worker process builds its runtime from (all picklable plain data).

    ``pool`` holds ``SMTPPool`` keyword arguments. ``rate_limit`` (messages per
    ``rate_period`` seconds, shared by the whole fleet under ``rate_key``; None: no shared
    limit) with ``rate_burst``. ``lease``, ``sending_grace`` and ``retention``: see
    :class:`DeliveryLedger`. ``loop``: ``"uvloop"``, ``"asyncio"`` or None (uvloop when
    installed).
    """

    redis_url: str
    pool: dict[str, Any] = field(default_factory=dict)
    rate_limit: int | None = None
    rate_period: float = 1.0
    rate_burst: int = 0
    rate_key: str = "fastsmtp:rate:default"
    ledger_prefix: str = "fastsmtp:ledger"
    lease: float = 300.0
    sending_grace: float = 900.0
    retention: float = 7 * 86400.0
    loop: str | None = None


def _new_loop(kind: str | None) -> asyncio.AbstractEventLoop:
    if kind in (None, "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class FleetRuntime:
    """The loop thread of one worker process, with its pool, limiter and ledger."""

    def __init__(self, settings: FleetSettings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.loop = _new_loop(settings.loop)
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="fastsmtp-fleet", daemon=True
        )
        self._thread.start()
        self.redis, self.ledger, self.limiter, self.pool = self.run(self._build())

    async def _build(self) -> tuple[Any, DeliveryLedger, RedisRateLimiter | None, SMTPPool]:
        s = self.settings
        redis = redis_asyncio.from_url(s.redis_url)
        limiter = (
            RedisRateLimiter(
                redis, s.rate_key, limit=s.rate_limit, period=s.rate_period, burst=s.rate_burst
            )
            if s.rate_limit is not None
            else None
        )
        ledger = DeliveryLedger(
            redis,
            prefix=s.ledger_prefix,
            lease=s.lease,
            sending_grace=s.sending_grace,
            retention=s.retention,
        )
        return redis, ledger, limiter, SMTPPool(**s.pool)

    async def send(
        self,
        message: Message | bytes | str,
        *,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """:func:`send_once` with this runtime's pool, ledger and limiter (on its loop)."""
        return await send_once(
            self.pool, self.ledger, message,
            sender=sender, recipients=recipients, key=key, limiter=self.limiter,
        )  # fmt: skip

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the runtime's loop and wait for its result (from any thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, make: Callable[[FleetRuntime], Coroutine[Any, Any, T]]) -> T:
        """``run(make(self))``."""
        return self.run(make(self))

    def close(self, timeout: float = 30.0) -> None:
        """QUIT the pool's connections, close Redis, stop the loop thread."""
        if not self.loop.is_running():
            return

        async def shutdown() -> None:
            try:
                await self.pool.close()
            finally:
                await self.redis.aclose()

        try:
            self.run(shutdown(), timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self.loop.close()


_lock = threading.Lock()
_runtimes: dict[tuple[int, str], FleetRuntime] = {}


def runtime_for(name: str, settings: FleetSettings) -> FleetRuntime:
    """This process's runtime called ``name`` (made on first use, one per process)."""
    key = (os.getpid(), name)
    with _lock:
        found = _runtimes.get(key)
        if found is None:
            found = _runtimes[key] = FleetRuntime(settings)
        return found


def close_runtimes() -> None:
    """Close every runtime of this process (at worker shutdown)."""
    pid = os.getpid()
    with _lock:
        mine = [k for k in _runtimes if k[0] == pid]
        runtimes = [_runtimes.pop(k) for k in mine]
    for runtime in runtimes:
        runtime.close()
