"""Send through a SOCKS5 (or HTTP CONNECT) proxy; TLS is still made with the SMTP server.

    pip install "fastsmtplib[proxy]"     # python-socks, for SOCKS (HTTP CONNECT needs nothing)
    SMTP_PROXY=socks5h://user:pass@proxy.internal:1080 SMTP_HOST=smtp.example.com \
        python examples/proxy_send.py

Run by tests/docs/test_guide_examples.py through a real microsocks proxy.
"""
# expect-messages: 1
# example-needs: proxy

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
PROXY = os.environ.get("SMTP_PROXY", "socks5h://proxyuser:proxypass@proxy.internal:1080")


# [proxy]
async def main() -> int:
    message = EmailMessage()
    message["From"] = USERNAME
    message["To"] = "user@example.com"
    message["Subject"] = "Through the proxy"
    message.set_content("The proxy saw only TLS.")
    try:
        await fastsmtp.send(
            message,
            hostname=HOST,  # the certificate is checked against this name, not the proxy's
            port=PORT,
            start_tls=True,  # through a proxy, AUTH always needs TLS
            username=USERNAME,
            password=PASSWORD,
            proxy=PROXY,
        )
    except fastsmtp.SMTPConnectError as exc:
        # The proxy refused (bad credentials, target not allowed...) or could not be
        # reached; the message never shows the proxy's password.
        print(f"could not connect: {exc}", file=sys.stderr)
        return 1
    return 0


# [proxy]

if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
