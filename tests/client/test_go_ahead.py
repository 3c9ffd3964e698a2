"""A pipelined ``sendmail`` writes its body from the read that brings DATA's 354.

``fastsmtp._go_ahead``: the replies to MAIL/RCPT/DATA are judged, and the body written,
in the protocol's read callback, so the sending task wakes once per message. What the
client wrote, and from where, is seen through a pass-through around the real transport
(asyncio's or uvloop's): a write made by the sending task runs in that task, a write
made from a read callback runs in no task at all. The cancellation rule (design.md) is
checked at the edges that moved: a caller cancelled before its body is written never
has it written; one cancelled right after leaves the message out and the connection in
step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest

import fastsmtp
from fastsmtp._pacing import WriteFlow
from fastsmtp.protocol import SMTPProtocol
from tests.client.policy_server import CLOSE, Policy, PolicyServer
from tests.client.test_one_write import body, commands, on_wire

SENDER = "sender@example.com"


class WritesFrom:
    """A transport seen through a recorder: each ``write()``'s bytes and the task that
    made it (None: a loop callback). ``on_write`` runs after each write."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.writes: list[tuple[bytes, asyncio.Task[Any] | None]] = []
        self.on_write: Callable[[bytes], None] | None = None

    def write(self, data: bytes) -> None:
        self.writes.append((bytes(data), asyncio.current_task()))
        self._transport.write(data)
        if self.on_write is not None:
            self.on_write(bytes(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def recorded(protocol: SMTPProtocol | None) -> WritesFrom:
    assert protocol is not None and protocol.transport is not None
    recorder = WritesFrom(protocol.transport)
    protocol.transport = recorder
    return recorder


async def test_each_body_goes_out_from_the_read_of_its_354() -> None:
    async with PolicyServer() as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        async with client:
            recorder = recorded(client._link.protocol)
            me = asyncio.current_task()
            for i in range(3):
                assert await client.sendmail(SENDER, [f"r{i}@example.com"], body(i)) == (
                    {},
                    "queued",
                )
            writes = list(recorder.writes)
    size = len(body(0))
    expected: list[tuple[bytes, asyncio.Task[Any] | None]] = []
    for i in range(3):
        expected += [(commands(i, size), me), (on_wire(i), None)]
    assert writes == expected
    assert server.messages == [body(i).replace(b".line", b"..line") for i in range(3)]


async def test_send_message_too() -> None:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = "r@example.com"
    message["Subject"] = "go ahead"
    message.set_content("text\n")
    async with PolicyServer() as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        async with client:
            recorder = recorded(client._link.protocol)
            assert await client.send_message(message) == ({}, "queued")
    assert [task is None for _, task in recorder.writes] == [False, True, False]  # + QUIT
    assert len(server.messages) == 1


async def test_cancelled_right_after_its_body_went_out() -> None:
    # The cancellation lands in the read callback, just after the body was written and
    # before the task ran again: the message is out (the server gets it, once), the
    # caller gets CancelledError, and the connection stays in step for the next one.
    async with PolicyServer() as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        async with client:
            recorder = recorded(client._link.protocol)
            task = asyncio.ensure_future(client.sendmail(SENDER, ["r0@example.com"], body(0)))

            def cancel_after_body(data: bytes) -> None:
                if data.endswith(b"\r\n.\r\n"):
                    recorder.on_write = None
                    task.cancel()

            recorder.on_write = cancel_after_body
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client.is_connected
            assert await client.sendmail(SENDER, ["r1@example.com"], body(1)) == ({}, "queued")
            assert (await client.noop()).code == 250
    assert len(server.sessions) == 1
    assert server.messages == [body(i).replace(b".line", b"..line") for i in range(2)]


async def test_cancelled_while_the_354_is_on_its_way_never_sends_the_body() -> None:
    # The cancellation lands as the commands are written (before any reply can come):
    # the 354 still arrives, and the body is never written; the connection, its server
    # now reading a body that will not come, is aborted.
    async with PolicyServer() as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        await client.connect()
        try:
            recorder = recorded(client._link.protocol)
            task = asyncio.ensure_future(client.sendmail(SENDER, ["r0@example.com"], body(0)))

            def cancel_at_commands(data: bytes) -> None:
                if data.startswith(b"MAIL FROM:"):
                    recorder.on_write = None
                    asyncio.get_running_loop().call_soon(task.cancel)

            recorder.on_write = cancel_at_commands
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not client.is_connected
        finally:
            client.close()
    assert [data for data, _ in recorder.writes] == [commands(0, len(body(0)))]
    assert server.messages == []


async def test_a_refusal_judged_in_the_read_callback_is_raised_by_the_caller() -> None:
    policy = Policy(replies={"rcpt": "550 5.1.1 no such user"}, lenient_data=True)
    async with PolicyServer(policy) as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        await client.connect()
        try:
            recorder = recorded(client._link.protocol)
            with pytest.raises(fastsmtp.SMTPRecipientsRefused):
                await client.sendmail(SENDER, ["r0@example.com"], body(0))
        finally:
            client.close()
    # A server that answered DATA with 354 anyway now reads a body: nothing more is
    # written (no body, no RSET read as a body line), the connection is dropped.
    assert [data for data, _ in recorder.writes] == [commands(0, len(body(0)))]
    assert server.messages == []


async def test_the_final_reply_lost_after_a_body_from_the_callback() -> None:
    async with PolicyServer(Policy(replies={"end": CLOSE})) as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        await client.connect()
        try:
            with pytest.raises(fastsmtp.SMTPServerDisconnected) as info:
                await client.sendmail(SENDER, ["r0@example.com"], body(0))
        finally:
            client.close()
    assert info.value.outcome_unknown


async def test_a_body_written_from_the_callback_into_a_full_buffer_is_still_timed() -> None:
    # body_now cannot await a drain: WriteFlow.watch gives the buffer the same
    # no-progress limit. Still above its mark when the limit comes: a stall, reported
    # once; gone below it meanwhile (even if above it again): nothing.
    loop = asyncio.get_running_loop()
    stalls: list[tuple[Exception, float]] = []
    stalled = loop.create_future()

    def on_stall(exc: Exception) -> None:
        stalls.append((exc, loop.time()))
        if not stalled.done():
            stalled.set_result(None)

    flow = WriteFlow(loop, on_stall)
    flow.watch(0.01)  # not paused: nothing to watch
    start = loop.time()
    flow.pause()
    flow.watch(0.02)
    flow.resume()
    flow.pause()  # above the mark again, but it moved
    flow.watch(0.3)
    await asyncio.wait_for(stalled, 5)
    # The first watch's moment (0.02) came first and said nothing: the stall is the
    # second watch's (0.3). Loops may run a timer up to their clock's resolution early
    # (uvloop's clock counts milliseconds), so the two moments are told apart by the
    # midpoint between them, not by the second's exact time.
    [(error, when)] = stalls
    assert isinstance(error, fastsmtp.SMTPTimeoutError)
    assert when - start > 0.16
