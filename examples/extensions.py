"""Delivery status notifications, REQUIRETLS, SIZE, international addresses, queue ids.

Each extension is checked after EHLO and before MAIL: when the server cannot honour what
you asked for, nothing is written and the connection stays usable for the next message.

Run: ``python examples/extensions.py`` (SMTP_HOST, SMTP_PORT, SMTP_USERNAME,
SMTP_PASSWORD from the environment).
"""

# expect-messages: 2

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage

import fastsmtp
from fastsmtp import DSN, DSNRecipient
from fastsmtp.errors import SMTPSizeRefusedLocally

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")


def order_confirmation() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = "alice@example.org"
    message["Bcc"] = "archive@example.com"  # a recipient, never written in the message
    message["Subject"] = "Order 1234 confirmed"
    message.set_content("Thank you for your order.\n")
    return message


async def send_with_dsn(smtp: fastsmtp.SMTP) -> None:
    dsn = DSN(
        ret="HDRS",  # a bounce carries the headers only
        envid="order-1234",  # comes back in every notification
        notify={"FAILURE", "DELAY"},
        orcpt=True,  # each recipient's own address as its original recipient
        recipients={"archive@example.com": DSNRecipient(notify="NEVER")},
        required=False,  # server without DSN: send anyway (default: SMTPNotSupported)
    )
    refused, reply = await smtp.send_message(order_confirmation(), dsn=dsn)
    print("DSN offered:", smtp.supports_extension("dsn"), "->", reply, refused)
    # With DSN offered, the wire says:
    # MAIL FROM:<shop@example.com> RET=HDRS ENVID=order-1234
    # RCPT TO:<alice@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;alice@example.org
    # RCPT TO:<archive@example.com> NOTIFY=NEVER ORCPT=rfc822;archive@example.com


async def send_to_international_domain(smtp: fastsmtp.SMTP) -> None:
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = "zoe@bücher.example"
    message["Subject"] = "Ihre Bestellung"
    message.set_content("Vielen Dank!\n")
    # smtputf8=False: never SMTPUTF8; the domain goes as IDNA A-labels, on RCPT and in
    # the To header (RCPT TO:<zoe@xn--bcher-kva.example>). A non-ASCII local part
    # (zoë@...) would need SMTPUTF8: SMTPNotSupported, and nothing is sent.
    refused, reply = await smtp.send_message(message, smtputf8=False)
    print("international domain ->", reply, refused)


async def send_confidential(smtp: fastsmtp.SMTP) -> bool:
    message = order_confirmation()
    message.replace_header("Subject", "Your new password")
    try:
        # REQUIRETLS (RFC 8689): every hop must relay the message over verified TLS.
        await smtp.send_message(message, require_tls=True)
    except fastsmtp.SMTPNotSupported as exc:
        # Not offered, or this session's TLS is not verified: nothing was sent.
        print("held back:", exc)
        return False
    return True


async def never_read() -> AsyncIterator[bytes]:
    raise AssertionError("a message over the server's limit is not read at all")
    yield b""  # pragma: no cover (makes this an async generator)


async def check_size(smtp: fastsmtp.SMTP) -> None:
    limit = int(smtp.esmtp_extensions.get("size") or 0)  # "SIZE 0": no limit
    if not limit:
        print("no SIZE limit advertised")
        return
    try:
        await smtp.sendmail("shop@example.com", ["alice@example.org"], never_read(), size=limit + 1)
    except SMTPSizeRefusedLocally as exc:  # also an SMTPSenderRefused, and a ValueError
        print(exc.code, exc.message)  # 552 5.3.4 Message size ... (refused by fastsmtp...)


async def read_the_reply(smtp: fastsmtp.SMTP) -> None:
    response = await smtp.noop()  # any SMTPResponse; the final reply of DATA is one
    print(response.code, response.enhanced_status, response.queue_id)
    # From a reply text, as sendmail returns it:
    text = "2.0.0 Ok: queued as 4Xyz12"  # what Postfix says
    print(fastsmtp.queue_id(text), fastsmtp.enhanced_status(text))  # 4Xyz12 2.0.0


async def main() -> int:
    async with fastsmtp.SMTP(
        hostname=HOST, port=PORT, start_tls=True, username=USERNAME, password=PASSWORD
    ) as smtp:
        await send_with_dsn(smtp)
        await send_to_international_domain(smtp)
        await send_confidential(smtp)
        await check_size(smtp)
        await read_the_reply(smtp)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
