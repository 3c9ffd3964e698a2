"""A TCP proxy on 127.0.0.1 that adds a fixed one-way delay in each direction.

With ``delay`` seconds each way, a request and its reply take ``2 * delay`` longer: a
10 ms delay turns loopback into a 20 ms round-trip link, the way a WAN looks to a
client that waits for every reply (lockstep SMTP) and unlike one that batches
(pipelined SMTP).

Use it as a script::

    python benchmarks/delayproxy.py --target-port 2525 --delay-ms 10   # prints "PORT <n>"

or from code::

    async with DelayProxy(target_port, 0.010) as proxy:
        ... connect to 127.0.0.1:proxy.port ...

How it works: for each accepted connection it opens one to ``127.0.0.1:target_port``.
Every chunk read on one side is appended to that direction's FIFO with its due time and
a ``loop.call_later(delay, ...)`` is scheduled for it; the callback writes the oldest
queued chunk. Timer callbacks with equal due times may run in any order, but each one
writes the queue's head, whose due time is never later than its own, so bytes leave in
the order they arrived and no chunk waits for another one's delay (the stream is
delayed, not serialised). EOF and close travel through the same FIFO.

Flow control: a side stops reading while the other side's write buffer is above its
high-water mark, or while more than ``max_in_flight`` bytes are queued in the delay
line of its direction; it resumes when both have drained.

It listens and connects on 127.0.0.1 only, and ``stop()`` (or leaving the ``async
with``) closes the listener and aborts every open connection and pending timer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import cast

__all__ = ["DelayProxy", "main"]

HOST = "127.0.0.1"
DEFAULT_MAX_IN_FLIGHT = 4 * 1024 * 1024

# Queue items: bytes to write, or one of these markers.
_EOF = "eof"
_CLOSE = "close"


class _Direction:
    """One direction of a proxied connection: reader side -> delay FIFO -> writer side."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float, max_in_flight: int) -> None:
        self.loop = loop
        self.delay = delay
        self.max_in_flight = max_in_flight
        self.queue: deque[bytes | str] = deque()
        self.timers: set[asyncio.TimerHandle] = set()
        self.queued_bytes = 0
        self.source: asyncio.Transport | None = None  # where bytes are read
        self.sink: asyncio.Transport | None = None  # where they are written after the delay
        self.sink_paused = False  # sink's write buffer is over its high-water mark
        self.source_paused = False
        self.on_eof_written: Callable[[], None] | None = None

    def push(self, item: bytes | str) -> None:
        self.queue.append(item)
        if isinstance(item, bytes):
            self.queued_bytes += len(item)
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            assert handle is not None
            self.timers.discard(handle)
            self.release_head()

        handle = self.loop.call_later(self.delay, fire)
        self.timers.add(handle)
        self.update_reading()

    def release_head(self) -> None:
        if not self.queue:
            return
        item = self.queue.popleft()
        sink = self.sink
        if isinstance(item, bytes):
            self.queued_bytes -= len(item)
            if sink is not None and not sink.is_closing():
                sink.write(item)
        elif item == _EOF:
            if sink is not None and not sink.is_closing() and sink.can_write_eof():
                sink.write_eof()
                if self.on_eof_written is not None:
                    self.on_eof_written()
        elif sink is not None:  # _CLOSE: close after the buffered bytes are flushed
            sink.close()
        self.update_reading()

    def update_reading(self) -> None:
        """Pause or resume reading from the source according to the backlog."""
        source = self.source
        if source is None or source.is_closing():
            return
        should_pause = self.sink_paused or self.queued_bytes > self.max_in_flight
        if should_pause and not self.source_paused:
            self.source_paused = True
            source.pause_reading()
        elif not should_pause and self.source_paused:
            self.source_paused = False
            source.resume_reading()

    def cancel(self) -> None:
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()
        self.queue.clear()
        self.queued_bytes = 0


