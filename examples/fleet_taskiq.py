"""Send mail from taskiq workers, with Redis: a shared rate limit, each message once.

Start one or more workers (each keeps one pool in its own event loop), then queue::

    pip install "fastsmtplib[taskiq]"
    cd examples
    taskiq worker fleet_taskiq:broker --ack-type when_saved    # as many as you like
    python fleet_taskiq.py                                    # queue 3 messages, wait

REDIS_URL, SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD from the environment (the
workers need them too).
"""

# expect-messages: 3
# example-needs: redis

from __future__ import annotations

import asyncio
import os
import sys
from email.message import EmailMessage
from email.utils import make_msgid

import redis.asyncio as redis
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from fastsmtp.fleet import DeliveryLedger, FleetSettings
from fastsmtp.taskiq import enqueue_send, register_send_task

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# The broker's stream, the results and the fleet's ledger and limiter share one database
# here (their keys do not collide); give each its own in production if you like.
broker = RedisStreamBroker(REDIS_URL).with_result_backend(RedisAsyncResultBackend(REDIS_URL))

send = register_send_task(
    broker,
    FleetSettings(
        redis_url=REDIS_URL,
        pool={
            "hostname": HOST,
            "port": PORT,
            "start_tls": True,
            "username": USERNAME,
            "password": PASSWORD,
            "max_connections": 8,
        },
        rate_limit=50,  # messages per second, for every worker together
        rate_key=f"mail:rate:{HOST}",
    ),
)


def welcome(n: int) -> str:
    message = EmailMessage()
    message["From"] = "hello@example.com"
    message["To"] = f"member{n}@example.org"
    message["Subject"] = "Welcome"
    message["Message-ID"] = make_msgid(domain="example.com")  # the idempotency key
    message.set_content("Welcome to the club.\n")
    return message.as_string()


async def queue_and_wait(count: int) -> int:
    """The producer (a web app, a cron job): queue the messages, then read each fate."""
    await broker.startup()
    client = redis.Redis.from_url(REDIS_URL)
    ledger = DeliveryLedger(client)  # notes each message "queued" before the task goes
    failed = 0
    try:
        tasks = []
        for n in range(count):
            recipients = [f"member{n}@example.org"]
            tasks.append(
                await enqueue_send(send, ledger, welcome(n), "hello@example.com", recipients)
            )
        for task in tasks:
            result = await task.wait_result(timeout=60)
            data = result.return_value  # fastsmtp.fleet.result_data's dict, plus "ledger"
            print(data["key"], data["ledger"], data["status"], data["queue_id"])
            failed += data["status"] != "sent"
    finally:
        await client.aclose()
        await broker.shutdown()
    return failed


if __name__ == "__main__":
    sys.exit(1 if asyncio.run(queue_and_wait(3)) else 0)
