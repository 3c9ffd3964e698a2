"""A fast SMTP sink in pure Python: accepts every message and throws it away.

Run it::

    python benchmarks/sink.py --port 0        # prints "PORT <n>" on its first line

or import it (``async with SinkServer() as sink: sink.port``). It listens on 127.0.0.1
only, runs on uvloop when it is installed (``--loop asyncio`` to opt out) and stops on
SIGINT/SIGTERM or after ``--max-seconds``.

What it speaks (RFC 5321 with RFC 2920 PIPELINING, enough for a benchmark client):

- EHLO advertises PIPELINING, SIZE and 8BITMIME; HELO, MAIL, RCPT, RSET, NOOP -> 250;
  DATA -> 354 once at least one RCPT was given (503 otherwise); QUIT -> 221 and close;
  VRFY -> 252; anything else -> 502.
- Pipelined groups: each ``data_received`` answers every complete command line in order
  and sends all of those replies in one write. A DATA in the middle of a read turns the
  rest of that read into body; the body is discarded up to ``CRLF.CRLF`` (the final 250
  joins the other replies of the same read), and whatever follows is commands again.
- Bounded: a command line longer than 4096 bytes gets a 500 and the connection is
  closed; body bytes are never kept (only the last four, to find a terminator split
  across reads); reading pauses while the transport's write buffer is full.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from types import TracebackType
from typing import cast

__all__ = ["SinkProtocol", "SinkServer", "main"]

HOST = "127.0.0.1"
MAX_LINE = 4096
SIZE_LIMIT = 1024 * 1024 * 1024  # advertised SIZE; the sink enforces nothing

GREETING = b"220 sink.localhost ESMTP fastsmtp benchmark sink\r\n"
EHLO_REPLY = (
    b"250-sink.localhost\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE " + str(SIZE_LIMIT).encode() + b"\r\n"
    b"250-8BITMIME\r\n"
    b"250 ENHANCEDSTATUSCODES\r\n"
)
OK = b"250 2.0.0 Ok\r\n"
MAIL_OK = b"250 2.1.0 Ok\r\n"
RCPT_OK = b"250 2.1.5 Ok\r\n"
START_DATA = b"354 End data with <CR><LF>.<CR><LF>\r\n"
QUEUED = b"250 2.0.0 Ok: queued\r\n"
BYE = b"221 2.0.0 Bye\r\n"
NO_RCPT = b"503 5.5.1 Error: need RCPT command\r\n"
NO_MAIL = b"503 5.5.1 Error: need MAIL command\r\n"
UNKNOWN = b"502 5.5.2 Error: command not recognized\r\n"
TOO_LONG = b"500 5.5.0 Error: line too long\r\n"
VRFY_REPLY = b"252 2.0.0 Cannot VRFY user\r\n"

END_OF_DATA = b"\r\n.\r\n"


class SinkProtocol(asyncio.Protocol):
    """One SMTP session. State: command mode, or inside a DATA body."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""  # partial command line (command mode only), < MAX_LINE bytes
        self.in_body = False
        # The last bytes of the body seen so far (at most 4), so that a terminator split
        # across reads is found. The body starts right after the CRLF of "DATA\r\n", so
        # it starts as CRLF: an empty body is just ".\r\n".
        self.body_tail = b""
        self.have_mail = False
        self.rcpt_count = 0
        self.messages = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.write(GREETING)

    def pause_writing(self) -> None:
        # The peer is not reading our replies: stop reading its commands until it does.
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        replies: list[bytes] = []
        close = False
        pos = 0
        end = len(data)
        while pos < end:
            if self.in_body:
                pos = self._consume_body(data, pos, replies)
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                rest = data[pos:]
                if len(self.buffer) + len(rest) > MAX_LINE:
                    replies.append(TOO_LONG)
                    close = True
                else:
                    self.buffer += rest
                break
            line = data[pos:newline]
            pos = newline + 1
            if self.buffer:
                line = self.buffer + line
                self.buffer = b""
            if len(line) > MAX_LINE:
                replies.append(TOO_LONG)
                close = True
                break
            reply = self._command(line)
            replies.append(reply)
            if reply is BYE:
                close = True
                break
        if replies:
            transport.write(b"".join(replies))
        if close:
            transport.close()

    def _consume_body(self, data: bytes, pos: int, replies: list[bytes]) -> int:
        """Skip body bytes from ``pos``; return where command mode resumes (or the end)."""
        # Look for CRLF.CRLF in (last few body bytes + this read) without copying the read.
        tail = self.body_tail
        if tail:
            joined = tail + data[pos : pos + 5]
            found = joined.find(END_OF_DATA)
            if found >= 0:
                return self._end_body(pos + found - len(tail) + 5, replies)
        found = data.find(END_OF_DATA, pos)
        if found >= 0:
            return self._end_body(found + 5, replies)
        # No terminator yet: remember only the last four bytes of the body.
        if len(data) - pos >= 4:
            self.body_tail = data[-4:]
        else:
            self.body_tail = (tail + data[pos:])[-4:]
        return len(data)

    def _end_body(self, resume: int, replies: list[bytes]) -> int:
        self.in_body = False
        self.body_tail = b""
        self.have_mail = False
        self.rcpt_count = 0
        self.messages += 1
        replies.append(QUEUED)
        return resume

    def _command(self, line: bytes) -> bytes:
        if line.endswith(b"\r"):
            line = line[:-1]
        verb = line[:4].upper()
        if verb == b"RCPT":
            if not self.have_mail:
                return NO_MAIL
            self.rcpt_count += 1
            return RCPT_OK
        if verb == b"MAIL":
            self.have_mail = True
            self.rcpt_count = 0
            return MAIL_OK
        if verb == b"DATA":
            if not self.rcpt_count:
                return NO_RCPT
            self.in_body = True
            self.body_tail = b"\r\n"
            return START_DATA
        if verb == b"EHLO":
            self.have_mail = False
            self.rcpt_count = 0
            return EHLO_REPLY
        if verb in (b"HELO", b"RSET"):
            self.have_mail = False
            self.rcpt_count = 0
            return OK
        if verb == b"NOOP":
            return OK
        if verb == b"QUIT":
            return BYE
        if verb == b"VRFY":
            return VRFY_REPLY
        return UNKNOWN


class SinkServer:
    """``async with SinkServer() as sink:`` serves on ``127.0.0.1:sink.port``."""

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            SinkProtocol, HOST, self._requested_port, backlog=256, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def __aenter__(self) -> SinkServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(port: int, max_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with SinkServer(port) as sink:
        print(f"PORT {sink.port}", flush=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), max_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0, help="0 = chosen by the OS")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="stop after this long (default 1 h)"
    )
    args = parser.parse_args(argv)
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            print("uvloop not installed; using asyncio", file=sys.stderr)
        else:
            uvloop.run(serve(args.port, args.max_seconds))
            return 0
    asyncio.run(serve(args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
