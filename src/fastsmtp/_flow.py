"""aiosmtplib.protocol's public helpers, for code that imports them: re-exported by
:mod:`fastsmtp.protocol`, which does its own flow control and line handling (in the shell
and the core); these mean the same and are tested against aiosmtplib's.
"""

from __future__ import annotations

import asyncio
import collections
import re

from ._parser_py import MAX_LINE_LENGTH as MAX_LINE_LENGTH
from ._parser_py import MAX_REPLY_SIZE

__all__ = (
    "COMMAND_INJECTION_REGEX",
    "LINE_ENDINGS_REGEX",
    "MAX_LINE_LENGTH",
    "MAX_RESPONSE_LENGTH",
    "PERIOD_REGEX",
    "FlowControlMixin",
    "normalize_message_line_endings",
)

# aiosmtplib.protocol's public constants and helpers, for code that imports them. fastsmtp's
# own checks live in the core (_commands, _parser) and mean the same: the bytes a command line
# may not contain, any line end (CRLF, bare LF, bare CR), a line that starts with "." (it is
# doubled in DATA, RFC 5321 section 4.5.2), and the reply parser's size limits.
COMMAND_INJECTION_REGEX = re.compile(rb"[\x00-\x1f\x7f]")
LINE_ENDINGS_REGEX = re.compile(rb"(?:\r\n|\n|\r(?!\n))")
PERIOD_REGEX = re.compile(rb"(?m)^\.")
MAX_RESPONSE_LENGTH = MAX_REPLY_SIZE


def normalize_message_line_endings(message: bytes) -> bytes:
    """Return ``message`` with every line ending in CRLF, itself ending in CRLF: the line
    structure DATA sends (RFC 5321 section 2.3.8)."""
    message = LINE_ENDINGS_REGEX.sub(b"\r\n", message)
    return message if message.endswith(b"\r\n") else message + b"\r\n"


class FlowControlMixin(asyncio.Protocol):
    """Write flow control for a protocol whose writer awaits :meth:`_drain_helper`.

    aiosmtplib.protocol's base class, kept for code that builds its own protocol on it;
    fastsmtp's :class:`SMTPProtocol` does its own flow control. The transport calls
    :meth:`pause_writing` when its buffer passes the high-water mark and
    :meth:`resume_writing` when it has drained; a subclass that overrides either, or
    :meth:`connection_lost`, must call the method it overrides.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop if loop is not None else asyncio.get_event_loop()
        self._paused = False
        self._drain_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._connection_lost = False

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection_lost = True
        # Writers wait only while paused; wake them with the reason the connection ended.
        if not self._paused:
            return
        for waiter in self._drain_waiters:
            if waiter.done():
                continue
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    async def _drain_helper(self) -> None:
        if self._connection_lost:
            raise ConnectionResetError("Connection lost")
        if not self._paused:
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            self._drain_waiters.remove(waiter)

    def _get_close_waiter(self, stream: asyncio.StreamWriter) -> asyncio.Future[None]:
        # asyncio.StreamWriter.wait_closed() asks for this; a plain protocol has none.
        raise NotImplementedError
