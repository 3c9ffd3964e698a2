"""SMTPPool: outcome unknown, rate limits, closing with sends in flight, send_many input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from fastsmtp import SMTPException, SMTPServerDisconnected, SMTPTimeoutError
from fastsmtp.pool import BulkItem
from fastsmtp.results import SendResult, SendStatus
from tests.client.conftest import _collect_garbage  # noqa: F401  (fixture)
from tests.pool.server import CLOSE, HOLD, SILENT, PoolServer, Session
from tests.pool.test_pool import assert_once, message, pool_for, raw

# -- outcome unknown: never retried (RFC 1047) --------------------------------------------


@pytest.mark.parametrize("fault", ["disconnect", "timeout"])
async def test_no_final_reply_is_outcome_unknown_and_never_retried(fault: str) -> None:
    class Server(PoolServer):
        def reply_end(self, session: Session, message: int, body: bytes) -> str:
            if b"<m1@" in body:
                return CLOSE if fault == "disconnect" else SILENT
            return "250 2.0.0 queued"

    async with Server() as server, pool_for(server, timeout=0.5, max_attempts=5) as pool:
        results = await pool.send_many(message(i) for i in range(3))
        with pytest.raises((SMTPServerDisconnected, SMTPTimeoutError)) as info:
            await pool.send_message(message(1))
    assert info.value.outcome_unknown
    unknown = results[1]
    assert unknown.status is SendStatus.OUTCOME_UNKNOWN
    assert unknown.attempts == 1
    assert getattr(unknown.exception, "outcome_unknown", False)
    assert unknown.accepted == []
    assert [r.status for r in (results[0], results[2])] == [SendStatus.SENT] * 2
    # The body of m1 reached the server exactly twice: once per call, never retried.
    assert server.bodies == 4
    assert server.delivered() == {"<m0@pool.test>": 1, "<m2@pool.test>": 1}


async def test_final_4xx_after_the_body_is_a_reply_and_is_retried() -> None:
    class Server(PoolServer):
        def reply_end(self, session: Session, message: int, body: bytes) -> str:
            return "451 4.3.0 try later" if server.bodies == 1 else "250 2.0.0 queued"

    async with Server() as server, pool_for(server) as pool:
        (result,) = await pool.send_many([(raw(0), "a@example.com", "b@example.com")])
    assert result.status is SendStatus.SENT
    assert result.attempts == 2
    assert_once(server, ["<r0@pool.test>"])


# -- rate limits --------------------------------------------------------------------------


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_message_rate_limit() -> None:
    loop = asyncio.get_running_loop()
    async with PoolServer() as server:
        async with pool_for(
            server, max_connections=4, max_messages_per_period=10, rate_period=0.2
        ) as pool:
            started = loop.time()
            results = await pool.send_many(raw_items(30))
            elapsed = loop.time() - started
        mails = [
            t for s in server.sessions for t, v in zip(s.times, s.verbs, strict=True) if v == "MAIL"
        ]
    assert all(r.status is SendStatus.SENT for r in results)
    # 30 messages at 10 per 0.2 s: the third ten starts no earlier than 0.4 s in.
    assert 0.4 <= elapsed < 3.0
    # Seen at the server, with a 10 % allowance for delivery jitter on the window.
    assert _max_in_window(mails, 0.18) <= 10


async def test_login_rate_limit() -> None:
    loop = asyncio.get_running_loop()
    async with (
        PoolServer(credentials=("u", "p")) as server,
        pool_for(
            server,
            username="u",
            password="p",
            max_connections=6,
            max_logins_per_period=2,
            rate_period=0.2,
        ) as pool,
    ):
        started = loop.time()
        results = await pool.send_many(raw_items(12), concurrency=6)
        elapsed = loop.time() - started
    assert all(r.status is SendStatus.SENT for r in results)
    opened = [s.opened_at for s in server.sessions]
    assert len(opened) == 6
    assert server.logins == 6
    assert 0.4 <= elapsed < 3.0  # logins 5 and 6 wait for the third window
    assert _max_in_window(opened, 0.18) <= 2


# -- closing with sends in flight ---------------------------------------------------------


async def test_close_with_sends_in_flight_ends_cleanly() -> None:
    class Server(PoolServer):
        def reply_end(self, session: Session, message: int, body: bytes) -> str:
            return HOLD  # answered when the test sets server.release

    async with Server() as server:
        pool = pool_for(server, max_connections=3)
        bulk = asyncio.ensure_future(pool.send_many(raw_items(20), concurrency=6))
        await server.wait_for(lambda: server.bodies == 3)  # three bodies await a reply
        waiting = asyncio.ensure_future(pool.sendmail("a@x.com", "b@x.com", raw(99)))
        closing = asyncio.ensure_future(pool.close())
        await asyncio.sleep(0)  # one step: the send queues for a slot, close() begins
        server.release.set()
        await closing
        results = await bulk
        with pytest.raises(SMTPException, match="closed"):
            await waiting
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert set(leftover) <= server.tasks  # only the server's own, already answered
    assert len(results) == 20
    # The three held bodies, and whatever was already pipelined behind them on those
    # connections (RFC 2920), finish as sent; everything still queued fails untried.
    sent = [i for i, r in enumerate(results) if r.status is SendStatus.SENT]
    assert len(sent) >= 3
    for i, r in enumerate(results):
        if i not in sent:
            assert r.status is SendStatus.FAILED_TEMPORARILY
            assert r.attempts == 0
            assert isinstance(r.exception, SMTPException)
    assert_once(server, [f"<r{i}@pool.test>" for i in sent])
    assert len(server.sessions) == 3
    assert all(s.quit for s in server.sessions)
    assert pool.connection_count == 0


async def test_closed_pool_refuses_sends() -> None:
    async with PoolServer() as server:
        pool = pool_for(server)
        await pool.close()
        with pytest.raises(SMTPException, match="closed"):
            await pool.sendmail("a@x.com", "b@x.com", raw(0))
        (result,) = await pool.send_many([message(0)])
    assert result.status is SendStatus.FAILED_TEMPORARILY and result.attempts == 0
    assert server.sessions == []


# -- send_many input ----------------------------------------------------------------------


def raw_items(count: int) -> Iterator[BulkItem]:
    for i in range(count):
        yield raw(i), "a@example.com", ["b@example.com"]


async def test_send_many_reads_lazily_with_bounded_look_ahead() -> None:
    pulled = 0

    def source() -> Iterator[BulkItem]:
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield message(i)

    ahead: list[int] = []

    def progress(done: int, result: SendResult) -> None:
        ahead.append(pulled - done)

    async with PoolServer() as server, pool_for(server, max_connections=4) as pool:
        results = await pool.send_many(source(), concurrency=5, progress=progress)
    assert len(results) == 200
    assert max(ahead) <= 5
    assert_once(server, [f"<m{i}@pool.test>" for i in range(200)])


async def test_send_many_async_source_mixed_items_in_order() -> None:
    async def source() -> AsyncIterator[BulkItem]:
        yield message(0)
        yield raw(1), "a@example.com", "b@example.com"
        yield message(2), "other@example.com", ["c@example.com", "d@example.com"]
        yield "not a message"  # type: ignore[misc]
        yield raw(4).decode(), "a@example.com", ["e@example.com"]
        yield raw(5), None, ["b@example.com"]

    async with PoolServer() as server, pool_for(server) as pool:
        results = await pool.send_many(source(), concurrency=3)
    statuses = [r.status for r in results]
    assert statuses == [
        SendStatus.SENT,
        SendStatus.SENT,
        SendStatus.SENT,
        SendStatus.FAILED_PERMANENTLY,
        SendStatus.SENT,
        SendStatus.FAILED_PERMANENTLY,
    ]
    assert isinstance(results[3].exception, TypeError)
    assert isinstance(results[5].exception, ValueError)
    assert results[2].accepted == ["c@example.com", "d@example.com"]
    assert results[0].reply is not None and results[0].reply.code == 250
    by_id = {d.message_id: d for d in server.deliveries}
    assert by_id["<m2@pool.test>"].sender == "other@example.com"
    assert_once(server, ["<m0@pool.test>", "<r1@pool.test>", "<m2@pool.test>", "<r4@pool.test>"])


async def test_one_bad_message_does_not_stop_the_rest() -> None:
    bad = message(1)
    del bad["From"]
    async with PoolServer() as server, pool_for(server) as pool:
        results = await pool.send_many([message(0), bad, message(2)])
    assert [r.status for r in results] == [
        SendStatus.SENT,
        SendStatus.FAILED_PERMANENTLY,
        SendStatus.SENT,
    ]
    assert isinstance(results[1].exception, ValueError)
    assert_once(server, ["<m0@pool.test>", "<m2@pool.test>"])
