"""Keep one connection open for several messages: implicit TLS on port 465, log in once.

    SMTP_HOST=smtp.example.com SMTP_USERNAME=app@example.com SMTP_PASSWORD=... \
        python examples/keep_connection.py
"""
# expect-messages: 3

from __future__ import annotations

import asyncio
import os
from email.message import EmailMessage

import fastsmtp

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
TLS_PORT = int(os.environ.get("SMTP_TLS_PORT", "465"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")


def reminder(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "app@example.com"
    message["To"] = to
    message["Subject"] = "Your reminder"
    message.set_content("Your appointment is tomorrow at 10:00.")
    return message


# [keep-connection]
async def main() -> None:
    async with fastsmtp.SMTP(hostname=HOST, port=TLS_PORT, use_tls=True) as client:
        await client.login(USERNAME, PASSWORD)

        # an EmailMessage: sender and recipients come from its headers
        for to in ("alice@example.com", "bob@example.com"):
            await client.send_message(reminder(to))

        # or bytes you already have, with the envelope given explicitly
        raw = b"From: app@example.com\r\nTo: carol@example.com\r\nSubject: Hi\r\n\r\nHello!\r\n"
        refused, reply = await client.sendmail("app@example.com", ["carol@example.com"], raw)
        print(f"server said: {reply}; refused: {refused or 'none'}")


# [keep-connection]

if __name__ == "__main__":
    asyncio.run(main())
