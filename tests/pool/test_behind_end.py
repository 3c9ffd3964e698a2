"""Servers that break when the next transaction is pipelined behind an end of data.

Debian 12's Dovecot submission (2.3.19) ends its session when the next transaction's
commands arrive before its final reply. :class:`tests.pool.server.PoolServer` with
``behind_end`` does the same (or hangs): it drops the connection when an end of data
comes in one read with more commands. The pool must not lose messages to that: the
message whose end went unanswered has an unknown outcome (only a reply could tell), the
one pipelined behind it is sent again at once (none of its commands was answered), and
from then on that host gets one transaction at a time, for as long as the pool lives.
"""

from __future__ import annotations

import logging

import pytest

from fastsmtp import SMTPPool, SMTPServerDisconnected, SMTPTimeoutError
from fastsmtp.results import SendStatus
from tests.client.conftest import _collect_garbage  # noqa: F401  (fixture)
from tests.pool.server import CLOSE, SILENT, PoolServer
from tests.pool.test_pool import FAST, assert_once, raw

SENDER = "sender@example.com"


def items(numbers: range) -> list[tuple[bytes, str, list[str]]]:
    return [(raw(i), SENDER, [f"r{i}@example.com"]) for i in numbers]


@pytest.mark.parametrize("max_attempts", [1, 3])
async def test_a_drop_behind_an_end_costs_no_message(
    max_attempts: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fastsmtp")
    async with PoolServer() as server:
        server.behind_end = CLOSE
        async with SMTPPool(
            hostname="127.0.0.1",
            port=server.port,
            max_connections=1,
            max_attempts=max_attempts,
            timeout=5,
            **FAST,  # type: ignore[arg-type]
        ) as pool:
            results = await pool.send_many(items(range(6)))
            # Remembered: the same pool sends to that host one transaction at a time.
            later = await pool.send_many(items(range(6, 10)))
        sessions = len(server.sessions)
    # Message 0's end came with message 1's commands, and the server dropped the
    # connection: 0 may or may not have been taken (only its reply could say); 1 had
    # nothing answered, so it went again at once, on a new connection.
    first = results[0]
    assert first.status is SendStatus.OUTCOME_UNKNOWN
    assert isinstance(first.exception, SMTPServerDisconnected)
    assert first.attempts == 1
    assert [r.status for r in results[1:]] == [SendStatus.SENT] * 5
    assert [r.attempts for r in results[1:]] == [2, 1, 1, 1, 1]
    assert [r.status for r in later] == [SendStatus.SENT] * 4
    assert server.broken_sessions == [0]
    assert sessions == 2
    assert_once(server, [f"<r{i}@pool.test>" for i in range(1, 10)])
    # Once for the pool, however many messages met the drop (the client whose
    # connection it was says so too).
    warnings = [r for r in caplog.records if r.getMessage().startswith("fastsmtp pool:")]
    warnings = [r for r in warnings if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "pipelined behind an end of data" in warnings[0].getMessage()
    assert any("sending a message again at once" in r.getMessage() for r in caplog.records)


async def test_a_server_that_hangs_behind_an_end() -> None:
    # The same, with a server that stops answering instead of closing: the final
    # reply times out, and the message behind it is sent again at once.
    async with PoolServer() as server:
        server.behind_end = SILENT
        async with SMTPPool(
            hostname="127.0.0.1",
            port=server.port,
            max_connections=1,
            timeout=0.5,
            **FAST,  # type: ignore[arg-type]
        ) as pool:
            results = await pool.send_many(items(range(4)))
    assert results[0].status is SendStatus.OUTCOME_UNKNOWN
    assert isinstance(results[0].exception, SMTPTimeoutError)
    assert [r.status for r in results[1:]] == [SendStatus.SENT] * 3
    assert [r.attempts for r in results] == [1, 2, 1, 1]
    assert server.broken_sessions == [0]
    assert_once(server, [f"<r{i}@pool.test>" for i in range(1, 4)])


async def test_serial_sending_keeps_every_other_rule() -> None:
    # After the switch, a refused end of data is still a failure of that message only
    # (the connection is kept: 5yz), and a 4yz is retried on a fresh connection.
    class Refusing(PoolServer):
        deferred = False

        def reply_end(self, session: object, message: int, body: bytes) -> str:
            if b"<r2@" in body:
                return "554 5.6.0 no"
            if b"<r3@" in body and not self.deferred:
                self.deferred = True
                return "451 4.3.0 later"
            return "250 2.0.0 queued"

    async with Refusing() as server:
        server.behind_end = CLOSE
        async with SMTPPool(
            hostname="127.0.0.1",
            port=server.port,
            max_connections=1,
            timeout=5,
            **FAST,  # type: ignore[arg-type]
        ) as pool:
            results = await pool.send_many(items(range(5)))
    assert [r.status for r in results] == [
        SendStatus.OUTCOME_UNKNOWN,
        SendStatus.SENT,
        SendStatus.FAILED_PERMANENTLY,
        SendStatus.SENT,
        SendStatus.SENT,
    ]
    assert results[2].reply is not None and results[2].reply.code == 554
    assert results[3].attempts == 2
    assert server.broken_sessions == [0]
    # Sessions: the broken one, the one carrying 1, 2 and 3 (retired after the 451),
    # and the one carrying 3 again and 4.
    assert len(server.sessions) == 3
    assert_once(server, ["<r1@pool.test>", "<r3@pool.test>", "<r4@pool.test>"])
