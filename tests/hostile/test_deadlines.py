"""security.md §7: deadlines that mean something, and no leaked socket or task.

Each case measures (does not sleep): the timeout must fire within its deadline plus a loose
margin. Leaks are caught by the suite's ``error::ResourceWarning`` filter and the GC run
after each test.
"""

from __future__ import annotations

import time

import pytest

from fastsmtp import SMTP
from fastsmtp.errors import (
    SMTPConnectTimeoutError,
    SMTPReadTimeoutError,
    SMTPTimeoutError,
)
from tests.hostile.kit import (
    Drip,
    Expect,
    ExpectData,
    Hang,
    HostileServer,
    StopReading,
    TLSFiles,
    abort,
    ehlo_reply,
    reply,
)


def client_for(server: HostileServer, timeout: float, **kwargs: object) -> SMTP:
    return SMTP(
        hostname="127.0.0.1",
        port=server.port,
        local_hostname="client.test",
        timeout=timeout,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_no_greeting_times_out_within_the_deadline() -> None:
    async with HostileServer([Hang()], greeting=False) as server:
        client = client_for(server, 1.0, start_tls=False)
        start = time.monotonic()
        with pytest.raises(SMTPConnectTimeoutError) as info:
            await client.connect()
        elapsed = time.monotonic() - start
        await server.finished()
    assert info.value.message == "Timed out waiting for server ready message"
    assert 0.9 <= elapsed < 3.0
    assert not client.is_connected
    assert bytes(server.conn.plain) == b""


async def test_dripping_server_cannot_stretch_the_reply_deadline() -> None:
    # One byte every 2 s; a 3 s whole-reply deadline must fire at about 3 s.
    script = [Expect(b"EHLO"), ehlo_reply(), Expect(b"NOOP"), Drip(b"250 ok\r\n", 2.0)]
    async with HostileServer(script) as server:
        client = client_for(server, 3.0, start_tls=False)
        await client.connect(timeout=3.0)
        await client.ehlo()
        start = time.monotonic()
        with pytest.raises(SMTPReadTimeoutError) as info:
            await client.noop()
        elapsed = time.monotonic() - start
        # (the server's drip is cut short when the block exits)
    assert info.value.message == "Timed out waiting for server response"
    assert 2.9 <= elapsed < 5.0
    assert not client.is_connected
    assert bytes(server.conn.plain) == b"EHLO client.test\r\nNOOP\r\n"


@pytest.mark.parametrize(
    "after_quit",
    [
        [reply("221 bye"), abort()],  # 221, then a reset: no close_notify
        [abort()],  # no 221, no close_notify
        [reply("221 bye"), Hang()],  # 221, and the socket stays open, no close_notify
    ],
    ids=["221-then-reset", "reset", "221-then-silence"],
)
async def test_tls_closed_without_close_notify_after_quit(
    pki: TLSFiles, after_quit: list[object]
) -> None:
    script = [Expect(b"EHLO"), ehlo_reply(), Expect(b"QUIT"), *after_quit]
    async with HostileServer(script, implicit_tls=pki.good) as server:
        client = client_for(server, 2.0, use_tls=True, tls_context=pki.client_context())
        await client.connect()
        await client.ehlo()
        start = time.monotonic()
        response = await client.quit()
        elapsed = time.monotonic() - start
        await server.finished()
    assert response.code == 221
    assert elapsed < 1.0  # QUIT is best effort: never the 30 s TLS shutdown wait
    assert not client.is_connected
    assert bytes(server.conn.tls) == b"EHLO client.test\r\nQUIT\r\n"


async def test_server_that_stops_reading_during_a_50_mb_data() -> None:
    script = [
        Expect(b"EHLO"),
        ehlo_reply("SIZE 100000000"),
        Expect(b"MAIL"),
        reply("250 ok"),
        Expect(b"RCPT"),
        reply("250 ok"),
        Expect(b"DATA"),
        reply("354 go ahead"),
        StopReading(),
    ]
    body = (b"x" * 998 + b"\r\n") * 50_000  # 50 MB
    async with HostileServer(script) as server:
        client = client_for(server, 1.0, start_tls=False)
        await client.connect()
        start = time.monotonic()
        with pytest.raises(SMTPTimeoutError) as raised:
            await client.sendmail("a@example.com", ["b@example.com"], body)
        elapsed = time.monotonic() - start
    assert elapsed < 3.0
    assert not client.is_connected
    # The no-progress timer fired mid-upload: the message is known not to be delivered.
    assert "stopped reading" in str(raised.value)
    assert raised.value.outcome_unknown is False


async def test_final_reply_deadline_after_the_body() -> None:
    script = [
        Expect(b"EHLO"),
        ehlo_reply(),
        Expect(b"MAIL"),
        reply("250 ok"),
        Expect(b"RCPT"),
        reply("250 ok"),
        Expect(b"DATA"),
        reply("354 go ahead"),
        ExpectData(),
        Hang(),
    ]
    async with HostileServer(script) as server:
        client = client_for(server, 1.0, start_tls=False)
        await client.connect()
        start = time.monotonic()
        with pytest.raises(SMTPReadTimeoutError):
            await client.sendmail("a@example.com", ["b@example.com"], b"hello\r\n")
        elapsed = time.monotonic() - start
        await server.finished()
    assert 0.9 <= elapsed < 3.0
    assert not client.is_connected
    assert bytes(server.conn.plain).endswith(b"DATA\r\nhello\r\n.\r\n")  # no RSET, no QUIT


# One watcher serves every deadline of a connection (protocol.py): a later command with a
# shorter timeout must not wait for an earlier, longer deadline, and a deadline that has
# passed harmlessly (its reply came) must not cut a later, longer one short.


async def test_shorter_deadline_after_a_longer_one_fires_on_time() -> None:
    script = [Expect(b"EHLO"), ehlo_reply(), Expect(b"NOOP"), reply("250 ok"), Hang()]
    async with HostileServer(script) as server:
        client = client_for(server, 30.0, start_tls=False)
        await client.connect()
        await client.ehlo()
        await client.noop(timeout=30.0)  # answered: its 30 s deadline stays on the watcher
        start = time.monotonic()
        with pytest.raises(SMTPReadTimeoutError):
            await client.noop(timeout=0.5)
        elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 2.0
    assert not client.is_connected


async def test_answered_short_deadline_does_not_cut_a_longer_one_short() -> None:
    script = [
        Expect(b"EHLO"),
        ehlo_reply(),
        Expect(b"NOOP"),
        reply("250 ok"),
        Expect(b"NOOP"),
        Drip(b"250 late but in time\r\n", 0.05),  # about 1.1 s for the whole reply
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with HostileServer(script) as server:
        client = client_for(server, 30.0, start_tls=False)
        await client.connect()
        await client.ehlo()
        await client.noop(timeout=0.3)  # answered at once; the watcher still fires at 0.3 s
        start = time.monotonic()
        response = await client.noop(timeout=3.0)
        elapsed = time.monotonic() - start
        await client.quit()
    assert response.message == "late but in time"
    assert 0.3 < elapsed < 3.0
    assert bytes(server.conn.plain) == b"EHLO client.test\r\nNOOP\r\nNOOP\r\nQUIT\r\n"
