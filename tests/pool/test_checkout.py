"""SMTPPool: every way out of an attempt leaves the connection checked in or closed.

A connection goes back to the idle list only when its state is known good; otherwise it
is retired with QUIT (state known, but not to be reused) or aborted (state unknown). A
cancelled send never leaves a socket open, a slot taken or a final reply un-awaited,
and the cancellation reaches the caller. Also: the reply a partly delivered message
reports. Checks are on what the server saw and on what the pool reports.
"""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from fastsmtp import SMTPNotSupported, SMTPSenderRefused, SMTPServerDisconnected
from fastsmtp.results import SendStatus
from tests.client.conftest import _collect_garbage  # noqa: F401  (fixture)
from tests.pool.server import CLOSE, HOLD, SILENT, PoolServer, Session
from tests.pool.test_pool import assert_once, message, pool_for, raw

# -- bug 1: a cancelled idle check closes its connection -------------------------------


async def test_cancelled_idle_check_closes_the_connection_and_frees_the_slot() -> None:
    class Server(PoolServer):
        def reply_noop(self, session: Session) -> str:
            # The first connection never answers its NOOP: the check hangs.
            return SILENT if session.index == 0 else "250 2.0.0 ok"

    async with Server() as server:
        async with pool_for(server, max_connections=1, idle_check_after=0) as pool:
            await pool.sendmail("a@example.com", "b@example.com", raw(0))
            send = asyncio.ensure_future(pool.sendmail("a@example.com", "b@example.com", raw(1)))
            await server.wait_for(lambda: "NOOP" in server.sessions[0].verbs)
            send.cancel()
            with pytest.raises(asyncio.CancelledError):
                await send
            # The connection owes a NOOP reply, so its state is unknown: closed at once,
            # not kept, not left open.
            assert pool.connection_count == 0
            await server.wait_for(lambda: server.sessions[0].closed)
            # The slot came back (max_connections=1): the next send gets a new connection.
            await pool.sendmail("a@example.com", "b@example.com", raw(2))
            assert pool.connection_count == 1
        assert len(server.sessions) == 2
        assert not server.sessions[0].quit
        assert server.sessions[0].verbs[-1] == "NOOP"
        assert server.sessions[1].quit
        assert_once(server, ["<r0@pool.test>", "<r2@pool.test>"])


async def test_cancelled_mid_transaction_aborts_the_connection() -> None:
    class Server(PoolServer):
        def reply_rcpt(self, session: Session, address: str) -> str:
            return SILENT if session.index == 0 else "250 2.1.5 ok"

    async with Server() as server:
        async with pool_for(server, max_connections=1) as pool:
            send = asyncio.ensure_future(pool.send_message(message(0)))
            await server.wait_for(lambda: any("RCPT" in s.verbs for s in server.sessions))
            send.cancel()
            with pytest.raises(asyncio.CancelledError):
                await send
            assert pool.connection_count == 0
            await pool.send_message(message(1))
        assert len(server.sessions) == 2
        assert not server.sessions[0].quit and server.sessions[1].quit
        assert_once(server, ["<m1@pool.test>"])


# -- bug 2: a send cancelled after its message is out ----------------------------------


async def test_send_cancelled_after_the_message_is_out_leaks_nothing() -> None:
    class Server(PoolServer):
        def reply_mail(self, session: Session, message: int) -> str:
            # Hold the first transaction until the pool is closing, so its connection is
            # retired (QUIT) as soon as the message is out.
            return HOLD if message == 0 else "250 2.1.0 ok"

        def reply_end(self, session: Session, message: int, body: bytes) -> str:
            return SILENT  # the final reply (and the 221) never come

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with Server() as server:
            pool = pool_for(server, max_connections=1, timeout=60)
            send = asyncio.ensure_future(pool.sendmail("a@example.com", "b@example.com", raw(0)))
            await server.wait_for(lambda: server.holding == 1)
            closing = asyncio.ensure_future(pool.close())
            await asyncio.sleep(0)  # one step: close() begins and waits for the send
            assert pool.is_closed and not closing.done()
            server.release.set()
            # The body is out; the pool now waits for the final reply and for the 221.
            await server.wait_for(lambda: server.bodies == 1)
            send.cancel()
            with pytest.raises(asyncio.CancelledError):
                await send
            # The server hangs up: whatever the pool still waits for on it ends now.
            server.protocols[0].transport.close()  # type: ignore[union-attr]
            await closing
            assert pool.connection_count == 0
            await server.wait_for(lambda: server.sessions[0].closed)
        del send
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


async def test_send_cancelled_while_awaiting_the_final_reply() -> None:
    class Server(PoolServer):
        def reply_end(self, session: Session, message: int, body: bytes) -> str:
            return HOLD if message == 0 else "250 2.0.0 queued"

    async with Server() as server:
        async with pool_for(server, max_connections=1) as pool:
            send = asyncio.ensure_future(pool.send_message(message(0)))
            await server.wait_for(lambda: server.holding == 1)
            send.cancel()
            with pytest.raises(asyncio.CancelledError):
                await send
            # The connection was back in the pool before the final reply (RFC 2920
            # section 3.1): its state is known, and the reply still pairs in order.
            assert pool.connection_count == 1
            server.release.set()
            await pool.send_message(message(1))
        (session,) = server.sessions
        assert session.quit
        assert_once(server, ["<m0@pool.test>", "<m1@pool.test>"])


