"""See the SMTP conversation: the ``fastsmtp`` logger at DEBUG, AUTH lines redacted.

    SMTP_HOST=smtp.example.com SMTP_USERNAME=app@example.com SMTP_PASSWORD=... \
        python examples/logging_debug.py
"""
# expect-messages: 1

from __future__ import annotations

import asyncio
import logging
import os
from email.message import EmailMessage

import fastsmtp

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")


# [logging]
logging.basicConfig(format="%(name)s %(levelname)s %(message)s")
logging.getLogger("fastsmtp").setLevel(logging.DEBUG)  # commands and replies
# logging.getLogger("fastsmtp.connect") is a child: it logs the connection attempts.


async def main() -> None:
    message = EmailMessage()
    message["From"] = USERNAME
    message["To"] = "user@example.com"
    message["Subject"] = "Logged"
    message.set_content("Look at the log: the AUTH exchange shows as [redacted].")
    await fastsmtp.send(
        message,
        hostname=HOST,
        port=PORT,
        start_tls=True,
        username=USERNAME,
        password=PASSWORD,
    )


# [logging]

if __name__ == "__main__":
    asyncio.run(main())
