"""One pooled connection pipelines consecutive transactions (RFC 2920 section 3.1)."""

from __future__ import annotations

from fastsmtp import SendStatus, SMTPPool
from tests._servers import (
    GREETING,
    Expect,
    ExpectData,
    ScriptedServer,
    Step,
    ehlo_reply,
    reply,
)
from tests.client.test_one_write import record_writes
from tests.pool.server import PoolServer


async def test_next_message_goes_out_before_the_previous_final_reply() -> None:
    # The server answers message 1's end of data only once message 2's MAIL, RCPT
    # and DATA have arrived on the same connection: a pool that waited for the
    # final reply before reusing the connection would stall until its timeout.
    script = [
        GREETING,
        Expect(b"EHLO"),
        ehlo_reply("PIPELINING", "ENHANCEDSTATUSCODES"),
        Expect(b"MAIL"),
        Expect(b"RCPT TO:<one@example.com>"),
        Expect(b"DATA"),
        reply("250 2.1.0 ok", "250 2.1.5 ok", "354 go"),
        ExpectData(),
        Expect(b"MAIL"),
        Expect(b"RCPT TO:<two@example.com>"),
        Expect(b"DATA"),
        reply("250 2.0.0 queued as 1", "250 2.1.0 ok", "250 2.1.5 ok", "354 go"),
        ExpectData(),
        reply("250 2.0.0 queued as 2"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with ScriptedServer(script) as server:
        async with SMTPPool(
            hostname="127.0.0.1", port=server.port, max_connections=1, timeout=5
        ) as pool:
            results = await pool.send_many(
                [
                    (b"Subject: 1\r\n\r\none\r\n", "a@example.com", ["one@example.com"]),
                    (b"Subject: 2\r\n\r\ntwo\r\n", "a@example.com", ["two@example.com"]),
                ],
                concurrency=2,
            )
        conn = server.connections[0]
    assert [r.status for r in results] == [SendStatus.SENT, SendStatus.SENT]
    assert [r.reply.message if r.reply else None for r in results] == [
        "2.0.0 queued as 1",
        "2.0.0 queued as 2",
    ]
    assert [r.attempts for r in results] == [1, 1]
    assert len(server.connections) == 1
    assert conn.errors == []


async def test_send_many_pipelines_on_one_connection_by_default() -> None:
    # The same server as above (each end of data answered only once the next
    # transaction's commands are in), with send_many's default settings.
    def transaction(n: int) -> list[Step]:
        return [Expect(b"MAIL"), Expect(f"RCPT TO:<{n}@example.com>".encode()), Expect(b"DATA")]

    script: list[Step] = [
        GREETING,
        Expect(b"EHLO"),
        ehlo_reply("PIPELINING", "ENHANCEDSTATUSCODES"),
        *transaction(1),
        reply("250 2.1.0 ok", "250 2.1.5 ok", "354 go"),
    ]
    for n in (2, 3):
        script += [
            ExpectData(),
            *transaction(n),
            reply(f"250 2.0.0 queued as {n - 1}", "250 2.1.0 ok", "250 2.1.5 ok", "354 go"),
        ]
    script += [ExpectData(), reply("250 2.0.0 queued as 3"), Expect(b"QUIT"), reply("221 bye")]
    async with (
        ScriptedServer(script) as server,
        SMTPPool(hostname="127.0.0.1", port=server.port, max_connections=1, timeout=5) as pool,
    ):
        results = await pool.send_many(
            (b"Subject: %d\r\n\r\nbody\r\n" % n, "a@example.com", [f"{n}@example.com"])
            for n in (1, 2, 3)
        )
    assert [r.reply.message if r.reply else None for r in results] == [
        f"2.0.0 queued as {n}" for n in (1, 2, 3)
    ]
    assert server.connections[0].errors == []
    assert len(server.connections) == 1


async def test_pooled_connection_sends_each_end_with_the_next_commands() -> None:
    async with (
        PoolServer() as server,
        SMTPPool(hostname="127.0.0.1", port=server.port, max_connections=1, timeout=5) as pool,
    ):
        await pool.sendmail("a@example.com", ["first@example.com"], b"Subject: 0\r\n\r\n0\r\n")
        [conn] = pool._store._idle
        recorder = record_writes(conn.client._link.protocol)
        results = await pool.send_many(
            (b"Subject: %d\r\n\r\n%d\r\n" % (n, n), "a@example.com", [f"{n}@example.com"])
            for n in range(1, 6)
        )
    assert [r.status for r in results] == [SendStatus.SENT] * 5

    def commands(n: int) -> bytes:
        return b"MAIL FROM:<a@example.com>\r\nRCPT TO:<%d@example.com>\r\nDATA\r\n" % n

    def end(n: int) -> bytes:
        return b"Subject: %d\r\n\r\n%d\r\n.\r\n" % (n, n)

    assert recorder.writes == [
        commands(1),
        *(end(n) + commands(n + 1) for n in range(1, 5)),
        end(5),
        b"QUIT\r\n",
    ]
