"""Per-phase timeouts (issue 14): ``Timeouts`` wherever ``timeout`` is accepted.

Each test gives one phase a short limit and every other phase a long one, against a scripted
server that is slow in exactly that phase, and checks that the short limit is the one that
fires (or, for the long ones, that the slow server is waited for). The slow servers use
``Delay`` (a server that takes its time) or never answer; the client's limits are what is
under test, so the limits here are real time, kept short.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

import fastsmtp
from fastsmtp import (
    SMTP,
    SMTPConnectTimeoutError,
    SMTPReadTimeoutError,
    SMTPTimeoutError,
    Timeouts,
)
from tests._servers import (
    GREETING,
    Delay,
    Expect,
    ExpectData,
    Hang,
    ScriptedServer,
    StopReading,
    ehlo_reply,
    reply,
)

SHORT = 0.3
LONG = 30.0
SLOW = 0.8  # how long a slow server takes: more than SHORT, far less than LONG
RAW = b"Subject: t\r\n\r\nbody\r\n"


def client_for(server: ScriptedServer, timeout: float | Timeouts) -> SMTP:
    return SMTP(hostname="127.0.0.1", port=server.port, timeout=timeout, start_tls=False)


def envelope(*extensions: str) -> list[object]:
    return [
        GREETING,
        Expect(b"EHLO"),
        ehlo_reply(*extensions),
        Expect(b"MAIL"),
        reply("250 ok"),
        Expect(b"RCPT"),
        reply("250 ok"),
        Expect(b"DATA"),
        reply("354 go"),
    ]


# -- the value object --------------------------------------------------------------------------


def test_unset_phases_take_the_default() -> None:
    t = Timeouts(5, final_reply=600)
    assert (t.default, t.connect, t.greeting, t.command, t.upload_idle, t.final_reply) == (
        5,
        5,
        5,
        5,
        5,
        600,
    )
    assert Timeouts().command == fastsmtp.smtp.DEFAULT_TIMEOUT
    assert Timeouts(None, connect=10).command is None
    assert repr(t) == "Timeouts(5, final_reply=600)"
    assert t == Timeouts(5, final_reply=600) and hash(t) == hash(Timeouts(5, final_reply=600))
    with pytest.raises(AttributeError):
        t.command = 1  # type: ignore[misc]


@pytest.mark.parametrize("bad", [-1, True, "10", [1]])
def test_bad_values_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        Timeouts(command=bad)  # type: ignore[arg-type]


# -- each phase ------------------------------------------------------------------------------


async def test_connect_phase_covers_the_tls_handshake() -> None:
    """Implicit TLS to a server that accepts and never answers the ClientHello."""
    async with ScriptedServer([Hang()]) as server:
        client = SMTP(
            hostname="127.0.0.1",
            port=server.port,
            use_tls=True,
            timeout=Timeouts(LONG, connect=SHORT),
        )
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(SMTPConnectTimeoutError):
            await client.connect()
        assert loop.time() - start < LONG / 2


async def test_greeting_phase() -> None:
    async with ScriptedServer([Hang()]) as server:
        client = client_for(server, Timeouts(LONG, greeting=SHORT))
        with pytest.raises(SMTPConnectTimeoutError, match="server ready message"):
            await client.connect()


async def test_slow_greeting_within_its_phase_but_beyond_the_default() -> None:
    async with ScriptedServer([Delay(SLOW), GREETING, Expect(b"QUIT"), reply("221 bye")]) as s:
        client = client_for(s, Timeouts(SHORT, greeting=LONG))
        response = await client.connect()
        assert response.code == 220
        await client.quit()


async def test_command_phase() -> None:
    async with ScriptedServer([GREETING, Expect(b"NOOP"), Hang()]) as server:
        client = client_for(server, Timeouts(LONG, command=SHORT))
        await client.connect()
        with pytest.raises(SMTPReadTimeoutError):
            await client.execute_command(b"NOOP")
        assert not client.is_connected


async def test_a_call_can_give_its_own_timeouts() -> None:
    async with ScriptedServer([GREETING, Expect(b"NOOP"), Hang()]) as server:
        client = client_for(server, LONG)
        await client.connect()
        with pytest.raises(SMTPReadTimeoutError):
            await client.execute_command(b"NOOP", timeout=Timeouts(LONG, command=SHORT))


@pytest.mark.parametrize("pipelining", [True, False])
async def test_final_reply_may_take_longer_than_a_command(pipelining: bool) -> None:
    """The server spends a while scanning the message: its own limit, not the command one."""
    script = [
        *(envelope("PIPELINING") if pipelining else envelope()),
        ExpectData(),
        Delay(SLOW),
        reply("250 2.0.0 queued"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with ScriptedServer(script) as server:
        async with client_for(server, Timeouts(SHORT, final_reply=LONG)) as client:
            _, message = await client.sendmail("a@example.com", ["b@example.com"], RAW)
        assert message == "2.0.0 queued"
        assert server.connections[0].errors == []


async def test_final_reply_phase_fires_with_outcome_unknown() -> None:
    async with ScriptedServer([*envelope(), ExpectData(), Hang()]) as server:
        client = client_for(server, Timeouts(LONG, final_reply=SHORT))
        await client.connect()
        with pytest.raises(SMTPTimeoutError) as info:
            await client.sendmail("a@example.com", ["b@example.com"], RAW)
        assert info.value.outcome_unknown is True  # type: ignore[attr-defined]


async def test_final_reply_phase_for_bdat() -> None:
    script = [
        GREETING,
        Expect(b"EHLO"),
        ehlo_reply("CHUNKING"),
        Expect(b"MAIL"),
        reply("250 ok"),
        Expect(b"RCPT"),
        reply("250 ok"),
        Expect(b"BDAT"),
        Delay(SLOW),
        reply("250 2.0.0 queued"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with ScriptedServer(script) as server:
        client = SMTP(
            hostname="127.0.0.1",
            port=server.port,
            start_tls=False,
            chunking=True,
            timeout=Timeouts(SHORT, final_reply=LONG),
        )
        async with client:
            _, message = await client.sendmail("a@example.com", ["b@example.com"], b"x\r\n")
        assert message == "2.0.0 queued"


async def test_upload_idle_phase() -> None:
    """The server stops reading in the middle of a large body: the no-progress timer fires
    although the final reply's limit is long."""
    big = (b"x" * 998 + b"\r\n") * 20_000  # 20 MB: more than the socket buffers hold
    async with ScriptedServer([*envelope(), StopReading()]) as server:
        client = client_for(server, Timeouts(LONG, upload_idle=SHORT))
        await client.connect()
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(SMTPTimeoutError):
            await client.sendmail("a@example.com", ["b@example.com"], big)
        assert loop.time() - start < LONG / 2
        assert not client.is_connected


