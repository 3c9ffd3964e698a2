"""Several messages on one connection at once: fastsmtp pipelines them (RFC 2920).

Each ``send_message`` call gets its own result or exception, exactly as if the calls had
run one after the other; on the wire, each message's MAIL, RCPT and DATA go out in one
write, right behind the previous message's end of data.

Run: ``python examples/concurrent_sendmail.py`` (SMTP_HOST, SMTP_PORT, SMTP_USERNAME,
SMTP_PASSWORD from the environment).
"""

# expect-messages: 5

from __future__ import annotations

import asyncio
import os
import sys
from email.message import EmailMessage

import fastsmtp

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")


def reminder(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Reminders <app@example.com>"
    message["To"] = to
    message["Subject"] = "Your appointment tomorrow"
    message.set_content("See you tomorrow at 10:00.\n")
    return message


async def send_concurrently(messages: list[EmailMessage]) -> int:
    """Send every message on one connection; return how many failed."""
    async with fastsmtp.SMTP(
        hostname=HOST, port=PORT, start_tls=True, username=USERNAME, password=PASSWORD
    ) as smtp:
        results = await asyncio.gather(
            *(smtp.send_message(message) for message in messages),
            return_exceptions=True,  # one refused message does not cancel the others
        )
    failed = 0
    for message, result in zip(messages, results, strict=True):
        if isinstance(result, fastsmtp.SMTPException):
            failed += 1
            # outcome_unknown: the message was sent but its final reply never came.
            print(f"{message['To']}: {result} (outcome unknown: {result.outcome_unknown})")
        elif isinstance(result, BaseException):
            raise result
        else:
            refused, reply = result  # refused: {recipient: SMTPResponse} for the others
            print(f"{message['To']}: {reply} {refused or ''}")
    return failed


async def main() -> int:
    messages = [reminder(f"patient{n}@example.org") for n in range(5)]
    return 1 if await send_concurrently(messages) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
