"""A rate limit shared by every worker of a fleet: one GCRA bucket in Redis.

GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp, the
"theoretical arrival time" TAT) in one Lua script, so the check and the update are
atomic across workers. Each call *reserves* the next slot and returns how long to wait
for it: one round trip per message whatever the contention, and first come, first
served. Times come from the Redis server's clock (``TIME``), so workers on machines
whose clocks disagree still share one schedule.

The guarantee: with ``limit`` per ``period`` and ``burst`` b, at most ``limit + b``
transactions start in any window of ``period`` seconds (b + 1 at once after an idle
spell, then one every ``period / limit`` seconds).
"""

from __future__ import annotations

import asyncio

from ._redis import Redis

__all__ = ("RedisRateLimiter",)

# KEYS[1]: the bucket. ARGV: emission interval T and tolerance tau, in microseconds.
# Returns the wait in microseconds before the slot reserved for this caller.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return wait
"""


class RedisRateLimiter:
    """At most ``limit`` (+ ``burst``) transactions per ``period`` seconds across every
    process using the same Redis ``key`` (one key per relay; a key per recipient domain
    for per-domain limits). Pass it as ``SMTPPool(rate_limiter=...)``."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        *,
        limit: int,
        period: float = 1.0,
        burst: int = 0,
    ) -> None:
        if limit < 1 or period <= 0 or burst < 0:
            raise ValueError("a rate limit needs limit >= 1, period > 0 and burst >= 0")
        self.redis = redis
        self.key = key
        self.limit = limit
        self.period = period
        self.burst = burst
        self._interval_us = round(period * 1_000_000 / limit)
        self._script = redis.register_script(_RESERVE)

    async def reserve(self) -> float:
        """Reserve the next slot; the seconds to wait for it (one Redis round trip)."""
        wait_us = await self._script(
            keys=[self.key], args=[self._interval_us, self._interval_us * self.burst]
        )
        return int(wait_us) / 1_000_000

    async def acquire(self) -> None:
        """Wait until this worker's reserved slot comes."""
        wait = await self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)