async def test_starttls_handshake_is_in_the_connect_phase() -> None:
    script = [GREETING, Expect(b"EHLO"), ehlo_reply("STARTTLS"), Expect(b"STARTTLS")]
    script += [reply("220 go ahead"), Hang()]
    async with ScriptedServer(script) as server:
        client = client_for(server, Timeouts(LONG, connect=SHORT))
        await client.connect()
        context = ssl.create_default_context()
        with pytest.raises(SMTPTimeoutError, match="upgrading transport"):
            await client.starttls(tls_context=context)


async def test_send_and_the_pool_take_timeouts() -> None:
    script = [
        *envelope(),
        ExpectData(),
        Delay(SLOW),
        reply("250 2.0.0 queued"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with ScriptedServer(script) as server:
        _, message = await fastsmtp.send(
            RAW,
            sender="a@example.com",
            recipients=["b@example.com"],
            hostname="127.0.0.1",
            port=server.port,
            start_tls=False,
            timeout=Timeouts(SHORT, final_reply=LONG),
        )
        assert message == "2.0.0 queued"
        pool = fastsmtp.SMTPPool(
            hostname="127.0.0.1",
            port=server.port,
            start_tls=False,
            timeout=Timeouts(SHORT, final_reply=LONG),
        )
        async with pool:
            _, message = await pool.sendmail("a@example.com", ["b@example.com"], RAW)
        assert message == "2.0.0 queued"