# -- bug 3: SMTPNotSupported leaves the connection as it was ----------------------------


@pytest.mark.parametrize("case", ["smtputf8-option", "utf8-address", "pipelining"])
async def test_not_supported_keeps_the_connection(case: str) -> None:
    extensions = ("8BITMIME",) if case == "pipelining" else ("PIPELINING", "8BITMIME")
    options = {"pipelining": True} if case == "pipelining" else {}
    async with (
        PoolServer(extensions=extensions) as server,
        pool_for(server, max_connections=1, **options) as pool,
    ):
        with pytest.raises(SMTPNotSupported):
            if case == "utf8-address":
                await pool.send_message(message(0, to="jörg@example.com"))
            else:
                await pool.sendmail(
                    "a@example.com",
                    ["b@example.com"],
                    raw(0),
                    mail_options=["SMTPUTF8"] if case == "smtputf8-option" else None,
                )
        if case != "pipelining":
            await pool.sendmail("a@example.com", ["b@example.com"], raw(1))
        assert pool.connection_count == 1
    # Nothing was written for the refused send; the same connection carried on and was
    # closed with QUIT.
    (session,) = server.sessions
    assert session.quit
    sent = [] if case == "pipelining" else ["MAIL", "RCPT", "DATA"]
    assert session.verbs == ["EHLO", *sent, "QUIT"]


async def test_not_supported_in_send_many_is_permanent_and_reuses() -> None:
    items = [
        (raw(0), "a@example.com", ["b@example.com"]),
        message(1, to="jörg@example.com"),
        (raw(2), "a@example.com", ["b@example.com"]),
    ]
    async with (
        PoolServer(extensions=("PIPELINING",)) as server,
        pool_for(server, max_connections=1) as pool,
    ):
        results = await pool.send_many(items)
    assert [r.status for r in results] == [
        SendStatus.SENT,
        SendStatus.FAILED_PERMANENTLY,
        SendStatus.SENT,
    ]
    assert isinstance(results[1].exception, SMTPNotSupported)
    assert results[1].attempts == 1
    (session,) = server.sessions
    assert session.quit
    assert_once(server, ["<r0@pool.test>", "<r2@pool.test>"])


# -- bug 4: a failed retry does not hide the delivery before it ---------------------------


class _RetryFails(PoolServer):
    """The first transaction delivers to ok@ but defers busy@; the retry for busy@ is
    deferred at MAIL (or disconnected)."""

    def __init__(self, fault: str) -> None:
        super().__init__()
        self.fault = fault
        self.mails = 0

    def reply_mail(self, session: Session, message: int) -> str:
        self.mails += 1
        if self.mails > 1:
            return "451 4.7.1 slow down" if self.fault == "451" else CLOSE
        return "250 2.1.0 ok"

    def reply_rcpt(self, session: Session, address: str) -> str:
        return "450 4.2.1 mailbox busy" if address == "busy@example.com" else "250 2.1.5 ok"

    def reply_end(self, session: Session, message: int, body: bytes) -> str:
        return "250 2.0.0 queued as 1"


@pytest.mark.parametrize("fault", ["451", "disconnect"])
async def test_partial_delivery_keeps_the_final_reply_of_the_delivering_attempt(
    fault: str,
) -> None:
    async with _RetryFails(fault) as server, pool_for(server, max_attempts=2) as pool:
        to = "ok@example.com, busy@example.com"
        (result,) = await pool.send_many([message(0, to=to)])
    assert result.status is SendStatus.PARTIALLY_SENT
    assert result.attempts == 2
    assert result.accepted == ["ok@example.com"]
    # The message WAS accepted for ok@: its 250 is the reply, whatever the retry met.
    assert result.reply is not None
    assert (result.reply.code, result.reply.message) == (250, "2.0.0 queued as 1")
    refusal = result.refused["busy@example.com"]
    if fault == "451":
        # The retry's failure is the last reply that kept the message from busy@.
        assert isinstance(result.exception, SMTPSenderRefused)
        assert result.exception.code == 451
        assert (refusal.code, refusal.enhanced_status) == (451, "4.7.1")
    else:
        assert isinstance(result.exception, SMTPServerDisconnected)
        assert (refusal.code, refusal.enhanced_status) == (450, "4.2.1")
    assert [d.recipients for d in server.deliveries] == [["ok@example.com"]]


async def test_partial_delivery_through_sendmail_returns_the_250() -> None:
    async with _RetryFails("451") as server, pool_for(server, max_attempts=2) as pool:
        refused, reply = await pool.sendmail(
            "a@example.com", ["ok@example.com", "busy@example.com"], raw(0)
        )
    assert reply == "2.0.0 queued as 1"
    assert list(refused) == ["busy@example.com"]
    assert refused["busy@example.com"].code == 451
