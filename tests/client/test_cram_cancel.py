"""A CRAM-MD5 challenge that is not base64 is cancelled, not left hanging."""

from __future__ import annotations

import pytest

import fastsmtp
from tests._servers import GREETING, Expect, ScriptedServer, ehlo_reply, reply


async def test_bad_cram_md5_challenge_is_cancelled_with_a_star() -> None:
    # RFC 4954 section 4: the client cancels with "*" instead of leaving the server
    # waiting for an answer; the next command is then read as a command.
    script = [
        GREETING,
        Expect(b"EHLO"),
        ehlo_reply("AUTH CRAM-MD5"),
        Expect(b"AUTH CRAM-MD5"),
        reply("334 !!!not-base64!!!"),
        Expect(b"*"),
        reply("501 5.7.0 cancelled"),
        Expect(b"NOOP"),
        reply("250 ok"),
    ]
    async with ScriptedServer(script) as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        await client.connect()
        with pytest.raises(fastsmtp.SMTPAuthenticationError) as raised:
            await client.auth_crammd5("user", "secret")
        assert raised.value.code == 334
        assert raised.value.message.startswith("Invalid CRAM-MD5 challenge from server")
        assert await client.noop() == fastsmtp.SMTPResponse(250, "ok")
        client.close()
        conn = server.connections[0]
    assert conn.errors == []
    assert conn.lines[1:] == [b"AUTH CRAM-MD5\r\n", b"*\r\n", b"NOOP\r\n"]
