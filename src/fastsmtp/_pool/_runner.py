"""``send_many``: many messages through the pool, one ``SendResult`` each, in input order.

The input is read lazily, by ``concurrency`` workers each holding at most one message,
so a huge (or endless) source never sits in memory; a bad item fails alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from ..results import SendResult, SendStatus
from ._delivery import Delivery
from ._job import BulkItem, bulk_job

__all__ = ("BulkProgress", "send_many")

#: ``progress(done, result)``: messages finished so far, and the one just finished.
BulkProgress = Callable[[int, SendResult], object]


class _SyncSource:
    """An iterator seen as an async iterator (``next`` never awaits, so no lock)."""

    def __init__(self, iterator: Iterator[BulkItem]) -> None:
        self._iterator = iterator

    async def next(self) -> BulkItem:
        try:
            return next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None


async def send_many(
    delivery: Delivery,
    messages: Iterable[BulkItem] | AsyncIterable[BulkItem],
    workers: int,
    progress: BulkProgress | None,
    extensions: dict[str, Any] | None = None,
) -> list[SendResult]:
    """Deliver every item with ``workers`` concurrent workers (see ``SMTPPool.send_many``);
    ``extensions`` (dsn, require_tls, smtputf8) go with every item."""
    if workers < 1:
        raise ValueError("concurrency must be at least 1")
    source: AsyncIterator[BulkItem] | _SyncSource
    lock: asyncio.Lock | None
    if isinstance(messages, AsyncIterable):
        source, lock = aiter(messages), asyncio.Lock()
    else:
        source, lock = _SyncSource(iter(messages)), None
    results: list[SendResult | None] = []
    done = 0

    async def take() -> BulkItem:
        if isinstance(source, _SyncSource):
            return await source.next()
        assert lock is not None
        async with lock:  # one reader of the async iterator at a time
            return await anext(source)

    async def worker() -> None:
        nonlocal done
        while True:
            try:
                item = await take()
            except StopAsyncIteration:
                return
            index = len(results)  # the slot of this item, in input order
            results.append(None)
            try:
                job = bulk_job(item, extensions)
            except (TypeError, ValueError) as exc:
                result = SendResult(SendStatus.FAILED_PERMANENTLY, exception=exc)
            else:
                del item
                result = await delivery.deliver(job)
            results[index] = result
            done += 1
            if progress is not None:
                progress(done, result)

    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [r for r in results if r is not None]
