"""Cancel the caller at every point where an operation waits, then use the same client again.

The rule (design doc): a caller can leave a turn at any await. Then

* nothing owed and no transaction open: the connection is kept;
* a transaction open (MAIL accepted or in flight), no DATA/BDAT sent: RSET goes before the next
  command (its reply is owed like any other);
* DATA, a body, BDAT, an AUTH exchange or STARTTLS in flight: the transport is aborted (no
  QUIT) and the next operation raises SMTPServerDisconnected.

A reply whose caller left is still consumed in order, so later replies pair correctly. Once
the end of a message is written (``CRLF.CRLF``, or the whole BDAT LAST chunk), the server is
reading commands again: a caller cancelled while only the final reply is owed leaves a
connection that is kept (``keep``), and that reply is read and dropped before the next one.

Each case runs an operation as a task against :class:`CancelServer` with one reply held, waits
until the server holds it, cancels the caller (``task.cancel()``, or an ``asyncio.timeout``
around the call expiring), releases the held reply, and then either uses the client again
(``noop()`` and a full ``sendmail``) or leaves ``async with`` (the cancellation propagating
through it). Expectations per case: ``keep`` (kept, replies pair), ``rset`` (kept, and RSET is
the first command after the cancelled one), ``abort`` (SMTPServerDisconnected promptly, the
server sees the connection close and no further command), ``closed`` (connect or QUIT
cancelled: not connected afterwards, and nothing more is sent on that connection).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import fastsmtp
from tests.cancellation.helpers import (
    PROMPT,
    assert_no_tasks_left,
    bounded,
    cancel_at,
    client_for,
    email_message,
    message,
    needs_asyncio_timeout,
    new_id,
)
from tests.cancellation.server import CancelServer, Hold
from tests.hostile.kit import TLSFiles

BASE = ("PIPELINING", "8BITMIME", "SIZE 100000", "AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2")
SENDER = "sender@cancel.test"


Op = Callable[[fastsmtp.SMTP, Hold], Awaitable[Any]]


@dataclass
class Case:
    name: str
    hold: str  # the kind held; "STREAM": the body generator waits (no server hold)
    op: Op
    expect: str  # keep | rset | abort | closed
    n: int = 1
    extensions: tuple[str, ...] = BASE
    client: dict[str, Any] = field(default_factory=dict)
    setup: Op | None = None
    tls: bool = False
    connect: bool = True


def _sendmail(recipients: int = 1) -> Op:
    async def op(client: fastsmtp.SMTP, hold: Hold) -> Any:
        _, data = message()
        rcpts = [f"r{i}@cancel.test" for i in range(recipients)]
        return await client.sendmail(SENDER, rcpts, data)

    return op


def _sendmail_chunks() -> Op:
    """A message of three stream chunks: with BDAT, one BDAT each (the last with LAST)."""

    async def op(client: fastsmtp.SMTP, hold: Hold) -> Any:
        _, data = message(lines=6)
        third = len(data) // 3
        chunks = [data[:third], data[third : 2 * third], data[2 * third :]]
        return await client.sendmail(SENDER, ["r@cancel.test"], chunks)

    return op


def _streamed() -> Op:
    """A message as an async generator that stops half-way (until cancelled)."""

    async def op(client: fastsmtp.SMTP, hold: Hold) -> Any:
        _, data = message(lines=20)

        async def body() -> AsyncIterator[bytes]:
            third = len(data) // 3
            yield data[:third]
            yield data[third : 2 * third]
            # The first piece is out once the second is handed over (the client may keep
            # one piece of look-ahead); wait until the server has it, then stop here.
            conn = hold.conn
            assert conn is not None
            for _ in range(200):
                if data[:third][-20:] in conn.raw.plain:
                    break
                await asyncio.sleep(0.005)
            hold.mark = len(conn.lines)
            hold.reached.set()
            await asyncio.Event().wait()
            yield data[2 * third :]  # never

        return await client.sendmail(SENDER, ["r@cancel.test"], body())

    return op


async def _mail(client: fastsmtp.SMTP, hold: Hold) -> Any:
    return await client.mail(SENDER)


async def _mail_rcpt(client: fastsmtp.SMTP, hold: Hold) -> Any:
    await client.mail(SENDER)
    return await client.rcpt("r@cancel.test")


async def _data(client: fastsmtp.SMTP, hold: Hold) -> Any:
    _, data = message()
    return await client.data(data)


async def _send_message(client: fastsmtp.SMTP, hold: Hold) -> Any:
    _, msg = email_message()
    return await client.send_message(msg)


def _call(name: str, *args: Any) -> Op:
    async def op(client: fastsmtp.SMTP, hold: Hold) -> Any:
        return await getattr(client, name)(*args)

    return op


LOCKSTEP = {"pipelining": False}
BDAT_LOCKSTEP = {"pipelining": False, "chunking": True}
BDAT_PIPELINED = {"chunking": True}
CHUNKING = ("CHUNKING", *BASE)
NO_PIPELINING = tuple(e for e in CHUNKING if e != "PIPELINING")

CASES = [
    Case("connect-greeting", "GREETING", _call("connect"), "closed", connect=False),
    Case("ehlo", "EHLO", _call("ehlo"), "keep"),
    Case("noop", "NOOP", _call("noop"), "keep"),
    Case("vrfy", "VRFY", _call("vrfy", "someone@cancel.test"), "keep"),
    Case("expn", "EXPN", _call("expn", "list@cancel.test"), "keep"),
    Case("help", "HELP", _call("help"), "keep"),
    Case("rset", "RSET", _call("rset"), "keep"),
    Case("starttls-220", "STARTTLS", _call("starttls"), "abort", tls=True),
    Case("starttls-handshake", "TLS", _call("starttls"), "abort", tls=True),
    Case("auth-plain", "AUTH", _call("auth_plain", "user", "secret"), "abort"),
    Case("auth-login-334", "AUTH", _call("auth_login", "user", "secret"), "abort"),
    Case("auth-login-235", "SASL", _call("auth_login", "user", "secret"), "abort"),
    Case("auth-crammd5-334", "AUTH", _call("auth_crammd5", "user", "secret"), "abort"),
    Case("auth-crammd5-235", "SASL", _call("auth_crammd5", "user", "secret"), "abort"),
    Case("auth-xoauth2", "AUTH", _call("auth_xoauth2", "user", "token"), "abort"),
    Case("login", "AUTH", _call("login", "user", "secret"), "abort"),
    Case("mail", "MAIL", _mail, "rset"),
    Case("rcpt", "RCPT", _mail_rcpt, "rset"),
    Case("data-354", "DATA", _data, "abort", setup=_mail_rcpt),
    Case("data-final", "END", _data, "keep", setup=_mail_rcpt),
    Case("sendmail-lockstep-mail", "MAIL", _sendmail(), "rset", client=LOCKSTEP),
    Case("sendmail-lockstep-rcpt", "RCPT", _sendmail(), "rset", client=LOCKSTEP),
    Case("sendmail-lockstep-rcpt2", "RCPT", _sendmail(2), "rset", n=2, client=LOCKSTEP),
    Case("sendmail-lockstep-354", "DATA", _sendmail(), "abort", client=LOCKSTEP),
    Case("sendmail-lockstep-final", "END", _sendmail(), "keep", client=LOCKSTEP),
    # Pipelined: MAIL, RCPT and DATA go in one write, so DATA is in flight at every point.
    Case("sendmail-pipelined-mail", "MAIL", _sendmail(), "abort"),
    Case("sendmail-pipelined-rcpt", "RCPT", _sendmail(), "abort"),
    Case("sendmail-pipelined-354", "DATA", _sendmail(), "abort"),
    Case("sendmail-pipelined-final", "END", _sendmail(), "keep"),
    Case(
        "bdat-lockstep-mail", "MAIL", _sendmail_chunks(), "rset",
        extensions=NO_PIPELINING, client=BDAT_LOCKSTEP,
    ),
    Case(
        "bdat-lockstep-rcpt", "RCPT", _sendmail_chunks(), "rset",
        extensions=NO_PIPELINING, client=BDAT_LOCKSTEP,
    ),
    Case(
        "bdat-lockstep-1", "BDAT", _sendmail_chunks(), "abort",
        extensions=NO_PIPELINING, client=BDAT_LOCKSTEP,
    ),
    Case(
        "bdat-lockstep-2", "BDAT", _sendmail_chunks(), "abort", n=2,
        extensions=NO_PIPELINING, client=BDAT_LOCKSTEP,
    ),
    Case(
        "bdat-lockstep-last", "BDAT", _sendmail_chunks(), "keep", n=3,
        extensions=NO_PIPELINING, client=BDAT_LOCKSTEP,
    ),
    Case(
        "bdat-pipelined-1", "BDAT", _sendmail_chunks(), "keep",
        extensions=CHUNKING, client=BDAT_PIPELINED,
    ),
    Case(
        "bdat-pipelined-last", "BDAT", _sendmail_chunks(), "keep", n=3,
        extensions=CHUNKING, client=BDAT_PIPELINED,
    ),
    Case("streamed-data-lockstep", "STREAM", _streamed(), "abort", client=LOCKSTEP),
    Case("streamed-data-pipelined", "STREAM", _streamed(), "abort"),
    Case("send_message-rcpt", "RCPT", _send_message, "rset", client=LOCKSTEP),
    Case("send_message-final", "END", _send_message, "keep", client=LOCKSTEP),
    Case("send_message-pipelined-final", "END", _send_message, "keep"),
    Case("quit", "QUIT", _call("quit"), "closed"),
]  # fmt: skip

VARIANTS = [
    pytest.param("cancel", "reuse", id="cancel-reuse"),
    pytest.param("timeout", "reuse", id="timeout-reuse", marks=needs_asyncio_timeout),
    pytest.param("cancel", "aexit", id="cancel-aexit"),
]

# After an abort, none of the test's next commands may reach the server (the rest of a
# pipelined group that was already in flight may: that is why MAIL/RCPT are matched by the
# new message's addresses).
_FORBIDDEN_AFTER_ABORT = ("NOOP", "QUIT", "RSET", "EHLO", "HELO", "HELP")


def _expected_exception(how: str) -> type[BaseException]:
    return asyncio.CancelledError if how == "cancel" else TimeoutError


@pytest.mark.parametrize(("how", "then"), VARIANTS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_cancel_then_reuse(case: Case, how: str, then: str, pki: TLSFiles) -> None:
    extensions = case.extensions
    tls_options: dict[str, Any] = {}
    if case.tls:
        tls_options = {"tls_context": pki.client_context()}
    async with CancelServer(
        extensions=extensions, tls_context=pki.good if case.tls else None
    ) as server:
        client = client_for(server, **case.client, **tls_options)
        try:
            if case.connect:
                await bounded(client.connect())
                await bounded(client.ehlo())
            hold_dummy = Hold("STREAM", 0)
            if case.setup is not None:
                await bounded(case.setup(client, hold_dummy))
            if case.hold == "STREAM":
                hold = hold_dummy
                hold.conn = server.conns[-1]
            else:
                hold = server.hold(case.hold, case.n)

            async def op() -> Any:
                if then == "aexit":
                    async with client:
                        return await case.op(client, hold)
                return await case.op(client, hold)

            exc = await cancel_at(hold, op, how, on_cancel=hold.release, max_unwind=PROMPT)
            assert hold.reached.is_set(), f"the operation ended before the hold: {exc!r}"
            assert isinstance(exc, _expected_exception(how)), (
                f"expected {_expected_exception(how).__name__}, got {exc!r}"
            )
            hold.release()
            if then == "aexit":
                await _check_aexit(case, server, client, hold)
            else:
                await _check_reuse(case, server, client, hold)
        finally:
            server.release_all()
            client.close()
    assert server.violations == []
    await assert_no_tasks_left()


async def _check_aexit(case: Case, server: CancelServer, client: fastsmtp.SMTP, hold: Hold) -> None:
    """``async with`` was left with the cancellation: no QUIT into a body or an AUTH
    exchange; the connection is closed either way."""
    assert not client.is_connected
    conn = hold.conn
    assert conn is not None
    await bounded(conn.eof.wait(), 3)
    assert server.violations == []
    after = [text for kind, text in hold.after() if kind in ("cmd", "sasl")]
    quits = [t for t in after if t.split(" ")[0].split(":")[0].upper() == "QUIT"]
    if case.expect in ("abort", "closed"):
        assert not quits, f"QUIT sent after a cancellation that must abort: {hold.after()}"
    else:
        assert quits, f"a kept connection is left with QUIT: {hold.after()}"


async def _check_reuse(case: Case, server: CancelServer, client: fastsmtp.SMTP, hold: Hold) -> None:
    loop = asyncio.get_running_loop()
    conn = hold.conn
    assert conn is not None
    if case.expect in ("abort", "closed"):
        started = loop.time()
        with pytest.raises(fastsmtp.SMTPServerDisconnected):
            await bounded(client.noop())
        assert loop.time() - started < PROMPT, "SMTPServerDisconnected came late"
        assert not client.is_connected
        _, data = message()
        with pytest.raises(fastsmtp.SMTPServerDisconnected):
            await bounded(client.sendmail("again@cancel.test", ["fresh@cancel.test"], data))
        assert not client.is_connected
        await bounded(conn.eof.wait(), 3)
        after = [text for kind, text in hold.after() if kind == "cmd"]
        leaked = [
            t
            for t in after
            if t.split(" ")[0].split(":")[0].upper() in _FORBIDDEN_AFTER_ABORT
            or "again@" in t
            or "fresh@" in t
        ]
        assert not leaked, f"commands sent after the cancellation: {hold.after()}"
        if case.expect == "closed":
            # A fresh connection works.
            await bounded(client.connect())
            await _full_round(server, client)
        assert server.violations == []
        return

    # keep / rset: the same connection goes on, replies pair with their commands.
    reply = await bounded(client.noop())
    assert "NOOP#" in reply.message, f"NOOP got someone else's reply: {reply}"
    await _full_round(server, client)
    assert len(server.conns) == 1, "the connection was not kept"
    assert server.violations == []
    if case.expect == "rset":
        after = [text for kind, text in hold.after() if kind == "cmd"]
        assert after and after[0].upper() == "RSET", (
            f"an open transaction was not reset before the next command: {after}"
        )


async def _full_round(server: CancelServer, client: fastsmtp.SMTP) -> None:
    """A whole new message: accepted, its own final reply, its body intact and once."""
    message_id = new_id("again")
    _, data = message(message_id)
    refused, reply = await bounded(
        client.sendmail("again@cancel.test", ["fresh@cancel.test"], data)
    )
    assert refused == {}
    assert f"id={message_id}" in reply, f"the final reply is not this message's: {reply!r}"
    got = [body for conn in server.conns for body in conn.bodies if message_id.encode() in body]
    assert len(got) == 1, f"the new message arrived {len(got)} times"
    assert got[0] == data, "the new message's body was not delivered intact"
    mails = [
        t for c in server.conns for t in c.commands if t.upper().startswith("MAIL FROM:<AGAIN@")
    ]
    assert len(mails) == 1, mails


# -- the pool ---------------------------------------------------------------------------


POOL_CASES = [
    pytest.param("send_message", "RCPT", False, id="send_message-rcpt-lockstep"),
    pytest.param("send_message", "END", False, id="send_message-final-lockstep"),
    pytest.param("send_message", "END", True, id="send_message-final-pipelined"),
    pytest.param("send_many", "RCPT", False, id="send_many-rcpt-lockstep"),
    pytest.param("send_many", "END", True, id="send_many-final-pipelined"),
]


@pytest.mark.parametrize("how", ["cancel", pytest.param("timeout", marks=needs_asyncio_timeout)])
@pytest.mark.parametrize(("method", "kind", "pipelined"), POOL_CASES)
async def test_pool_cancel_then_reuse(method: str, kind: str, pipelined: bool, how: str) -> None:
    """A pool send cancelled at a held reply: the pool goes on sending (on the same
    connection or a new one), nothing is ever sent into a body, and closing the pool
    afterwards sends no QUIT into a body either."""
    async with CancelServer(extensions=BASE) as server:
        pool = fastsmtp.SMTPPool(
            hostname="127.0.0.1",
            port=server.port,
            timeout=3,
            start_tls=False,
            max_connections=1,
            max_attempts=1,
            pipelining=None if pipelined else False,
        )
        try:
            # Open the pool's connection first, so the hold is on a known connection.
            first_id, first = email_message()
            await bounded(pool.send_message(first))
            hold = server.hold(kind)
            _, msg = email_message()
            if method == "send_message":
                exc = await cancel_at(hold, lambda: pool.send_message(msg), how)
            else:
                exc = await cancel_at(hold, lambda: pool.send_many([msg]), how)
            assert hold.reached.is_set(), f"the send ended before the hold: {exc!r}"
            assert isinstance(exc, _expected_exception(how)), exc
            hold.release()
            message_id, again = email_message(new_id("again"))
            _, reply = await bounded(pool.send_message(again))
            assert f"id={message_id}" in reply, reply
            results = await bounded(pool.send_many([email_message()[1] for _ in range(3)]))
            assert all(r.ok for r in results), results
        finally:
            await bounded(pool.close())
            server.release_all()
        # Every connection is closed by the client and ended cleanly.
        for conn in server.conns:
            await bounded(conn.eof.wait(), 3)
        assert server.violations == []
        ids = [mid for _, mid in server.received]
        assert ids.count(message_id) == 1, ids
        assert ids.count(first_id) == 1, ids
        conn = hold.conn
        assert conn is not None
        after = [text for k, text in hold.after() if k == "cmd"]
        if kind == "END" and pipelined:
            # The message was out and the connection back in the pool before its final
            # reply: the cancelled caller leaves it as it is, and the next messages go on
            # the same connection, each paired with its own final reply (checked above).
            assert len(server.conns) == 1, "a connection in command mode was thrown away"
        elif kind == "END":
            # Cancelled inside the transaction's turn: the pool closes that connection
            # (its state is unknown to the pool) without another command.
            assert after == [], f"commands on a connection that had to be aborted: {after}"
    await assert_no_tasks_left()
