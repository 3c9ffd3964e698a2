"""The relay of the multi-process fleet tests: a :class:`tests.pool.server.PoolServer`
in a thread of its own (the worker processes send to it; the test reads what it saw).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from tests.pool.server import PoolServer

__all__ = ["RelayThread"]


class RelayThread:
    """``with RelayThread() as relay:`` - a counting SMTP server on 127.0.0.1."""

    def __init__(self, server_class: type[PoolServer] = PoolServer) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = server_class()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the server's thread (its state is only touched there)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def wait_until(self, predicate: Callable[[PoolServer], bool], timeout: float) -> None:
        """Block until ``predicate(server)`` holds (checked whenever the server changes)."""
        waiting = self.server.wait_for(lambda: predicate(self.server))
        asyncio.run_coroutine_threadsafe(asyncio.wait_for(waiting, timeout), self.loop).result()

    def mail_times(self) -> list[float]:
        """When each MAIL command arrived (the server's monotonic clock), sorted."""

        def collect() -> list[float]:
            return sorted(
                t
                for s in self.server.sessions
                for line, t in zip(s.lines, s.times, strict=True)
                if line.startswith("MAIL")
            )

        result: list[float] = self.call(collect)
        return result

    def __enter__(self) -> RelayThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.__aenter__(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.server.__aexit__(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
            self.loop.close()
