"""Send one message through a submission server: STARTTLS on port 587, then log in.

    SMTP_HOST=smtp.example.com SMTP_USERNAME=app@example.com SMTP_PASSWORD=... \
        python examples/send_one.py
"""
# expect-messages: 1

from __future__ import annotations

import asyncio
import os
from email.message import EmailMessage

import fastsmtp

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")


# [send-one]
async def main() -> None:
    message = EmailMessage()
    message["From"] = "app@example.com"
    message["To"] = "user@example.com"
    message["Subject"] = "Hello"
    message.set_content("Sent with fastsmtp.")

    errors, reply = await fastsmtp.send(
        message,
        hostname=HOST,
        port=PORT,
        start_tls=True,  # required: never falls back to plaintext
        username=USERNAME,
        password=PASSWORD,
    )
    print(f"server said: {reply}; refused recipients: {errors or 'none'}")


# [send-one]

if __name__ == "__main__":
    asyncio.run(main())
