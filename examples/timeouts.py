"""A limit for each phase of a connection, and what each one raises.

    SMTP_HOST=smtp.example.com SMTP_USERNAME=app@example.com SMTP_PASSWORD=... \
        python examples/timeouts.py
"""
# expect-messages: 1

from __future__ import annotations

import asyncio
import os
import sys
from email.message import EmailMessage

import fastsmtp
from fastsmtp import Timeouts

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")


# [timeouts]
timeouts = Timeouts(
    30,  # every phase not named below
    connect=10,  # TCP connect, a proxy's handshake, the TLS handshake (also after STARTTLS)
    greeting=60,  # the server's 220
    upload_idle=60,  # while a body uploads: how long the socket may take no data
    final_reply=600,  # the reply after the message: servers may scan a large one first
)  # (command=...: each command's reply)


async def send(message: EmailMessage) -> None:
    async with fastsmtp.SMTP(hostname=HOST, port=PORT, start_tls=True, timeout=timeouts) as client:
        await client.login(USERNAME, PASSWORD)
        await client.send_message(message)


# [timeouts]


# [errors]
async def main() -> int:
    message = EmailMessage()
    message["From"] = USERNAME
    message["To"] = "user@example.com"
    message["Subject"] = "Per-phase timeouts"
    message.set_content("Each phase had its own limit.")
    try:
        await send(message)
    except fastsmtp.SMTPConnectTimeoutError as exc:  # connect or greeting
        print(f"could not connect in time: {exc}", file=sys.stderr)
        return 1
    except fastsmtp.SMTPTimeoutError as exc:  # a reply, the upload, or the TLS upgrade
        if exc.outcome_unknown:  # the message was sent; its final reply never came
            print("the server may have accepted it: do not send it again blindly")
        print(f"timed out: {exc}", file=sys.stderr)
        return 1
    return 0


# [errors]

if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
