"""Send one message to a test server on your own machine: plaintext, no login.

    python -m aiosmtpd -n -l 127.0.0.1:8025     # in one terminal: prints what it receives
    python examples/local_server.py             # in another

Only for a server on your own machine: anywhere else, use TLS (examples/send_one.py).
"""
# expect-messages: 1
# example-plaintext: a local test server

from __future__ import annotations

import asyncio
import os
from email.message import EmailMessage

import fastsmtp

HOST = os.environ.get("SMTP_HOST", "127.0.0.1")
PORT = int(os.environ.get("SMTP_PORT", "8025"))


# [local-server]
async def main() -> None:
    message = EmailMessage()
    message["From"] = "app@example.com"
    message["To"] = "user@example.com"
    message["Subject"] = "Hello"
    message.set_content("Sent with fastsmtp.")

    errors, reply = await fastsmtp.send(message, hostname=HOST, port=PORT)
    print(f"server said: {reply}; refused recipients: {errors or 'none'}")


# [local-server]

if __name__ == "__main__":
    asyncio.run(main())
