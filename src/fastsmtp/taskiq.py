"""Sending mail from taskiq workers: the pool lives in the worker's own event loop.

Needs the ``taskiq`` extra (``pip install 'fastsmtplib[taskiq]'``)::

    from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker
    from fastsmtp.fleet import FleetSettings
    from fastsmtp.taskiq import register_send_task

    broker = RedisStreamBroker("redis://localhost:6379/0").with_result_backend(
        RedisAsyncResultBackend("redis://localhost:6379/1"))
    send = register_send_task(broker, FleetSettings(
        redis_url="redis://localhost:6379/2",
        pool={"hostname": "smtp.example.com", "port": 587, "start_tls": True},
        rate_limit=50,
    ))
    await send.kiq(message_text, "from@example.com", ["to@example.com"])

Each worker process opens one :class:`fastsmtp.fleet.Fleet` (pool, Redis client,
ledger, shared limiter) at its startup event and closes it at shutdown. The task
returns :func:`fastsmtp.fleet.send_once`'s plain data. taskiq has no per-task retry
countdown of its own, so the task waits in the worker's loop (nothing blocks): a
message another worker holds is asked for again after ``busy_wait`` seconds, a
temporary failure retried after ``backoff_base * 2**n`` (capped at ``backoff_max``)
up to ``max_retries`` times; a permanent failure and an unknown outcome are returned.
With ``RedisStreamBroker`` and ``taskiq worker --ack-type when_saved`` a task is
acknowledged after it ran, so one whose worker died is delivered again (after
``idle_timeout``, when new messages arrive) and checked against the ledger; queue with
:func:`enqueue_send` and sweep ``DeliveryLedger.stale`` so none waits forever.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

try:
    from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask, TaskiqEvents, TaskiqState
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("fastsmtp.taskiq needs taskiq: pip install 'fastsmtplib[taskiq]'") from exc

from .fleet._ledger import DeliveryLedger
from .fleet._runtime import Fleet, FleetSettings
from .fleet._send import message_key

__all__ = ("enqueue_send", "register_send_task")


def register_send_task(
    broker: AsyncBroker,
    settings: FleetSettings,
    *,
    task_name: str = "fastsmtp.send",
    max_retries: int = 3,
    backoff_base: float = 30.0,
    backoff_max: float = 300.0,
    busy_wait: float = 5.0,
    busy_max_waits: int = 1000,
) -> AsyncTaskiqDecoratedTask[..., Any]:
    """Register ``send(message, sender, recipients, key=None)`` on ``broker``."""
    fleets: dict[int, Fleet] = {}  # by id of the running loop

    async def current() -> Fleet:
        loop_id = id(asyncio.get_running_loop())
        fleet = fleets.get(loop_id)
        if fleet is None:  # a broker without worker events (tests' InMemoryBroker)
            fleet = fleets[loop_id] = await Fleet(settings).open()
        return fleet

    async def startup(state: TaskiqState) -> None:
        await current()

    async def shutdown(state: TaskiqState) -> None:
        fleet = fleets.pop(id(asyncio.get_running_loop()), None)
        if fleet is not None:
            await fleet.aclose()

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, startup)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, shutdown)

    async def send(
        message: str, sender: str, recipients: list[str], key: str | None = None
    ) -> dict[str, Any]:
        fleet = await current()
        retries = waits = 0
        while True:
            data = await fleet.send(message, sender=sender, recipients=recipients, key=key)
            if data["ledger"] == "busy" and waits < busy_max_waits:
                waits += 1
                await asyncio.sleep(busy_wait)
            elif data["status"] == "failed_temporarily" and retries < max_retries:
                delay = min(backoff_max, backoff_base * 2**retries)
                retries += 1
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            else:
                return data

    task: AsyncTaskiqDecoratedTask[..., Any] = broker.register_task(send, task_name=task_name)
    return task


async def enqueue_send(
    task: AsyncTaskiqDecoratedTask[..., Any],
    ledger: DeliveryLedger,
    message: str,
    sender: str,
    recipients: list[str],
    *,
    key: str | None = None,
) -> Any:
    """Note the message ``queued`` in ``ledger``, then ``kiq`` the task; the taskiq task.

    A dead worker's tasks stay in its stream's pending list until taskiq-redis
    reclaims them, which it does only when new messages arrive; ``ledger.stale(...)``
    finds them meanwhile (and any lost), to be queued again.
    """
    key = message_key(message) if key is None else key
    await ledger.enqueue(key)
    return await task.kiq(message, sender, recipients, key)
