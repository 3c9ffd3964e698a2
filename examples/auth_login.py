"""Log in with a password: fastsmtp picks the strongest mechanism both sides offer.

    SMTP_HOST=smtp.example.com SMTP_USERNAME=app@example.com SMTP_PASSWORD=... \
        python examples/auth_login.py
"""
# expect-messages: 1

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


# [login]
async def main() -> int:
    message = EmailMessage()
    message["From"] = USERNAME
    message["To"] = "user@example.com"
    message["Subject"] = "Logged in"
    message.set_content("Sent after AUTH.")

    async with fastsmtp.SMTP(hostname=HOST, port=PORT, start_tls=True) as client:
        try:
            # Sends EHLO first if needed: after STARTTLS the server's earlier answer is
            # forgotten, and the mechanisms offered over TLS are the only ones used.
            await client.login(USERNAME, PASSWORD)
        except fastsmtp.SMTPAuthenticationError as exc:
            # exc.code and exc.message are the server's reply; never the password.
            print(f"login refused: {exc.code} {exc.message}", file=sys.stderr)
            return 1
        # Both sides' mechanisms, strongest first (SMTP.AUTH_METHODS order): login()
        # used the first of them that the server accepted.
        print("mechanisms:", client.supported_auth_methods)
        await client.send_message(message)
    return 0


# [login]

if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
