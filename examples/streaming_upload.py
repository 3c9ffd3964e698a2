"""Stream a large message from a file or a generator, with flow control and progress.

The message is read, encoded (CRLF line ends, dot-stuffing) and written chunk by chunk,
waiting whenever the connection's buffer is full, so memory stays bounded whatever the
message size. ``size=`` announces a stream's size with SIZE (RFC 1870) and lets fastsmtp
refuse a message the server would refuse before anything is uploaded.

Run: ``python examples/streaming_upload.py`` (SMTP_HOST, SMTP_PORT, SMTP_USERNAME,
SMTP_PASSWORD from the environment).
"""

# expect-messages: 2

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator

import fastsmtp

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")
SENDER = "reports@example.com"
RECIPIENTS = ["finance@example.org"]


def write_report(path: str, lines: int) -> None:
    """A large plain-text message on disk (LF line ends: fastsmtp sends CRLF)."""
    with open(path, "w", encoding="ascii") as out:
        out.write(f"From: <{SENDER}>\nTo: <{RECIPIENTS[0]}>\nSubject: Monthly report\n\n")
        for n in range(lines):
            out.write(f"{n:08d} ........ a line of the report, some starting with a dot\n")
            if n % 1000 == 0:
                out.write(".this line starts with a dot and is stuffed on the wire\n")


def show_progress(sent: int, total: int | None) -> None:
    """progress(sent, total): message bytes sent so far, and the size given."""
    if total:
        print(f"\r{sent / total:6.1%} of {total:,} bytes", end="", flush=True)


async def send_file(smtp: fastsmtp.SMTP, path: str) -> None:
    size = os.path.getsize(path)  # noqa: ASYNC240 (a local file: quick)
    # Any binary file object: read() may also be a coroutine function (an async file).
    with open(path, "rb") as report:  # noqa: ASYNC230 (reads of a local file are quick)
        refused, reply = await smtp.sendmail(
            SENDER,
            RECIPIENTS,
            report,
            size=size,  # announced with SIZE, and checked against the server's limit
            progress=show_progress,
        )
    print(f"\nsent: {reply}, refused: {refused}")


async def generated_message() -> AsyncIterator[bytes]:
    """Chunks from anywhere: a database cursor, an HTTP download, a template."""
    yield f"From: <{SENDER}>\r\nTo: <{RECIPIENTS[0]}>\r\nSubject: Export\r\n\r\n".encode()
    for batch in range(100):
        yield b"".join(b"row %d,%d\r\n" % (batch, n) for n in range(500))


async def send_generated(smtp: fastsmtp.SMTP) -> None:
    refused, reply = await smtp.sendmail(SENDER, RECIPIENTS, generated_message())
    print(f"sent: {reply}, refused: {refused}")


async def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "report.eml")
        write_report(path, 60_000)  # about 4 MB
        # [start connect]
        async with fastsmtp.SMTP(
            hostname=HOST,
            port=PORT,
            start_tls=True,
            username=USERNAME,
            password=PASSWORD,
            chunking=None,  # BDAT (RFC 3030) when the server offers CHUNKING, else DATA
            timeout=30,  # while uploading: 30 s without progress, not 30 s in total
        ) as smtp:
            await send_file(smtp, path)
            await send_generated(smtp)
        # [end connect]
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
