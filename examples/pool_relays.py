"""A pool over several relays: priorities like MX preferences, failover, per-relay options.

The primary relay is reached with STARTTLS on the submission port; the backup with
implicit TLS. New connections go to the lowest ``priority`` value whose relay is not
backed off; a relay that fails to connect, greet, STARTTLS or log in is backed off and
the next one is tried at once, in the same attempt.

Run: ``python examples/pool_relays.py`` (SMTP_HOST, SMTP_PORT, SMTP_TLS_PORT,
SMTP_USERNAME, SMTP_PASSWORD from the environment; here both relays are the same host).
"""

# expect-messages: 10

from __future__ import annotations

import asyncio
import os
import sys
from email.message import EmailMessage

from fastsmtp import Relay, SendStatus, SMTPPool

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
TLS_PORT = int(os.environ.get("SMTP_TLS_PORT", "465"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")


def receipt(n: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = f"customer{n}@example.org"
    message["Subject"] = f"Your receipt #{n}"
    message.set_content("Thank you for your order.\n")
    return message


async def send_with_failover(messages: list[EmailMessage]) -> int:
    async with SMTPPool(
        relays=[
            Relay(HOST, PORT, priority=0),  # preferred: STARTTLS (the pool's options)
            Relay(HOST, TLS_PORT, priority=10, use_tls=True, start_tls=False),  # backup
        ],
        start_tls=True,  # options a Relay leaves out are the pool's
        username=USERNAME,
        password=PASSWORD,
        relay_backoff_base=1.0,  # a failing relay rests 1 s, 2 s, 4 s... up to the max
        relay_backoff_max=300.0,
    ) as pool:
        results = await pool.send_many(messages)
    for result in results:
        # RelaysUnavailableError (every relay backed off) ends up here as
        # FAILED_TEMPORARILY once max_attempts is used up: queue the message for later.
        print(result.status.value, result.relay)  # e.g. sent smtp.example.com:587
    return sum(1 for result in results if result.status is not SendStatus.SENT)


async def main() -> int:
    failed = await send_with_failover([receipt(n) for n in range(10)])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
