"""Regression tests for specific bugs of the client's connection handling, black-box through
the public API against :class:`tests.cancellation.server.CancelServer`.

Each one states the behaviour the sans-I/O rewrite must have; most fail on the code they were
written against (and do so in seconds: every wait is bounded).
"""

from __future__ import annotations

import asyncio
import io
import re
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import fastsmtp
from tests.cancellation.helpers import (
    assert_no_tasks_left,
    bounded,
    cancel_at,
    client_for,
    message,
    new_id,
)
from tests.cancellation.server import CancelServer
from tests.hostile.kit import TLSFiles

SENDER = "sender@cancel.test"


def _big_stream(total: int = 64 * 1024 * 1024, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A large message streamed in pieces (no line looks like a command)."""
    _, head = message(lines=1)
    line = b"x" * 78 + b"\r\n"
    block = line * (piece // len(line))

    async def gen() -> AsyncIterator[bytes]:
        yield head
        sent = 0
        while sent < total:
            yield block
            sent += len(block)

    return gen()


# -- a cancelled RCPT, then the next sendmail ------------------------------------------------


@pytest.mark.parametrize("timeout", [2.0, None], ids=["timeout-2", "timeout-None"])
async def test_sendmail_after_cancelled_rcpt(timeout: float | None) -> None:
    """A sendmail cancelled while waiting for its RCPT reply leaves a transaction open; the
    next sendmail on the same client must succeed (RSET first, replies paired), and its MAIL,
    RCPT and DATA must reach the server as commands, never inside a body. With
    ``timeout=None`` this used to hang; the test bounds it with 5 s."""
    async with CancelServer() as server:
        client = client_for(server, timeout=timeout, pipelining=False)
        try:
            await bounded(client.connect())
            hold = server.hold("RCPT")
            _, data = message()
            exc = await cancel_at(hold, lambda: client.sendmail(SENDER, ["r@cancel.test"], data))
            assert isinstance(exc, asyncio.CancelledError), exc
            hold.release()
            message_id, again = message(new_id("again"))
            _, reply = await asyncio.wait_for(
                client.sendmail("again@cancel.test", ["fresh@cancel.test"], again), 5
            )
            assert f"id={message_id}" in reply
        finally:
            server.release_all()
            client.close()
        conn = server.conn
        assert "MAIL FROM:<again@cancel.test>" in " ".join(conn.commands)
        assert "RCPT TO:<fresh@cancel.test>" in conn.commands
        assert [b for b in conn.bodies if message_id.encode() in b] == [again]
        assert server.violations == []
    await assert_no_tasks_left()


# -- a cancelled AUTH LOGIN step ------------------------------------------------------------


async def test_cancelled_auth_login_step() -> None:
    """AUTH LOGIN cancelled while the 334 is held: the server is inside the SASL exchange,
    so the client must abort the connection: the next command is never read as a SASL
    response, the next operation raises SMTPServerDisconnected, and leaving ``async with``
    sends no QUIT into the exchange."""
    async with CancelServer(extensions=("AUTH LOGIN PLAIN",)) as server:
        client = client_for(server)
        try:
            async with client:
                await bounded(client.ehlo())
                hold = server.hold("AUTH")
                exc = await cancel_at(hold, lambda: client.auth_login("user", "secret"))
                assert isinstance(exc, asyncio.CancelledError), exc
                hold.release()
                with pytest.raises(fastsmtp.SMTPServerDisconnected):
                    await bounded(client.noop())
                assert not client.is_connected
        finally:
            server.release_all()
            client.close()
        await bounded(server.conn.eof.wait(), 3)
        assert server.violations == []
        assert hold.after() == [], f"sent into the AUTH exchange: {hold.after()}"
    await assert_no_tasks_left()


# -- two pipelined transactions, the connection lost after the first body -------------------


async def test_outcome_unknown_is_per_message() -> None:
    """Two pipelined sendmails on one connection; the server drops the connection right
    after the first message's end of data, before any final reply. Only the first message's
    outcome is unknown; the second (its body never left, or its DATA was never answered) has
    ``outcome_unknown`` False, and each caller gets its own exception object."""
    async with CancelServer(drop_after_end=1) as server:
        client = client_for(server)
        try:
            await bounded(client.connect())
            id1, data1 = message()
            id2, data2 = message()
            results = await bounded(
                asyncio.gather(
                    client.sendmail(SENDER, ["r1@cancel.test"], data1),
                    client.sendmail(SENDER, ["r2@cancel.test"], data2),
                    return_exceptions=True,
                )
            )
        finally:
            client.close()
        assert [mid for _, mid in server.received] == [id1]  # id2's body never arrived
        assert id2 not in [mid for _, mid in server.accepted]
        first, second = results
        assert isinstance(first, fastsmtp.SMTPException), first
        assert isinstance(second, fastsmtp.SMTPException), second
        assert first is not second, "one exception object shared by two callers"
        assert first.outcome_unknown is True
        assert second.outcome_unknown is False
    await assert_no_tasks_left()


# -- QUIT while a pipelined final reply is outstanding ---------------------------------------


async def test_quit_while_final_reply_outstanding() -> None:
    """``quit()`` called while a pipelined message's final reply is still owed; the server
    never answers it and closes on QUIT. The message's fate is unknown: SMTPServerDisconnected
    (or a timeout) with ``outcome_unknown=True`` - not a made-up ``SMTPDataError(221)``."""
    async with CancelServer() as server:
        client = client_for(server)
        try:
            await bounded(client.connect())
            hold = server.hold("END", close_on_quit=True)
            _, data = message()
            task = asyncio.ensure_future(client.sendmail(SENDER, ["r@cancel.test"], data))
            await bounded(hold.reached.wait())
            # quit() itself may succeed or fail; the message's outcome is what is checked.
            await bounded(asyncio.gather(client.quit(), return_exceptions=True))
            try:
                await bounded(task)
            except BaseException as exc:
                error: BaseException | None = exc
            else:
                error = None
        finally:
            server.release_all()
            client.close()
        assert error is not None, "the message cannot have succeeded"
        assert not isinstance(error, fastsmtp.SMTPResponseException), (
            f"a reply the server never sent: {error!r}"
        )
        assert isinstance(error, (fastsmtp.SMTPServerDisconnected, fastsmtp.SMTPTimeoutError))
        assert error.outcome_unknown is True
    await assert_no_tasks_left()


# -- STARTTLS runs inside the connection's turn ---------------------------------------------


async def test_no_plaintext_during_starttls(pki: TLSFiles) -> None:
    """While ``starttls()`` waits for its 220, a concurrent ``noop()`` must wait for the
    upgrade: no NOOP in plaintext after STARTTLS (it may come encrypted afterwards)."""
    async with CancelServer(extensions=("PIPELINING",), tls_context=pki.good) as server:
        client = client_for(server, tls_context=pki.client_context())
        try:
            await bounded(client.connect())
            await bounded(client.ehlo())
            hold = server.hold("STARTTLS")
            starttls = asyncio.ensure_future(client.starttls())
            await bounded(hold.reached.wait())
            noop = asyncio.ensure_future(client.noop())
            for _ in range(20):  # let the noop task run as far as it can
                await asyncio.sleep(0)
            await asyncio.sleep(0.05)
            hold.release()
            await bounded(asyncio.gather(starttls, noop, return_exceptions=True))
        finally:
            server.release_all()
            client.close()
        conn = server.conn
        plain = bytes(conn.raw.plain)
        after = plain[plain.index(b"STARTTLS\r\n") + len(b"STARTTLS\r\n") :]
        assert b"NOOP" not in after + bytes(conn.raw.raw_after_starttls), (
            "NOOP written in plaintext during STARTTLS"
        )
        assert server.violations == []


# -- an early reply during a streamed upload --------------------------------------------------


async def test_early_reply_during_streamed_upload() -> None:
    """The server answers ``554`` while the client is still streaming the body, and stops
    reading. The caller gets SMTPDataError(554) promptly (not a timeout), and the connection
    is closed (no RSET written into what the server still reads as DATA)."""
    server_ctx = CancelServer(extensions=("8BITMIME",), early_reply="554 5.6.0 no thanks")
    async with server_ctx as server:
        client = client_for(server, timeout=5, pipelining=False)
        loop = asyncio.get_running_loop()
        try:
            await bounded(client.connect())
            started = loop.time()
            with pytest.raises(fastsmtp.SMTPDataError) as info:
                await bounded(client.sendmail(SENDER, ["r@cancel.test"], _big_stream()), 10)
            elapsed = loop.time() - started
            assert info.value.code == 554
            assert elapsed < 2.5, f"the 554 was noticed only after {elapsed:.1f} s"
            assert not client.is_connected
        finally:
            client.close()
            server.resume.set()
        conn = server.conn
        await bounded(conn.eof.wait(), 5)
        tail = bytes(conn.tail)
        assert not re.search(rb"(?m)^(?:RSET|QUIT|NOOP|MAIL FROM:)", tail), (
            "a command was written into the DATA stream"
        )


# -- a reconnect, then an error from the old connection ------------------------------------


async def test_old_transaction_error_does_not_close_new_connection() -> None:
    """A pipelined message's final reply is owed on connection 1 when the caller closes the
    client and connects again. The failure of that old message (its connection is gone) must
    not close connection 2."""
    async with CancelServer() as server:
        client = client_for(server)
        try:
            await bounded(client.connect())
            hold = server.hold("END")
            _, data = message()
            task = asyncio.ensure_future(client.sendmail(SENDER, ["r@cancel.test"], data))
            await bounded(hold.reached.wait())
            client.close()
            await bounded(client.connect())
            assert client.is_connected
            hold.release()
            with pytest.raises((fastsmtp.SMTPException, ConnectionError)):
                await bounded(task)
            assert client.is_connected, "the old message's failure closed the new connection"
            reply = await bounded(client.noop())
            assert "NOOP#" in reply.message
        finally:
            server.release_all()
            client.close()
        assert len(server.conns) == 2
        assert server.violations == []
    await assert_no_tasks_left()


# -- SIZE ------------------------------------------------------------------------------------


def _mail_size(line: str) -> list[int]:
    return [int(v) for v in re.findall(r"(?i)\bSIZE=(\d+)", line)]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"hello\r\nworld\r\n", id="crlf-end"),
        pytest.param(b"hello\r\n.dot line\r\nworld\r\n", id="dot-line"),
        pytest.param(b"hello\r\nworld", id="no-final-crlf"),
    ],
)
async def test_bdat_size_is_exact(body: bytes) -> None:
    """With BDAT, SIZE announces exactly the octets the BDAT chunks carry (no CRLF added for
    a message that already ends in one, no dot-stuffing counted; for a message without a
    final CRLF, SIZE and the chunks must agree on whether one is added)."""
    message_id = new_id()
    data = f"Subject: size\r\nMessage-ID: {message_id}\r\n\r\n".encode() + body
    async with CancelServer(extensions=("CHUNKING", "SIZE 100000")) as server:
        client = client_for(server, chunking=True)
        try:
            await bounded(client.connect())
            await bounded(client.sendmail(SENDER, ["r@cancel.test"], data))
        finally:
            client.close()
        conn = server.conn
        mail = [c for c in conn.commands if c.upper().startswith("MAIL")]
        sent = sum(int(t.split()[0]) for k, t in conn.lines if k == "bdat")
        # A message without a final CRLF may get one added (then SIZE must count it).
        assert conn.bodies in ([data], [data + b"\r\n"])
        assert _mail_size(mail[0]) == [sent], f"{mail[0]!r} but BDAT sent {sent} octets"


@pytest.mark.parametrize("chunking", [False, True], ids=["data", "bdat"])
@pytest.mark.parametrize("stream", [False, True], ids=["bytes", "stream"])
async def test_caller_size_announced_once(chunking: bool, stream: bool) -> None:
    """``size=`` given by the caller: the MAIL line carries SIZE exactly once, that value."""
    _, data = message()
    extensions = ("SIZE 100000", *(("CHUNKING",) if chunking else ()))
    async with CancelServer(extensions=extensions) as server:
        client = client_for(server, chunking=chunking)
        try:
            await bounded(client.connect())
            source: Any = [data] if stream else data
            await bounded(client.sendmail(SENDER, ["r@cancel.test"], source, size=4321))
        finally:
            client.close()
        mail = [c for c in server.conn.commands if c.upper().startswith("MAIL")]
        assert _mail_size(mail[0]) == [4321], mail[0]


# -- a synchronous file object is read off the event loop -------------------------------------


class _ThreadRecordingFile(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.threads: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.threads.append(threading.get_ident())
        return super().read(size)


@pytest.mark.parametrize("chunking", [False, True], ids=["data", "bdat"])
async def test_sync_file_read_off_the_loop(chunking: bool, tmp_path: Path) -> None:
    """A synchronous binary file object as the message is read without blocking the event
    loop. Expected fix: each ``read`` runs in a worker thread (``asyncio.to_thread`` or the
    loop's executor), so ``threading.get_ident()`` in ``read`` differs from the loop's
    thread. Checked with a BytesIO subclass and with a real ``open(path, "rb")`` file (whose
    reads are observed through a wrapper)."""
    _, data = message(lines=50)
    loop_thread = threading.get_ident()
    extensions = ("SIZE 100000", *(("CHUNKING",) if chunking else ()))
    path = tmp_path / "message.eml"
    path.write_bytes(data)
    async with CancelServer(extensions=extensions) as server:
        client = client_for(server, chunking=chunking)
        try:
            await bounded(client.connect())
            memory = _ThreadRecordingFile(data)
            await bounded(client.sendmail(SENDER, ["r@cancel.test"], memory))
            with path.open("rb") as raw:
                threads: list[int] = []

                class Wrapped:
                    def read(self, size: int = -1) -> bytes:
                        threads.append(threading.get_ident())
                        return raw.read(size)

                await bounded(client.sendmail(SENDER, ["r@cancel.test"], Wrapped()))
        finally:
            client.close()
        assert server.conn.bodies == [data, data]
        assert memory.threads and threads
        assert loop_thread not in memory.threads, "BytesIO.read ran on the event loop thread"
        assert loop_thread not in threads, "file.read ran on the event loop thread"


# -- error paths abort ------------------------------------------------------------------------


def _tcp_state(local_port: int, remote_port: int) -> str | None:
    """The state (hex, as in /proc/net/tcp) of the socket local_port -> remote_port."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if (
                int(local.rsplit(":", 1)[1], 16) == local_port
                and int(remote.rsplit(":", 1)[1], 16) == remote_port
            ):
                return state
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")
async def test_stalled_upload_really_closes_socket() -> None:
    """The server stops reading in the middle of a body; the client (timeout=1) gives up
    with a timeout error, and then its socket is really closed at once (state no longer
    ESTABLISHED), not kept open by a ``transport.close()`` waiting to flush a buffer the
    server will never read."""
    async with CancelServer(extensions=("8BITMIME",), stall_body=True) as server:
        client = client_for(server, timeout=1, pipelining=False)
        loop = asyncio.get_running_loop()
        try:
            await bounded(client.connect())
            local_port = client.get_transport_info("sockname")[1]
            assert _tcp_state(local_port, server.port) == "01"
            started = loop.time()
            with pytest.raises(fastsmtp.SMTPTimeoutError):
                await bounded(client.sendmail(SENDER, ["r@cancel.test"], _big_stream()), 10)
            assert loop.time() - started < 4
            assert not client.is_connected
            state = _tcp_state(local_port, server.port)
            for _ in range(50):
                if state != "01":
                    break
                await asyncio.sleep(0.02)
                state = _tcp_state(local_port, server.port)
            assert state != "01", "the client's socket is still open after the error"
        finally:
            client.close()
            server.resume.set()
        await bounded(server.conn.eof.wait(), 5)


async def test_old_final_reply_awaited_after_reconnect_leaves_the_new_connection() -> None:
    """The same as above, with the old message's final reply awaited only after the
    reconnect (as the pool does: the message is handed over, the reply awaited later).
    The failure belongs to connection 1; connection 2 stays open and in step."""
    async with CancelServer() as server:
        client = client_for(server)
        try:
            await bounded(client.connect())
            hold = server.hold("END")
            _, data = message()
            submission = await bounded(client._link.submit(SENDER, ["r@cancel.test"], data))
            await bounded(hold.reached.wait())
            client.close()
            await bounded(client.connect())
            with pytest.raises(fastsmtp.SMTPServerDisconnected) as info:
                await bounded(submission.reply())
            assert info.value.outcome_unknown
            assert client.is_connected, "the old message's failure closed the new connection"
            reply = await bounded(client.noop())
            assert "NOOP#" in reply.message
        finally:
            server.release_all()
            client.close()
        assert len(server.conns) == 2
        assert server.violations == []
    await assert_no_tasks_left()
