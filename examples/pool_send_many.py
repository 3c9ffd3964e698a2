"""Send a batch of messages through a pool of connections and report each one's fate.

``SMTPPool.send_many`` never raises for one message: every message gets a ``SendResult``
with a ``SendStatus``, the recipients accepted and refused, the final reply and the
exception that ended its last attempt. Temporary failures are retried on a fresh
connection; a message whose final reply never came is reported, not sent again.

Run: ``python examples/pool_send_many.py`` (SMTP_HOST, SMTP_PORT, SMTP_USERNAME,
SMTP_PASSWORD from the environment).
"""

# expect-messages: 20

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from email.message import EmailMessage

from fastsmtp import SendResult, SendStatus, SMTPPool

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")


def newsletter(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "News <news@example.com>"
    message["To"] = to
    message["Subject"] = "What's new this week"
    message.set_content("Hello! Here is what happened this week.\n")
    return message


def show_progress(done: int, result: SendResult) -> None:
    """progress(done, result): called as each message finishes, in completion order."""
    if done % 10 == 0:
        print(f"{done} done")


async def send_batch(messages: list[EmailMessage]) -> list[SendResult]:
    async with SMTPPool(
        hostname=HOST,
        port=PORT,
        start_tls=True,
        username=USERNAME,
        password=PASSWORD,
        max_connections=4,  # at most 4 connections, so at most 4 messages in flight...
        max_messages_per_period=100,  # ...and at most 100 transactions a minute
        rate_period=60.0,
        max_attempts=3,  # a 4yz or a lost connection before the message went: 2 retries
    ) as pool:
        return await pool.send_many(messages, progress=show_progress)


def report(messages: list[EmailMessage], results: list[SendResult]) -> int:
    """Print what happened to each message that was not simply sent; count the failures."""
    for message, result in zip(messages, results, strict=True):  # results in input order
        if result.status is SendStatus.SENT:
            continue
        print(message["To"], result.status.value, f"after {result.attempts} attempt(s)")
        for recipient, refusal in result.refused.items():
            # e.g. 550 5.1.1 permanent=True: that address does not exist, do not retry
            print(" ", recipient, refusal.code, refusal.enhanced_status, refusal.permanent)
        if result.status is SendStatus.OUTCOME_UNKNOWN:
            # Sent, but the final reply never came: the server may have it. Sending it
            # again could deliver it twice (RFC 1047); look it up in the server's logs.
            print("  outcome unknown:", result.exception)
        elif result.exception is not None:
            print("  last error:", result.exception)
    print(Counter(result.status.value for result in results))
    return sum(1 for result in results if not result.ok)


async def main() -> int:
    messages = [newsletter(f"reader{n}@example.org") for n in range(20)]
    results = await send_batch(messages)
    return 1 if report(messages, results) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
