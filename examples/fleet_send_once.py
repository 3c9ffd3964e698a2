"""The fleet's primitives in one process: a rate limit and a delivery ledger in Redis.

Every worker of a fleet (Celery, taskiq, or your own) that sends with ``send_once``
shares one rate limit (``RedisRateLimiter``) and one ledger (``DeliveryLedger``): a message
claimed or sent by one worker is never sent by another, and one whose final reply never
came is reported as such, never sent again. ``fastsmtp.celery`` and ``fastsmtp.taskiq``
wrap exactly this in a task.

Run: ``python examples/fleet_send_once.py`` (REDIS_URL, SMTP_HOST, SMTP_PORT,
SMTP_USERNAME, SMTP_PASSWORD from the environment; ``pip install "fastsmtplib[redis]"``).
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

from fastsmtp import SMTPPool
from fastsmtp.fleet import DeliveryLedger, RedisRateLimiter, send_once

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/2")


def invoice(n: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "billing@example.com"
    message["To"] = f"client{n}@example.org"
    message["Subject"] = f"Invoice {n}"
    message["Message-ID"] = make_msgid(domain="example.com")  # the idempotency key
    message.set_content("Your invoice is attached.\n")
    return message


async def send_all(client: redis.Redis, messages: list[EmailMessage]) -> int:
    # One key per relay: every process using it shares 50 transactions per second.
    limiter = RedisRateLimiter(client, f"mail:rate:{HOST}", limit=50, period=1.0)
    ledger = DeliveryLedger(client, prefix="mail:ledger")
    failed = 0
    async with SMTPPool(
        hostname=HOST, port=PORT, start_tls=True, username=USERNAME, password=PASSWORD
    ) as pool:
        for message in messages:
            outcome = await send_once(pool, ledger, message, limiter=limiter)
            # ledger: "new" (this call sent it), or the earlier verdict: "sent",
            # "unknown", "failed", or "busy" (another worker holds it right now).
            print(outcome["key"], outcome["ledger"], outcome["status"], outcome["queue_id"])
            failed += outcome["status"] != "sent"
        # A redelivered task (a worker died, the broker handed it out again): not resent.
        again = await send_once(pool, ledger, messages[0], limiter=limiter)
        print("again:", again["ledger"], again["status"])
        failed += again["ledger"] != "sent"
    return failed


async def main() -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        failed = await send_all(client, [invoice(n) for n in range(3)])
    finally:
        await client.aclose()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
