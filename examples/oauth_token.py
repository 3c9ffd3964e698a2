"""Log in with OAuth 2.0: a token generator that fastsmtp calls for each new connection.

    SMTP_HOST=smtp.office365.com SMTP_USERNAME=me@example.com python examples/oauth_token.py

The token source here is a stand-in for your provider's client (MSAL, google-auth...):
it hands out ``SMTP_OAUTH_TOKEN``. Run by tests/docs/test_guide_examples.py against a server
that offers XOAUTH2 (the examples harness offers PLAIN and LOGIN only).
"""
# expect-messages: 1
# example-needs: oauth

from __future__ import annotations

import asyncio
import os
from email.message import EmailMessage

import fastsmtp

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")


class TokenSource:
    """Stands in for an OAuth client: a real one refreshes its access token when it is
    about to expire (or when fastsmtp asks again after the server rejected one)."""

    def __init__(self) -> None:
        self.calls = 0

    async def fresh_access_token(self) -> str:
        self.calls += 1
        return os.environ.get("SMTP_OAUTH_TOKEN", "ya29.example-access-token")


# [oauth]
async def main() -> None:
    message = EmailMessage()
    message["From"] = USERNAME
    message["To"] = "user@example.com"
    message["Subject"] = "Sent with OAuth 2.0"
    message.set_content("No password was used.")

    tokens = TokenSource()  # your OAuth client (MSAL, google-auth...): it refreshes tokens
    async with fastsmtp.SMTP(
        hostname=HOST,
        port=PORT,
        start_tls=True,
        username=USERNAME,
        oauth_token_generator=tokens.fresh_access_token,  # an async callable
    ) as client:
        await client.send_message(message)
    print(f"sent; the token source was asked {tokens.calls} time(s)")


# [oauth]

if __name__ == "__main__":
    asyncio.run(main())
