"""Shared helpers for the cancellation tests: messages, clients, cancelling at a hold."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import fastsmtp
from tests.cancellation.server import CancelServer, Hold

#: A bound for every wait in a test: a hang shows as a failure in seconds, not at 120 s.
BOUND = 8.0
#: The client's own timeout for commands.
CLIENT_TIMEOUT = 3.0
#: "Promptly": an error that must not come from a timeout comes well within this.
PROMPT = 1.5

needs_asyncio_timeout = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="asyncio.timeout needs Python 3.11"
)

_ids = itertools.count(1)


def new_id(tag: str = "m") -> str:
    return f"<{tag}{next(_ids)}@cancel.test>"


def message(message_id: str | None = None, lines: int = 3) -> tuple[str, bytes]:
    """A small message (no line in it looks like an SMTP command) and its Message-ID."""
    message_id = message_id or new_id()
    body = "".join(f"line {i} of the text of {message_id}\r\n" for i in range(lines))
    data = (
        f"From: a@cancel.test\r\nTo: b@cancel.test\r\nSubject: test\r\n"
        f"Message-ID: {message_id}\r\n\r\n{body}"
    ).encode()
    return message_id, data


def email_message(message_id: str | None = None) -> tuple[str, Any]:
    from email.message import EmailMessage

    message_id = message_id or new_id()
    msg = EmailMessage()
    msg["From"] = "a@cancel.test"
    msg["To"] = "b@cancel.test"
    msg["Subject"] = "test"
    msg["Message-ID"] = message_id
    msg.set_content(f"the text of {message_id}\n")
    return message_id, msg


def client_for(server: CancelServer, **kwargs: Any) -> fastsmtp.SMTP:
    options: dict[str, Any] = {
        "hostname": "127.0.0.1",
        "port": server.port,
        "timeout": CLIENT_TIMEOUT,
        "start_tls": False,
    }
    options.update(kwargs)
    return fastsmtp.SMTP(**options)


async def bounded(awaitable: Awaitable[Any], timeout: float = BOUND) -> Any:
    return await asyncio.wait_for(awaitable, timeout)


async def cancel_at(
    hold: Hold | asyncio.Event,
    op: Callable[[], Awaitable[Any]],
    how: str = "cancel",
    on_cancel: Callable[[], object] | None = None,
    max_unwind: float | None = None,
) -> BaseException | None:
    """Run ``op()`` as a task; once ``hold`` is reached, cancel the caller.

    ``how`` is ``"cancel"`` (``task.cancel()``, CancelledError expected) or ``"timeout"``
    (an ``asyncio.timeout`` around the call expires then; TimeoutError expected). Returns
    the task's exception (None if it finished first - the caller asserts on that).
    ``on_cancel`` runs right after the cancellation is issued (e.g. to release the held
    reply while the cancelled caller is still unwinding, say through ``async with``).
    ``max_unwind``: the cancelled call must be over within this many seconds.
    """
    reached = hold.reached if isinstance(hold, Hold) else hold
    scope: list[Any] = []

    async def run() -> Any:
        if how == "timeout":
            async with asyncio.timeout(None) as cm:
                scope.append(cm)
                return await op()
        return await op()

    task = asyncio.ensure_future(run())
    waiter = asyncio.ensure_future(reached.wait())
    try:
        await bounded(asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED))
    finally:
        waiter.cancel()
    if task.done():
        return task.exception() if not task.cancelled() else asyncio.CancelledError()
    if how == "timeout":
        scope[0].reschedule(asyncio.get_running_loop().time())
    else:
        task.cancel()
    if on_cancel is not None:
        on_cancel()
    try:
        await bounded(asyncio.shield(task))
    except BaseException as exc:
        return exc
    return None


async def assert_no_tasks_left(grace: float = 0.5) -> None:
    """No task but the test's own is left running (a leaked reader, writer or waiter)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while True:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not others or loop.time() > deadline:
            break
        await asyncio.sleep(0.01)
    assert not others, f"tasks left running: {others}"
