"""One pool shared by every request of a web application.

Create the pool when the application starts, send through it from every handler (each
send waits for a free connection, so the pool bounds the connections to the server), and
close it at shutdown. ``pool.send_message`` returns and raises like
``SMTP.send_message``, after the pool's retries.

Run: ``python examples/pool_shared.py`` (SMTP_HOST, SMTP_PORT, SMTP_USERNAME,
SMTP_PASSWORD from the environment).
"""

# expect-messages: 3

from __future__ import annotations

import asyncio
import os
import sys
from email.message import EmailMessage

import fastsmtp
from fastsmtp import SMTPPool

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")


def make_pool() -> SMTPPool:
    """At application startup (e.g. a FastAPI lifespan): connections open on first use."""
    return SMTPPool(
        hostname=HOST,
        port=PORT,
        start_tls=True,
        username=USERNAME,
        password=PASSWORD,
        max_connections=4,
    )


async def handle_signup(pool: SMTPPool, address: str) -> str:
    """A request handler: send the welcome message, answer the request."""
    message = EmailMessage()
    message["From"] = "Welcome <hello@example.com>"
    message["To"] = address
    message["Subject"] = "Welcome aboard"
    message.set_content("Thanks for signing up.\n")
    try:
        await pool.send_message(message)
    except fastsmtp.SMTPRecipientsRefused:
        return "that address does not accept mail"
    except fastsmtp.SMTPException as exc:
        # Retries are done; exc.outcome_unknown says whether it may have gone anyway.
        return f"could not send now: {exc}"
    return "welcome message sent"


async def main() -> int:
    pool = make_pool()
    try:
        answers = await asyncio.gather(
            *(handle_signup(pool, f"user{n}@example.org") for n in range(3))
        )
    finally:
        await pool.close()  # at application shutdown: QUIT every connection
    print(answers)
    return 0 if all(a == "welcome message sent" for a in answers) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
