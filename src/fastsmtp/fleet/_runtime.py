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

__all__ = ("Fleet", "FleetRuntime", "FleetSettings")

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
    #: Trace and measure each send with fastsmtp.otel (the ``otel`` extra), on the
    #: global OpenTelemetry providers unless ``Fleet`` is given its own.
    telemetry: bool = False


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


class Fleet:
    """A pool, a Redis client, the ledger and the shared limiter, for one event loop.

    ``await fleet.open()`` on the loop that will send (a taskiq worker's, or a
    :class:`FleetRuntime`'s thread), then ``await fleet.send(...)``; ``aclose()`` at the end.
    """

    def __init__(
        self, settings: FleetSettings, *, tracer_provider: Any = None, meter_provider: Any = None
    ) -> None:
        self.settings = settings
        self._providers = (tracer_provider, meter_provider)
        self.telemetry: Any = None  # fastsmtp.otel.PoolTelemetry when settings.telemetry
        self.redis: Any = None
        self.ledger: DeliveryLedger
        self.limiter: RedisRateLimiter | None = None
        self.pool: SMTPPool

    async def open(self) -> Fleet:
        s = self.settings
        self.redis = redis_asyncio.from_url(s.redis_url)
        if s.rate_limit is not None:
            self.limiter = RedisRateLimiter(
                self.redis, s.rate_key, limit=s.rate_limit, period=s.rate_period, burst=s.rate_burst
            )
        self.ledger = DeliveryLedger(
            self.redis,
            prefix=s.ledger_prefix,
            lease=s.lease,
            sending_grace=s.sending_grace,
            retention=s.retention,
        )
        self.pool = SMTPPool(**s.pool)
        if s.telemetry:
            from ..otel import PoolTelemetry

            tracer_provider, meter_provider = self._providers
            self.telemetry = PoolTelemetry(
                self.pool, tracer_provider=tracer_provider, meter_provider=meter_provider
            )
        return self

    async def send(
        self,
        message: Message | bytes | str,
        *,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """:func:`send_once` with this fleet's pool, ledger and limiter (in a span, and
        measured, when ``settings.telemetry``)."""
        if self.telemetry is None:
            return await send_once(
                self.pool, self.ledger, message,
                sender=sender, recipients=recipients, key=key, limiter=self.limiter,
            )  # fmt: skip
        from ..otel import message_size

        listed = [recipients] if isinstance(recipients, str) else list(recipients or [])
        with self.telemetry.measure(message_size(message), listed, sender) as done:
            data = await send_once(
                self.pool, self.ledger, message,
                sender=sender, recipients=recipients, key=key, limiter=self.limiter,
                on_result=done,
            )  # fmt: skip
            from opentelemetry import trace

            # new, or what another worker's attempt left (sent, unknown, failed, busy)
            trace.get_current_span().set_attribute("fastsmtp.ledger", data["ledger"])
        return data

    async def aclose(self) -> None:
        """QUIT the pool's connections, then close the Redis client."""
        try:
            await self.pool.close()
        finally:
            await self.redis.aclose()


class FleetRuntime:
    """The loop thread of one worker process, with its :class:`Fleet`."""

    def __init__(self, settings: FleetSettings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.loop = _new_loop(settings.loop)
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="fastsmtp-fleet", daemon=True
        )
        self._thread.start()
        self.fleet = self.run(Fleet(settings).open())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the runtime's loop and wait for its result (from any thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, make: Callable[[Fleet], Coroutine[Any, Any, T]]) -> T:
        """``run(make(self.fleet))``."""
        return self.run(make(self.fleet))

    def close(self, timeout: float = 30.0) -> None:
        """QUIT the pool's connections, close Redis, stop the loop thread."""
        if not self.loop.is_running():
            return
        try:
            self.run(self.fleet.aclose(), timeout)
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
