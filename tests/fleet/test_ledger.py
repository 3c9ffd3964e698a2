"""DeliveryLedger and send_once on a real redis-server, against a real SMTP server.

Each step of the ledger is one Lua script; these tests drive two "workers" (two owners,
two Redis connections) at the same entries and check who may send, and what the SMTP
server received.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from fastsmtp import SMTPPool
from tests.pool.server import CLOSE, PoolServer, Session

from .conftest import need

need("redis", "test")

import redis.asyncio as aioredis  # noqa: E402

from fastsmtp.fleet import DeliveryLedger, LeaseLost, LedgerState, send_once  # noqa: E402

FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "local_hostname": "client.test"}


def raw(i: int) -> bytes:
    return f"Message-ID: <f{i}@fleet.test>\r\nSubject: {i}\r\n\r\nbody {i}\r\n".encode()


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_one_claim_wins_and_only_its_owner_may_begin(redis_url: str) -> None:
    async with connected(redis_url) as r1, connected(redis_url) as r2:
        a, b = DeliveryLedger(r1), DeliveryLedger(r2)
        claims = await asyncio.gather(a.claim("k", "A"), b.claim("k", "B"))
        assert sorted(c.state for c in claims) == ["busy", "claimed"]
        winner = "A" if claims[0].won else "B"
        loser = "B" if winner == "A" else "A"
        with pytest.raises(LeaseLost):
            await a.begin("k", loser)
        await a.begin("k", winner)
        assert (await a.state("k"))[0] == "sending"
        # While it is sending (within the grace), nobody else may take it.
        assert (await b.claim("k", "C")).state == "busy"
        assert await b.finish("k", winner, LedgerState.SENT, {"status": "sent"})
        found = await a.claim("k", "D")
        assert (found.state, found.record) == ("sent", {"status": "sent"})
        assert not await a.finish("k", "D", LedgerState.FAILED, {})  # not D's


async def test_a_claim_expires_but_a_dead_senders_entry_becomes_unknown(redis_url: str) -> None:
    async with connected(redis_url) as r:
        ledger = DeliveryLedger(r, lease=0.05, sending_grace=0.05)
        assert (await ledger.claim("before", "dead1")).won
        assert (await ledger.claim("during", "dead2")).won
        await ledger.begin("during", "dead2")
        # A worker that died before its transaction: its lease runs out.
        assert (await ledger.claim("before", "early")).state == "busy"
        await asyncio.sleep(0.05 + 0.002)
        assert sorted(await ledger.stale(0.05)) == ["before", "during"]  # for a sweep
        assert (await ledger.claim("before", "next")).won
        with pytest.raises(LeaseLost):  # the dead owner cannot come back and send
            await ledger.begin("before", "dead1")
        # One that died mid-transaction: reported unknown once the grace is over, never
        # claimed again.
        await asyncio.sleep(0.06)
        assert (await ledger.claim("during", "next")).state == "unknown"
        assert (await ledger.claim("during", "next2")).state == "unknown"
        assert await r.pttl("fastsmtp:ledger:during") > 86400_000
        # ...unless its owner was only slow: it records the truth.
        assert await ledger.finish("during", "dead2", LedgerState.SENT, {"status": "sent"})
        assert (await ledger.claim("during", "x")).state == "sent"


async def test_a_temporary_failure_may_be_claimed_again(redis_url: str) -> None:
    async with connected(redis_url) as r:
        ledger = DeliveryLedger(r)
        assert (await ledger.claim("t", "A")).won
        await ledger.finish("t", "A", LedgerState.FAILED_TEMPORARILY, {"status": "x"})
        assert (await ledger.claim("t", "B")).won
        await ledger.finish("t", "B", LedgerState.FAILED, {"status": "failed_permanently"})
        assert (await ledger.claim("t", "C")).state == "failed"


async def test_send_once_sends_each_message_once_across_workers(redis_url: str) -> None:
    async with PoolServer() as server, connected(redis_url) as r1, connected(redis_url) as r2:
        pool1 = SMTPPool(hostname="127.0.0.1", port=server.port, **FAST)  # type: ignore[arg-type]
        pool2 = SMTPPool(hostname="127.0.0.1", port=server.port, **FAST)  # type: ignore[arg-type]
        l1, l2 = DeliveryLedger(r1), DeliveryLedger(r2)
        async with pool1, pool2:
            sends = [
                send_once(pool, ledger, raw(i), sender="s@fleet.test", recipients=["r@x.test"])
                for i in range(40)
                for pool, ledger in ((pool1, l1), (pool2, l2))
            ]
            results = await asyncio.gather(*sends)
            again = await send_once(pool1, l1, raw(0), sender="s@fleet.test", recipients="r@x")
    delivered = server.delivered()
    assert sorted(delivered) == sorted(f"<f{i}@fleet.test>" for i in range(40))
    assert set(delivered.values()) == {1}
    new = [d for d in results if d["ledger"] == "new"]
    assert len(new) == 40 and all(d["status"] == "sent" for d in new)
    # The other copy of each was told (busy while in flight, or sent afterwards).
    assert all(d["ledger"] in ("busy", "sent") for d in results if d["ledger"] != "new")
    assert again["ledger"] == "sent" and again["status"] == "sent"
    assert again["reply"] == {"code": 250, "text": "2.0.0 queued"}


async def test_an_unknown_outcome_is_recorded_and_never_resent(redis_url: str) -> None:
    class DropsAfterData(PoolServer):
        def reply_end(self, session: Session, message: int, body: bytes) -> str:
            return CLOSE  # the message is in, the final reply never comes

    async with DropsAfterData() as server, connected(redis_url) as r:
        ledger = DeliveryLedger(r)
        async with SMTPPool(hostname="127.0.0.1", port=server.port, **FAST) as pool:  # type: ignore[arg-type]
            first = await send_once(pool, ledger, raw(1), sender="s@x.test", recipients="r@x")
            second = await send_once(pool, ledger, raw(1), sender="s@x.test", recipients="r@x")
    assert first["status"] == "outcome_unknown" and first["ledger"] == "new"
    assert second["ledger"] == "unknown" and second["status"] == "outcome_unknown"
    assert server.bodies == 1  # sent once, never again


async def test_a_permanent_refusal_is_recorded_with_its_reason(redis_url: str) -> None:
    class Refuses(PoolServer):
        def reply_rcpt(self, session: Session, address: str) -> str:
            return "550 5.1.1 no such user"

    async with Refuses() as server, connected(redis_url) as r:
        ledger = DeliveryLedger(r)
        async with SMTPPool(hostname="127.0.0.1", port=server.port, **FAST) as pool:  # type: ignore[arg-type]
            first = await send_once(pool, ledger, raw(2), sender="s@x.test", recipients="r@x")
            second = await send_once(pool, ledger, raw(2), sender="s@x.test", recipients="r@x")
    assert first["status"] == "failed_permanently"
    assert first["refused"] == {
        "r@x": {"code": 550, "enhanced_status": "5.1.1", "text": "5.1.1 no such user"}
    }
    assert (second["ledger"], second["refused"]) == ("failed", first["refused"])
    assert sum(s.verbs.count("MAIL") for s in server.sessions) == 1


async def test_a_lost_lease_sends_nothing(redis_url: str) -> None:
    async with PoolServer() as server, connected(redis_url) as r:
        ledger = DeliveryLedger(r, lease=0.05)

        class Slow:  # a rate limit that makes the worker wait past its lease...
            async def acquire(self) -> None:
                await asyncio.sleep(0.05 + 0.002)
                # ...and another worker takes the message meanwhile.
                assert (await ledger.claim("<f3@fleet.test>", "other")).won

        async with SMTPPool(
            hostname="127.0.0.1", port=server.port, rate_limiter=Slow(), **FAST  # type: ignore[arg-type]
        ) as pool:
            data = await send_once(pool, ledger, raw(3), sender="s@x.test", recipients="r@x")
    assert data["ledger"] == "busy" and data["attempts"] == 1
    assert "LeaseLost" in data["error"]
    assert server.bodies == 0 and not any("MAIL" in s.verbs for s in server.sessions)


async def test_the_message_id_is_the_default_key_and_required(redis_url: str) -> None:
    async with PoolServer() as server, connected(redis_url) as r:
        ledger = DeliveryLedger(r)
        async with SMTPPool(hostname="127.0.0.1", port=server.port, **FAST) as pool:  # type: ignore[arg-type]
            data = await send_once(pool, ledger, raw(4), sender="s@x.test", recipients="r@x")
            assert data["key"] == "<f4@fleet.test>"
            with pytest.raises(ValueError, match="Message-ID"):
                await send_once(pool, ledger, b"Subject: x\r\n\r\n", sender="s", recipients="r")
            keyed = await send_once(
                pool, ledger, b"Subject: x\r\n\r\nx\r\n", sender="s@x", recipients="r@x", key="k1"
            )
    assert keyed["ledger"] == "new" and keyed["status"] == "sent"
    assert server.bodies == 2


async def test_a_fleet_traces_its_sends_and_what_the_ledger_said(redis_url: str) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk (test extra)")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from fastsmtp.fleet import Fleet, FleetSettings

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    async with PoolServer() as server:
        settings = FleetSettings(
            redis_url=redis_url,
            pool={"hostname": "127.0.0.1", "port": server.port, **FAST},
            telemetry=True,
        )
        fleet = await Fleet(
            settings, tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[reader]),
        ).open()  # fmt: skip
        try:
            first = await fleet.send(raw(5), sender="s@x.test", recipients="r@x.test")
            again = await fleet.send(raw(5), sender="s@x.test", recipients="r@x.test")
        finally:
            await fleet.aclose()
    assert (first["ledger"], again["ledger"]) == ("new", "sent")
    sent, duplicate = (dict(s.attributes or {}) for s in spans.get_finished_spans())
    assert (sent["smtp.outcome"], sent["fastsmtp.ledger"]) == ("sent", "new")
    assert sent["smtp.message.size"] == len(raw(5))
    assert duplicate["fastsmtp.ledger"] == "sent" and "smtp.outcome" not in duplicate
    metrics = {
        m.name: list(m.data.data_points)
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert [p.value for p in metrics["fastsmtp.smtp.client.messages"]] == [1]
    assert server.bodies == 1


async def test_the_queue_id_of_the_final_reply_is_kept(redis_url: str) -> None:
    class Postfixish(PoolServer):
        def reply_end(self, session: Session, message: int, body: bytes) -> str:
            return "250 2.0.0 Ok: queued as 4XyZ12AbC"

    async with Postfixish() as server, connected(redis_url) as r:
        ledger = DeliveryLedger(r)
        async with SMTPPool(hostname="127.0.0.1", port=server.port, **FAST) as pool:  # type: ignore[arg-type]
            first = await send_once(pool, ledger, raw(6), sender="s@x.test", recipients="r@x")
            again = await send_once(pool, ledger, raw(6), sender="s@x.test", recipients="r@x")
    assert first["queue_id"] == again["queue_id"] == "4XyZ12AbC"
