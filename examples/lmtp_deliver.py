"""Hand a message to a mailbox store over LMTP (RFC 2033): one reply per recipient.

After the message, an LMTP server answers once for every accepted recipient, so a message
can be delivered to some mailboxes and refused for others (a full mailbox: 452 or 552).
``deliver_message`` returns a ``SendResult`` with each recipient's fate instead of raising.

Run: ``python examples/lmtp_deliver.py`` (LMTP_HOST, LMTP_PORT from the environment; a
Dovecot or Cyrus LMTP service listens on port 24 or a Unix socket).
"""

# expect-messages: 1
# example-needs: lmtp

from __future__ import annotations

import asyncio
import os
import sys
from email.message import EmailMessage

from fastsmtp import LMTP, SendResult

LMTP_HOST = os.environ.get("LMTP_HOST", "127.0.0.1")
LMTP_PORT = int(os.environ.get("LMTP_PORT", "24"))


def team_notice() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "it@example.com"
    message["To"] = "alice@example.com, bob@example.com, carol@example.com"
    message["Subject"] = "Maintenance tonight"
    message.set_content("The file server is down from 22:00 to 23:00.\n")
    return message


async def deliver(message: EmailMessage) -> SendResult:
    # LMTP(socket_path="/run/dovecot/lmtp") for a Unix socket.
    async with LMTP(hostname=LMTP_HOST, port=LMTP_PORT) as lmtp:
        result = await lmtp.deliver_message(message)
    for recipient, reply in result.replies.items():
        # Each delivered recipient's own final reply, with the store's id for it.
        print(recipient, "delivered:", reply.code, reply.queue_id)
    for recipient, refusal in result.refused.items():
        # At RCPT (no such mailbox) or after the message (over quota), each on its own.
        kind = "permanent" if refusal.permanent else "temporary: try again later"
        print(recipient, "refused:", refusal.code, refusal.enhanced_status, kind)
    print(result.status.value)  # sent, partially_sent, failed_permanently...
    return result


async def main() -> int:
    result = await deliver(team_notice())
    return 0 if result.ok else 1  # ok: at least one mailbox got it


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
