"""aiosmtplib's public module-level helpers behave the same in fastsmtp (the surface test
checks that they exist; these check what they do, side by side with aiosmtplib 5.1.3)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiosmtplib.esmtp
import aiosmtplib.protocol
import pytest

import fastsmtp.esmtp
import fastsmtp.protocol

LINE_ENDING_CASES = [
    b"",
    b"a",
    b"a\r\n",
    b"a\n",
    b"a\r",
    b"a\rb\nc\r\nd",
    b"\r\r\n\n\r",
    b".leading\n..two\r\n",
]


@pytest.mark.parametrize("message", LINE_ENDING_CASES)
def test_normalize_message_line_endings(message: bytes) -> None:
    ours = fastsmtp.protocol.normalize_message_line_endings(message)
    assert ours == aiosmtplib.protocol.normalize_message_line_endings(message)
    assert ours.endswith(b"\r\n")
    # no bare CR or LF is left
    assert ours.replace(b"\r\n", b"").count(b"\r") == ours.replace(b"\r\n", b"").count(b"\n") == 0


@pytest.mark.parametrize(
    "text",
    [
        "mx.example.com\nAUTH=LOGIN PLAIN\nSIZE 100",
        "mx.example.com\nauth=cram-md5\nAUTH PLAIN",
        "mx.example.com\nAUTH= \n8BITMIME",
    ],
)
def test_old_style_auth_line(text: str) -> None:
    assert fastsmtp.esmtp.parse_esmtp_extensions(text) == aiosmtplib.esmtp.parse_esmtp_extensions(
        text
    )


@pytest.mark.parametrize(
    "mixin",
    [aiosmtplib.protocol.FlowControlMixin, fastsmtp.protocol.FlowControlMixin],
    ids=["aiosmtplib", "fastsmtp"],
)
async def test_flow_control_mixin(mixin: Any) -> None:
    """The transport's pause/resume and a lost connection, as a writer awaiting drain sees
    them (run against aiosmtplib's class too, so both are held to the same behaviour)."""
    protocol = mixin(asyncio.get_running_loop())
    assert isinstance(protocol, asyncio.Protocol)
    await protocol._drain_helper()  # not paused: returns at once

    protocol.pause_writing()
    waiter = asyncio.ensure_future(protocol._drain_helper())
    await asyncio.sleep(0)
    assert not waiter.done()
    protocol.resume_writing()
    await waiter

    protocol.pause_writing()
    waiters = [asyncio.ensure_future(protocol._drain_helper()) for _ in range(2)]
    await asyncio.sleep(0)
    protocol.connection_lost(OSError("reset by peer"))
    for waiter in waiters:
        with pytest.raises(OSError, match="reset by peer"):
            await waiter
    with pytest.raises(ConnectionResetError):
        await protocol._drain_helper()
