"""RedisRateLimiter on a real redis-server: one schedule for every client of a key."""

from __future__ import annotations

import asyncio

import pytest

from fastsmtp import SMTPPool
from tests.pool.server import PoolServer

from .conftest import need

need("redis", "test")

import redis.asyncio as aioredis  # noqa: E402

from fastsmtp.fleet import RedisRateLimiter  # noqa: E402


def most_in_window(times: list[float], window: float) -> int:
    """The most events in any half-open window [t, t + window) starting at an event."""
    times = sorted(times)
    best = 0
    j = 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


async def test_reservations_follow_one_schedule_across_clients(redis_url: str) -> None:
    clients = [aioredis.from_url(redis_url) for _ in range(3)]
    try:
        limiters = [RedisRateLimiter(c, "relay:a", limit=100, burst=4) for c in clients]
        # 30 reservations at once from three "workers": the waits are the slots of one
        # schedule: burst + 1 now, then one every 10 ms, whoever asked. A wait is the
        # slot minus the Redis clock when the call was served, so the last one is 250 ms
        # less the time the 30 calls took.
        loop = asyncio.get_running_loop()
        start = loop.time()
        waits = await asyncio.gather(*(limiters[i % 3].reserve() for i in range(30)))
        took = loop.time() - start
        # Slot k (0-based) is at max(0, (k - 4) * 10 ms). The (k+1)-th smallest wait is
        # at most slot k (k + 1 calls hold slots no later than it) and at least slot k
        # less the time the calls took (one of them holds slot k or a later one): with
        # three separate buckets, 15 calls would go at once and break the lower bound.
        for k, wait in enumerate(sorted(waits)):
            slot = max(0.0, (k - 4) * 0.01)
            assert slot - took - 0.001 <= wait <= slot + 0.001, (k, wait, took)
        assert sorted(waits)[:5] == [0.0] * 5
        # The schedule moved on by 26 slots: the next caller waits for the 31st.
        assert 0.25 - (loop.time() - start) - 0.001 <= await limiters[0].reserve() <= 0.26
        # Another key is another bucket.
        other = RedisRateLimiter(clients[0], "relay:b", limit=100)
        assert await other.reserve() == 0
    finally:
        for c in clients:
            await c.aclose()


async def test_acquire_holds_the_limit_in_every_window(redis_url: str) -> None:
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    loop = asyncio.get_running_loop()
    granted: list[float] = []
    try:
        limiters = [RedisRateLimiter(c, "relay:w", limit=20, period=0.5, burst=2) for c in clients]

        async def one(i: int) -> None:
            await limiters[i % 2].acquire()
            granted.append(loop.time())

        start = loop.time()
        await asyncio.gather(*(one(i) for i in range(50)))
        elapsed = loop.time() - start
    finally:
        for c in clients:
            await c.aclose()
    # 20 + 2 per 0.5 s: the schedule (Redis clock) has 22 slots at most in any 0.5 s
    # window. Observed here, each grant is shifted by its own round trip and wake-up
    # delay, so a window of exactly 0.5 s can catch one more slot at its edge (with
    # shifts under half an interval, 12.5 ms): 23.
    assert most_in_window(granted, 0.5) <= 22 + 1
    # Over the whole run the limit is exact: the 50th slot is 27 intervals (25 ms each)
    # after the first.
    assert elapsed >= 27 * 0.025 - 0.005


async def test_the_pool_honours_a_shared_limiter(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        limiter = RedisRateLimiter(client, "relay:pool", limit=40, period=1.0)
        loop = asyncio.get_running_loop()
        async with PoolServer() as server:
            start = loop.time()
            async with SMTPPool(
                hostname="127.0.0.1", port=server.port, rate_limiter=limiter,
                max_messages_per_period=1000, local_hostname="c.test",
            ) as pool:  # fmt: skip
                sends = [
                    pool.sendmail("s@x.test", ["r@x.test"], f"Subject: {i}\r\n\r\nx\r\n")
                    for i in range(12)
                ]
                await asyncio.gather(*sends)
        mail_times = sorted(
            t
            for s in server.sessions
            for line, t in zip(s.lines, s.times, strict=True)
            if line.startswith("MAIL")
        )
    finally:
        await client.aclose()
    assert len(mail_times) == 12
    # One every 25 ms: the 12th MAIL comes at least 11 intervals after the first slot,
    # which was not before the start (2 ms for the Redis and loop clocks' offset).
    assert mail_times[-1] - start >= 11 * 0.025 - 0.002


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RedisRateLimiter(None, "k", limit=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RedisRateLimiter(None, "k", limit=1, burst=-1)  # type: ignore[arg-type]
