"""One pooled connection pipelines consecutive transactions (RFC 2920 section 3.1)."""

from __future__ import annotations

from fastsmtp import SendStatus, SMTPPool
from tests._servers import GREETING, Expect, ExpectData, ScriptedServer, ehlo_reply, reply


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