class _Side(asyncio.Protocol):
    """The protocol on one socket: reads feed ``outgoing``; write pressure pauses ``incoming``."""

    def __init__(self, outgoing: _Direction, incoming: _Direction, on_lost: _Pipe) -> None:
        self.outgoing = outgoing  # bytes read here travel this way
        self.incoming = incoming  # bytes written here come from this way
        self.pipe = on_lost
        self.transport: asyncio.Transport | None = None
        # A half-closed socket whose reading side has already seen EOF reports nothing
        # more, so once EOF went both ways on this socket it is closed here.
        self.eof_in = False
        self.eof_out = False
        incoming.on_eof_written = self._eof_written

    def _eof_written(self) -> None:
        self.eof_out = True
        self._close_if_done()

    def _close_if_done(self) -> None:
        if self.eof_in and self.eof_out and self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        self.outgoing.source = transport
        self.incoming.sink = transport

    def data_received(self, data: bytes) -> None:
        self.outgoing.push(data)

    def eof_received(self) -> bool:
        self.outgoing.push(_EOF)
        self.eof_in = True
        self._close_if_done()
        return True  # keep our write side open until the other peer's EOF travels back

    def pause_writing(self) -> None:
        self.incoming.sink_paused = True
        self.incoming.update_reading()

    def resume_writing(self) -> None:
        self.incoming.sink_paused = False
        self.incoming.update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.outgoing.source = None
        self.incoming.sink = None
        self.outgoing.push(_CLOSE)
        self.pipe.side_lost(self)


class _Pipe:
    """One proxied connection: the client side (accepted) and the target side (dialled)."""

    def __init__(self, proxy: DelayProxy) -> None:
        loop = asyncio.get_running_loop()
        self.proxy = proxy
        self.upstream = _Direction(loop, proxy.delay, proxy.max_in_flight)  # client -> target
        self.downstream = _Direction(loop, proxy.delay, proxy.max_in_flight)  # target -> client
        self.client = _Side(self.upstream, self.downstream, self)
        self.target = _Side(self.downstream, self.upstream, self)
        self.open_sides = 2
        self.connect_task: asyncio.Task[None] | None = None

    def side_lost(self, side: _Side) -> None:
        self.open_sides -= 1
        if self.open_sides <= 0:
            self.proxy._forget(self)

    def abort(self) -> None:
        if self.connect_task is not None:
            self.connect_task.cancel()
        self.upstream.cancel()
        self.downstream.cancel()
        for side in (self.client, self.target):
            if side.transport is not None and not side.transport.is_closing():
                side.transport.abort()


class _Acceptor(asyncio.Protocol):
    """Accepted socket: holds reads until the connection to the target exists."""

    def __init__(self, proxy: DelayProxy) -> None:
        self.proxy = proxy
        self.pipe = _Pipe(proxy)
        self.client = self.pipe.client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.client.connection_made(transport)
        transport.pause_reading()
        self.proxy._pipes.add(self.pipe)
        self.pipe.connect_task = asyncio.get_running_loop().create_task(self._dial(transport))

    async def _dial(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: self.pipe.target, HOST, self.proxy.target_port)
        except OSError:
            self.pipe.open_sides -= 1
            transport.abort()
            return
        if not transport.is_closing():
            transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.client.data_received(data)

    def eof_received(self) -> bool:
        return self.client.eof_received()

    def pause_writing(self) -> None:
        self.client.pause_writing()

    def resume_writing(self) -> None:
        self.client.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.connection_lost(exc)


class DelayProxy:
    """``async with DelayProxy(target_port, delay_s) as p:`` proxies 127.0.0.1:p.port."""

    def __init__(
        self,
        target_port: int,
        delay_s: float,
        *,
        port: int = 0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if not 0 < target_port < 65536:
            raise ValueError(f"target_port must be 1..65535, got {target_port}")
        if delay_s < 0:
            raise ValueError(f"delay_s must not be negative, got {delay_s}")
        self.target_port = target_port
        self.delay = delay_s
        self.max_in_flight = max_in_flight
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._pipes: set[_Pipe] = set()
        self.port = 0

    def _forget(self, pipe: _Pipe) -> None:
        self._pipes.discard(pipe)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Acceptor(self), HOST, self._requested_port, backlog=128
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for pipe in list(self._pipes):
            pipe.abort()
        self._pipes.clear()
        if server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    async def __aenter__(self) -> DelayProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(target_port: int, delay_s: float, port: int, max_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with DelayProxy(target_port, delay_s, port=port) as proxy:
        print(f"PORT {proxy.port}", flush=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), max_seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--target-port", type=int, required=True, help="on 127.0.0.1")
    parser.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay")
    parser.add_argument("--port", type=int, default=0, help="listen port, 0 = chosen by the OS")
    parser.add_argument(
        "--max-seconds", type=float, default=3600.0, help="stop after this long (default 1 h)"
    )
    args = parser.parse_args(argv)
    asyncio.run(serve(args.target_port, args.delay_ms / 1000.0, args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
