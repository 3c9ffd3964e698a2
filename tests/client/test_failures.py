"""Servers that misbehave: no greeting, no reply, disconnects in every phase, odd replies.

Scripted servers run in the test's own loop and record every byte; timeouts are small only
where the timeout itself is under test.
"""

from __future__ import annotations

import asyncio

import pytest

import fastsmtp
from fastsmtp import (
    SMTP,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPReadTimeoutError,
    SMTPResponse,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from tests._servers import (
    GREETING,
    Close,
    Expect,
    ExpectData,
    Hang,
    ScriptedServer,
    Step,
    ehlo_reply,
    reply,
)

EHLO: list[Step] = [GREETING, Expect(b"EHLO "), ehlo_reply("8BITMIME")]
MAIL: list[Step] = [Expect(b"MAIL FROM:"), reply("250 sender ok")]
RCPT: list[Step] = [Expect(b"RCPT TO:"), reply("250 recipient ok")]
RAW = b"Subject: x\r\n\r\nbody\r\n"


def client_for(server: ScriptedServer, **kwargs: object) -> SMTP:
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("start_tls", False)
    return SMTP(hostname=server.host, port=server.port, **kwargs)  # type: ignore[arg-type]


async def client_went_away(server: ScriptedServer, index: int = 0) -> None:
    await asyncio.wait_for(server.connections[index].finished.wait(), 5)


# --- timeouts ------------------------------------------------------------------------------


async def test_greeting_never_comes() -> None:
    async with ScriptedServer([Hang()]) as server:
        client = client_for(server, timeout=0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(SMTPConnectTimeoutError) as info:
            await client.connect()
        assert loop.time() - started < 3
        assert info.value.args == ("Timed out waiting for server ready message",)
        assert isinstance(info.value, asyncio.TimeoutError)  # TimeoutError on 3.11+
        assert isinstance(info.value, SMTPConnectError)
        assert not client.is_connected
        await client_went_away(server)
        assert server.connections[0].received == b""


async def test_timeout_given_to_connect_is_used_for_that_connect_only() -> None:
    async with ScriptedServer([Hang()]) as server:
        client = client_for(server, timeout=60)
        with pytest.raises(SMTPConnectTimeoutError):
            await client.connect(timeout=0.3)
        assert client.timeout == 60


async def test_reply_never_comes() -> None:
    async with ScriptedServer([*EHLO, Expect(b"NOOP"), Hang()]) as server:
        client = client_for(server, timeout=0.3)
        await client.connect()
        await client.ehlo()
        with pytest.raises(SMTPReadTimeoutError) as info:
            await client.noop()
        assert info.value.args == ("Timed out waiting for server response",)
        assert isinstance(info.value, SMTPTimeoutError)
        assert isinstance(info.value, asyncio.TimeoutError)  # TimeoutError on 3.11+
        # the reply stream is out of sync: the client closed the connection
        assert not client.is_connected
        with pytest.raises(SMTPServerDisconnected):
            await client.noop()
        await client_went_away(server)
        assert server.connections[0].received.count(b"NOOP") == 1


async def test_per_command_timeout_overrides_default() -> None:
    async with ScriptedServer([*EHLO, Expect(b"NOOP"), Hang()]) as server:
        client = client_for(server, timeout=60)
        await client.connect()
        await client.ehlo()
        with pytest.raises(SMTPReadTimeoutError):
            await client.noop(timeout=0.3)
        assert not client.is_connected


async def test_final_data_reply_never_comes() -> None:
    script = [*EHLO, *MAIL, *RCPT, Expect(b"DATA"), reply("354 go"), ExpectData(), Hang()]
    async with ScriptedServer(script) as server:
        client = client_for(server, timeout=0.3)
        await client.connect()
        with pytest.raises(SMTPReadTimeoutError):
            await client.sendmail("a@example.com", ["b@example.com"], RAW)
        assert not client.is_connected
        await client_went_away(server)
        assert server.connections[0].lines[-1] == RAW + b".\r\n"


async def test_send_timeout_in_context_manager_does_not_quit() -> None:
    async with ScriptedServer([*EHLO, Expect(b"MAIL"), Hang()]) as server:
        with pytest.raises(SMTPReadTimeoutError):
            await fastsmtp.send(
                RAW,
                sender="a@example.com",
                recipients=["b@example.com"],
                hostname=server.host,
                port=server.port,
                timeout=0.3,
                start_tls=False,
            )
        await client_went_away(server)
        assert b"QUIT" not in server.connections[0].received


# --- disconnects ---------------------------------------------------------------------------


async def test_disconnect_before_greeting() -> None:
    async with ScriptedServer([Close()]) as server:
        client = client_for(server)
        with pytest.raises(SMTPConnectError) as info:
            await client.connect()
        assert info.value.message.startswith(
            f"Error connecting to 127.0.0.1 on port {server.port}: "
        )
        assert isinstance(info.value, ConnectionError)
        assert not client.is_connected


async def test_disconnect_during_ehlo_on_connect() -> None:
    async with ScriptedServer([GREETING, Expect(b"EHLO"), Close()]) as server:
        client = client_for(server, start_tls=None)
        with pytest.raises(SMTPServerDisconnected):
            await client.connect()
        assert not client.is_connected


@pytest.mark.parametrize(
    "script",
    [
        pytest.param([*EHLO, Close()], id="after-ehlo"),
        pytest.param([*EHLO, Expect(b"MAIL"), Close()], id="mid-mail"),
        pytest.param([*EHLO, *MAIL, Expect(b"RCPT"), Close()], id="mid-rcpt"),
        pytest.param([*EHLO, *MAIL, *RCPT, Expect(b"DATA"), Close()], id="mid-data"),
        pytest.param(
            [*EHLO, *MAIL, *RCPT, Expect(b"DATA"), reply("354 go ahead"), Close()],
            id="after-354",
        ),
        pytest.param(
            [*EHLO, *MAIL, *RCPT, Expect(b"DATA"), reply("354 go ahead"), ExpectData(), Close()],
            id="before-final-reply",
        ),
    ],
)
async def test_disconnect_during_transaction(script: list[Step]) -> None:
    async with ScriptedServer(script) as server:
        client = client_for(server)
        await client.connect()
        await client.ehlo()
        with pytest.raises(SMTPServerDisconnected):
            await client.sendmail("a@example.com", ["b@example.com"], RAW)
        assert not client.is_connected
        with pytest.raises(SMTPServerDisconnected):
            await client.noop()


async def test_disconnect_in_context_manager_propagates_without_quit() -> None:
    async with ScriptedServer([*EHLO, Expect(b"MAIL"), Close()]) as server:
        client = client_for(server)
        with pytest.raises(SMTPServerDisconnected):
            async with client:
                await client.sendmail("a@example.com", ["b@example.com"], RAW)
        assert not client.is_connected
        await client_went_away(server)
        assert b"QUIT" not in server.connections[0].received


async def test_server_drops_connection_after_quit() -> None:
    async with ScriptedServer([*EHLO, Expect(b"QUIT"), Close()]) as server:
        client = client_for(server)
        await client.connect()
        await client.ehlo()
        # contract: a drop after QUIT resolves the QUIT as 221; 5.1.3 reports the clean EOF
        # that precedes the drop as a disconnect. Either way the session is over and closed.
        try:
            response = await client.quit()
        except SMTPServerDisconnected:
            pass
        else:
            assert response.code == 221
        assert not client.is_connected


# --- odd replies -------------------------------------------------------------------------


async def test_greeting_not_220() -> None:
    async with ScriptedServer([reply("554 5.3.2 No service for you"), Hang()]) as server:
        client = client_for(server)
        with pytest.raises(SMTPConnectResponseError) as info:
            await client.connect()
        assert info.value.args == (554, "5.3.2 No service for you")
        assert isinstance(info.value, SMTPConnectError)
        assert not client.is_connected
        await client_went_away(server)


async def test_multiline_greeting_and_ehlo() -> None:
    script = [
        reply("220-scripted.test first line", "220-second line", "220 ready"),
        Expect(b"EHLO "),
        ehlo_reply("SIZE 1000", "AUTH PLAIN LOGIN", "X-CUSTOM some params"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with ScriptedServer(script) as server:
        client = client_for(server)
        greeting = await client.connect()
        assert greeting == SMTPResponse(220, "scripted.test first line\nsecond line\nready")
        response = await client.ehlo()
        assert response.code == 250
        assert client.esmtp_extensions["x-custom"] == "some params"
        assert client.esmtp_extensions["size"] == "1000"
        assert client.server_auth_methods == ["plain", "login"]
        await client.quit()
        assert server.connections[0].errors == []


async def test_421_reply_closes_connection() -> None:
    async with ScriptedServer([*EHLO, Expect(b"NOOP"), reply("421 4.3.2 Shutting down")]) as s:
        client = client_for(s)
        await client.connect()
        await client.ehlo()
        response = await client.execute_command(b"NOOP")
        assert response == SMTPResponse(421, "4.3.2 Shutting down")
        assert not client.is_connected
        with pytest.raises(SMTPServerDisconnected):
            await client.noop()


async def test_unexpected_reply_code_for_noop() -> None:
    async with ScriptedServer([*EHLO, Expect(b"NOOP"), reply("502 5.5.1 nope")]) as server:
        client = client_for(server)
        await client.connect()
        await client.ehlo()
        with pytest.raises(SMTPResponseException) as info:
            await client.noop()
        assert info.value.args == (502, "5.5.1 nope")
        assert client.is_connected
        client.close()


async def test_help_codes() -> None:
    script = [
        *EHLO,
        Expect(b"HELP"),
        reply("214-Commands:", "214 EHLO MAIL RCPT DATA"),
        Expect(b"HELP"),
        reply("502 5.5.1 no help"),
    ]
    async with ScriptedServer(script) as server:
        client = client_for(server)
        await client.connect()
        await client.ehlo()
        assert await client.help() == "Commands:\nEHLO MAIL RCPT DATA"
        with pytest.raises(SMTPResponseException) as info:
            await client.help()
        assert info.value.code == 502
        client.close()


async def test_dot_stuffing_and_line_endings_on_the_wire() -> None:
    script = [*EHLO, *MAIL, *RCPT, Expect(b"DATA"), reply("354 go"), ExpectData(), reply("250 ok")]
    async with ScriptedServer(script) as server:
        client = client_for(server)
        await client.connect()
        await client.sendmail("a@example.com", ["b@example.com"], b"a\n.b\r..c\r\n.\r\nend")
        client.close()
        payload = server.connections[0].lines[-1]
        assert payload == b"a\r\n..b\r\n...c\r\n..\r\nend\r\n.\r\n"


async def test_sendmail_without_size_when_not_advertised_on_the_wire() -> None:
    script = [*EHLO, *MAIL, *RCPT, Expect(b"DATA"), reply("354 go"), ExpectData(), reply("250 ok")]
    async with ScriptedServer(script) as server:
        client = client_for(server)
        await client.connect()
        errors, text = await client.sendmail("a@example.com", "b@example.com", RAW)
        assert (errors, text) == ({}, "ok")
        client.close()
        mail_line = server.connections[0].lines[1]
        assert mail_line == b"MAIL FROM:<a@example.com>\r\n"


async def test_quit_refused() -> None:
    async with ScriptedServer([*EHLO, Expect(b"QUIT"), reply("500 5.5.1 what?")]) as server:
        client = client_for(server)
        await client.connect()
        await client.ehlo()
        with pytest.raises(SMTPResponseException) as info:
            await client.quit()
        assert info.value.args == (500, "5.5.1 what?")
        client.close()


async def test_explicit_starttls_refused() -> None:
    script = [*EHLO[:2], ehlo_reply("STARTTLS"), Expect(b"STARTTLS"), reply("454 4.7.0 not now")]
    async with ScriptedServer(script) as server:
        client = client_for(server)
        await client.connect()
        with pytest.raises(SMTPResponseException) as info:
            await client.starttls()
        assert info.value.args == (454, "4.7.0 not now")
        assert client.get_transport_info("sslcontext") is None if client.is_connected else True
        client.close()
