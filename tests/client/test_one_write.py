"""The end of one message and the next transaction's commands go out in one write.

RFC 2920 section 3.1 lets a client send the next MAIL, RCPT and DATA right behind the
end of data, before its final reply. Written as two small writes, a server that answers
each read on its own (Postfix) sends the final reply alone and the next replies only
after a delayed ACK: about 40 ms a message. So concurrent ``sendmail`` calls on one
connection must hand the server both in one write.

What the client wrote is seen through :class:`RecordedWrites`, a pass-through around the
real transport (asyncio's or uvloop's) to a real server on 127.0.0.1; the server checks
the bytes make sense and answers them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import fastsmtp
from fastsmtp.protocol import SMTPProtocol
from tests.client.policy_server import CLOSE, Policy, PolicyServer
from tests.pool.server import PoolServer

SENDER = "sender@example.com"


class RecordedWrites:
    """A transport seen through a recorder: each ``write()`` call's bytes, in order."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def record_writes(protocol: SMTPProtocol | None) -> RecordedWrites:
    """Put a recorder between ``protocol`` and its transport (from now on)."""
    assert protocol is not None and protocol.transport is not None
    recorder = RecordedWrites(protocol.transport)
    protocol.transport = recorder
    return recorder


def body(i: int) -> bytes:
    return b"Subject: %d\r\n\r\nbody %d\r\n.line\r\n" % (i, i)


def commands(i: int, size: int) -> bytes:
    return b"MAIL FROM:<sender@example.com> size=%d\r\nRCPT TO:<r%d@example.com>\r\nDATA\r\n" % (
        size,
        i,
    )


def on_wire(i: int) -> bytes:
    """``body(i)`` as DATA sends it (dot-stuffed, ended with ``.``)."""
    return body(i).replace(b"\r\n.line", b"\r\n..line") + b".\r\n"


async def test_concurrent_sendmail_calls_send_each_end_with_the_next_commands() -> None:
    async with PolicyServer() as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        async with client:
            recorder = record_writes(client._link.protocol)
            results = await asyncio.gather(
                *(client.sendmail(SENDER, [f"r{i}@example.com"], body(i)) for i in range(8))
            )
    assert results == [({}, "queued")] * 8
    size = len(body(0))
    # One write per round trip: the first commands, then each end of data with the
    # next transaction's commands, then the last end alone, then QUIT.
    assert recorder.writes == [
        commands(0, size),
        *(on_wire(i) + commands(i + 1, size) for i in range(7)),
        on_wire(7),
        b"QUIT\r\n",
    ]
    assert server.messages == [body(i).replace(b".line", b"..line") for i in range(8)]


async def test_a_lone_sendmail_writes_its_body_at_once() -> None:
    # Nobody waits behind it: the end of data is written as the body is, not held.
    async with PolicyServer() as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        async with client:
            recorder = record_writes(client._link.protocol)
            submission = await client._link.submit(SENDER, ["r0@example.com"], body(0))
            assert recorder.writes == [commands(0, len(body(0))), on_wire(0)]
            assert (await submission.reply()).code == 250


async def test_refusals_keep_their_meaning_when_ends_share_writes() -> None:
    # Every end of data refused: each caller gets its own SMTPDataError (not an
    # unknown outcome), and the RSET that follows each refusal keeps the replies paired.
    policy = Policy(replies={"end": "554 5.6.0 content rejected"})
    async with PolicyServer(policy) as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        async with client:
            results = await asyncio.gather(
                *(client.sendmail(SENDER, [f"r{i}@example.com"], body(i)) for i in range(3)),
                return_exceptions=True,
            )
            assert await client.noop() == fastsmtp.SMTPResponse(250, "ok")
    for result in results:
        assert isinstance(result, fastsmtp.SMTPDataError)
        assert (result.code, result.outcome_unknown) == (554, False)
    assert b"RSET" in server.received


async def test_a_drop_after_an_end_with_the_next_commands_behind_it() -> None:
    # The server closes on reading the first end of data, which came with the next
    # transaction's commands: the first message's outcome is unknown (its end was
    # sent), the second's is not (none of its commands was answered), the third
    # never reached the wire.
    async with PolicyServer(Policy(replies={"end": CLOSE})) as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        await client.connect()
        protocol = client._link.protocol
        assert protocol is not None
        results = await asyncio.gather(
            *(client.sendmail(SENDER, [f"r{i}@example.com"], body(i)) for i in range(3)),
            return_exceptions=True,
        )
        client.close()
    assert [type(r) for r in results] == [fastsmtp.SMTPServerDisconnected] * 3
    assert [getattr(r, "outcome_unknown", None) for r in results] == [True, False, False]
    assert protocol.lost_behind_end
    assert server.messages == []


@pytest.mark.parametrize("pipelining", [True, False])
async def test_lost_behind_end_is_not_set_by_a_plain_drop(pipelining: bool) -> None:
    # One message, nothing behind its end: a drop there is not the pipelining sign.
    async with PolicyServer(Policy(replies={"end": CLOSE})) as server:
        client = fastsmtp.SMTP(
            hostname="127.0.0.1", port=server.port, timeout=5, pipelining=pipelining
        )
        await client.connect()
        protocol = client._link.protocol
        assert protocol is not None
        with pytest.raises(fastsmtp.SMTPServerDisconnected) as caught:
            await client.sendmail(SENDER, ["r0@example.com"], body(0))
        client.close()
    assert caught.value.outcome_unknown
    assert not protocol.lost_behind_end


async def test_a_client_whose_server_broke_on_it_stops_pipelining_across_transactions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A server that drops the connection when commands arrive behind an end of data
    # (Dovecot submission 2.3.19): after the first such drop, the same client sends
    # each transaction only after the previous final reply, on every later connection.
    caplog.set_level(logging.WARNING, logger="fastsmtp")
    async with PoolServer() as server:
        server.behind_end = CLOSE
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        await client.connect()
        first = await asyncio.gather(
            *(client.sendmail(SENDER, [f"r{i}@example.com"], body(i)) for i in range(3)),
            return_exceptions=True,
        )
        assert [getattr(r, "outcome_unknown", None) for r in first] == [True, False, False]
        await client.connect()
        recorder = record_writes(client._link.protocol)
        again = await asyncio.gather(
            *(client.sendmail(SENDER, [f"r{i}@example.com"], body(i)) for i in range(3, 6))
        )
        await client.quit()
    assert again == [({}, "2.0.0 queued")] * 3
    assert server.broken_sessions == [0]
    assert all(not w.endswith(b"DATA\r\n") or b"\r\n.\r\n" not in w for w in recorder.writes)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "fastsmtp: the server dropped the connection while the next transaction was "
        "pipelined behind an end of data (RFC 2920 section 3.1); this client now waits "
        "for each final reply before the next transaction"
    ]
