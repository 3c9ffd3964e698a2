"""Connect over TLS three ways: STARTTLS required, implicit TLS, and your own SSLContext.

    SMTP_HOST=smtp.example.com SMTP_USERNAME=app@example.com SMTP_PASSWORD=... \
        python examples/tls_connect.py

Certificates are verified against the system's CA store (``SSL_CERT_FILE`` is honoured), or
against ``SMTP_CA_FILE`` when it is set (a private CA, passed as ``cert_bundle``).
"""
# expect-messages: 3

from __future__ import annotations

import asyncio
import os
import ssl
from email.message import EmailMessage

import fastsmtp

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
TLS_PORT = int(os.environ.get("SMTP_TLS_PORT", "465"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")
CA_FILE = os.environ.get("SMTP_CA_FILE")  # None: the system's CA store


def note(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "app@example.com"
    message["To"] = "ops@example.com"
    message["Subject"] = subject
    message.set_content("Sent over verified TLS.")
    return message


# [starttls]
async def over_starttls() -> None:
    # Port 587: connect in plaintext, then STARTTLS before anything else is said.
    # start_tls=True makes TLS required: no STARTTLS offered means an exception,
    # never a plaintext session.
    async with fastsmtp.SMTP(
        hostname=HOST, port=PORT, start_tls=True, cert_bundle=CA_FILE
    ) as client:
        await client.login(USERNAME, PASSWORD)
        await client.send_message(note("over STARTTLS"))


# [starttls]


# [implicit-tls]
async def over_implicit_tls() -> None:
    # Port 465: TLS from the first byte (RFC 8314), so nothing is ever in plaintext.
    async with fastsmtp.SMTP(
        hostname=HOST, port=TLS_PORT, use_tls=True, cert_bundle=CA_FILE
    ) as client:
        await client.login(USERNAME, PASSWORD)
        await client.send_message(note("over implicit TLS"))


# [implicit-tls]


# [own-context]
async def with_own_context() -> None:
    # Your own context: fastsmtp uses it as given, so keep verification on.
    context = ssl.create_default_context(cafile=CA_FILE)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    async with fastsmtp.SMTP(
        hostname=HOST, port=TLS_PORT, use_tls=True, tls_context=context
    ) as client:
        await client.login(USERNAME, PASSWORD)
        await client.send_message(note("with my own SSLContext"))


# [own-context]


async def main() -> None:
    await over_starttls()
    await over_implicit_tls()
    await with_own_context()
    print("3 messages sent over verified TLS")


if __name__ == "__main__":
    asyncio.run(main())
