"""fastsmtp.taskiq with real ``taskiq worker`` processes (taskiq-redis's stream broker),
a real redis-server and a relay: each message once or reported, with a worker killed."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import need
from .redis_server import RedisServer
from .relay import RelayThread
from .workers import Worker, start_taskiq_worker

need("taskiq", "test")
need("taskiq_redis", "test")
need("redis", "test")

import redis.asyncio as aioredis  # noqa: E402
from taskiq.exceptions import TaskiqResultTimeoutError  # noqa: E402

from fastsmtp.fleet import DeliveryLedger  # noqa: E402
from fastsmtp.taskiq import enqueue_send  # noqa: E402

from .test_celery import ledger_states, text  # noqa: E402

MESSAGES = int(os.environ.get("FASTSMTP_FLEET_TASKIQ_MESSAGES", "300"))


@pytest.fixture
def relay() -> Iterator[RelayThread]:
    with RelayThread() as relay:
        yield relay


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.stop()


@pytest.mark.timeout(300)
def test_taskiq_workers_send_each_message_once_or_report_it(
    redis_server: RedisServer, redis_url: str, relay: RelayThread, workers: list[Worker]
) -> None:
    seed = int(os.environ.get("FASTSMTP_FLEET_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    env = {"FLEET_REDIS_SOCKET": redis_server.socket, "FLEET_SMTP_PORT": str(relay.server.port)}
    for name in ("t1", "t2"):
        workers.append(start_taskiq_worker(name, env))
    for w in workers:
        w.wait_ready()
    os.environ["FLEET_REDIS_SOCKET"] = redis_server.socket
    from .taskiq_app import broker, send

    kill_at = rng.randrange(MESSAGES // 10, MESSAGES // 2)

    async def run() -> tuple[dict[str, dict[str, Any]], list[str]]:
        await broker.startup()
        client = aioredis.from_url(f"{redis_server.url}?db=2")
        ledger = DeliveryLedger(client)
        messages = {
            f"<t{i}@fleet.test>": (text(i, "t"), [f"r{i}@fleet.test"]) for i in range(MESSAGES)
        }
        requeued: list[str] = []
        try:
            tasks = {
                key: await enqueue_send(send, ledger, body, "s@fleet.test", rcpts)
                for key, (body, rcpts) in messages.items()
            }
            await asyncio.to_thread(relay.wait_until, lambda s: len(s.deliveries) >= kill_at, 120)
            workers[0].kill()  # SIGKILL mid-run; a replacement takes its place
            workers.append(start_taskiq_worker("t1x", env))
            await asyncio.to_thread(workers[-1].wait_ready)
            returned: dict[str, dict[str, Any]] = {}
            for key, task in tasks.items():
                while key not in returned:
                    try:
                        result = await task.wait_result(timeout=10)
                    except TaskiqResultTimeoutError:
                        # The dead worker's tasks wait in its pending list until new
                        # messages come (taskiq-redis): the producer's sweep finds them
                        # (or, when it had finished the send but not stored the result,
                        # the ledger has the verdict: queued again, the task reports it).
                        state, _ = await ledger.state(key)
                        if state in ("sent", "unknown", "failed") or key in await ledger.stale(15):
                            requeued.append(key)
                            body, rcpts = messages[key]
                            task = await send.kiq(body, "s@fleet.test", rcpts, key)
                        continue
                    assert not result.is_err, result.error
                    returned[key] = result.return_value
        finally:
            await client.aclose()
            await broker.shutdown()
        return returned, requeued

    returned, requeued = asyncio.run(run())
    delivered = relay.call(lambda: relay.server.delivered())
    states = ledger_states(redis_server)
    keys = {f"<t{i}@fleet.test>" for i in range(MESSAGES)}
    sent = {k for k, s in states.items() if s == "sent"}
    unknown = {k for k, s in states.items() if s == "unknown"}
    assert max(delivered.values()) == 1, "a message was delivered twice"
    assert sent | unknown == keys == set(states) == set(returned)
    assert sent <= set(delivered) <= keys
    assert len(delivered) == len(sent) + len(unknown & set(delivered))
    for key, data in returned.items():
        assert data["status"] == ("sent" if key in sent else "outcome_unknown"), data
    print(
        f"seed {seed}: delivered {len(delivered)}, sent {len(sent)}, unknown {len(unknown)}, "
        f"queued again by the sweep: {len(requeued)}"
    )
