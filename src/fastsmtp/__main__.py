"""``python -m fastsmtp``: aiosmtplib's interactive sender, plus ``demo``.

With no arguments it asks for a server, sender, recipients and a message, exactly as
``python -m aiosmtplib`` does. ``python -m fastsmtp demo`` starts an aiosmtpd server
on 127.0.0.1 inside this process and sends a few real messages through it.
"""

from __future__ import annotations

import sys

from .smtp import SMTP


def interactive() -> None:
    """Prompt for the server, envelope and message on stdin, then send it."""
    hostname = input("SMTP server hostname [localhost]: ") or "localhost"
    port = int(input("SMTP server port [25]: ") or "25")
    sender = input("From: ")
    recipients = input("To: ").split(",")
    print("Enter message, end with ^D:")
    lines = []
    while True:
        try:
            lines.append(input())
        except EOFError:
            break
    message = "\n".join(lines)
    print(f"Message length (bytes): {len(message.encode('utf-8'))}")
    client = SMTP(hostname=hostname, port=port, start_tls=False)
    _errors, reply = client.sendmail_sync(sender, recipients, message)
    print(f"Server response: {reply}")


def main(argv: list[str]) -> int:
    """Entry point; returns the exit status."""
    if not argv:
        interactive()
        return 0
    if argv[0] == "demo":
        from ._demo import run_demo

        return run_demo()
    print("usage: python -m fastsmtp [demo]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
