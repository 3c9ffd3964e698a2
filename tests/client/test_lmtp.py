"""The LMTP client (RFC 2033) end to end: against aiosmtpd's LMTP server (TCP and a Unix
socket), whose handler answers each recipient after the message on its own, and against
scripted servers for pipelining, BDAT, and a server that stops half-way."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP as LMTPServer
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

import fastsmtp
from fastsmtp import LMTP, SendStatus
from fastsmtp.errors import LMTPDataError
from fastsmtp.response import SMTPResponse
from tests._servers import Close, Expect, ExpectData, ScriptedServer, ehlo_reply, reply

MESSAGE = b"Subject: lmtp\r\n\r\nHello.\r\n.dot line\r\n"
LMTP_GREETING = reply("220 lmtp.test LMTP ready")


class Handler:
    """Refuses some recipients at RCPT and others after the message, each with its own
    reply: aiosmtpd's LMTP sends whatever ``handle_DATA`` returns, so the replies for
    every accepted recipient go out as one status, a line each, in RCPT order."""

    def __init__(self, at_rcpt: dict[str, str], after_dot: dict[str, str]) -> None:
        self.at_rcpt = at_rcpt
        self.after_dot = after_dot
        self.greetings: list[str] = []
        self.pipelining = True
        self.delivered: list[tuple[str, bytes]] = []
        self.options: list[tuple[list[str], list[list[str]]]] = []

    async def handle_EHLO(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # aiosmtpd's LMTP reaches this hook from LHLO only (its EHLO and HELO are 500s).
        self.greetings.append(hostname)
        session.host_name = hostname
        if self.pipelining:  # RFC 2033 section 5 asks it of every LMTP server
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if address in self.at_rcpt:
            return self.at_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.options.append((list(envelope.mail_options), list(envelope.rcpt_options)))
        lines = []
        for index, recipient in enumerate(envelope.rcpt_tos):
            line = self.after_dot.get(recipient, f"250 2.0.0 <{recipient}> Q{index}id Saved")
            if line.startswith("250"):
                assert isinstance(envelope.original_content, bytes)
                self.delivered.append((recipient, envelope.original_content))
            lines.append(line)
        return "\r\n".join(lines)


class TCPLMTPController(Controller):
    def factory(self) -> SMTPServer:
        return LMTPServer(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class UnixLMTPController(UnixSocketController):
    def factory(self) -> SMTPServer:
        return LMTPServer(self.handler, **self.SMTP_kwargs)


@pytest.fixture(params=["pipelined", "lockstep"])
def lmtpd(request: pytest.FixtureRequest) -> Iterator[tuple[TCPLMTPController, Handler]]:
    handler = Handler(
        {"unknown@example.com": "550 5.1.1 <unknown@example.com> User doesn't exist"},
        {"full@example.com": "452 4.2.2 <full@example.com> Mailbox is full"},
    )
    handler.pipelining = request.param == "pipelined"
    controller = TCPLMTPController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def client(controller: TCPLMTPController, **options: Any) -> LMTP:
    return LMTP(hostname="127.0.0.1", port=controller.port, timeout=10, **options)


async def test_mixed_per_recipient_results_over_tcp(
    lmtpd: tuple[TCPLMTPController, Handler],
) -> None:
    controller, handler = lmtpd
    recipients = ["a@example.com", "unknown@example.com", "full@example.com", "b@example.com"]
    async with client(controller) as lmtp:
        refused, text = await lmtp.sendmail("s@example.com", recipients, MESSAGE)
    assert refused == {
        "unknown@example.com": SMTPResponse(550, "5.1.1 <unknown@example.com> User doesn't exist"),
        "full@example.com": SMTPResponse(452, "4.2.2 <full@example.com> Mailbox is full"),
    }
    assert text == "2.0.0 <a@example.com> Q0id Saved"
    body = b"Subject: lmtp\r\n\r\nHello.\r\n.dot line\r\n"
    assert handler.delivered == [("a@example.com", body), ("b@example.com", body)]
    assert len(handler.greetings) == 1  # one LHLO, no EHLO or HELO


async def test_over_a_unix_socket(tmp_path: Path) -> None:
    handler = Handler({}, {"full@example.com": "452 4.2.2 full"})
    path = tmp_path / "lmtp.sock"
    controller = UnixLMTPController(handler, unix_socket=str(path))
    controller.start()
    try:
        message = EmailMessage()
        message["From"] = "s@example.com"
        message["To"] = "a@example.com, full@example.com"
        message["Subject"] = "over a socket"
        message.set_content("Hello.\n")
        async with LMTP(socket_path=path, timeout=10) as lmtp:
            refused, text = await lmtp.send_message(message)
            result = await lmtp.deliver_message(message)
    finally:
        controller.stop()
    assert refused == {"full@example.com": SMTPResponse(452, "4.2.2 full")}
    assert text == "2.0.0 <a@example.com> Q0id Saved"
    assert [r for r, _ in handler.delivered] == ["a@example.com", "a@example.com"]
    assert b"Subject: over a socket" in handler.delivered[0][1]
    assert result.status is SendStatus.PARTIALLY_SENT
    assert result.accepted == ["a@example.com"]
    assert result.refused["full@example.com"].code == 452


async def test_every_recipient_refused_after_the_message_raises(
    lmtpd: tuple[TCPLMTPController, Handler],
) -> None:
    controller, handler = lmtpd
    async with client(controller) as lmtp:
        with pytest.raises(LMTPDataError) as info:
            await lmtp.sendmail(
                "s@example.com", ["unknown@example.com", "full@example.com"], MESSAGE
            )
        # The connection stays usable (RSET followed, as after any refusal).
        refused, _ = await lmtp.sendmail("s@example.com", ["a@example.com"], MESSAGE)
    error = info.value
    assert isinstance(error, fastsmtp.SMTPDataError)
    assert (error.code, error.enhanced_status) == (452, "4.2.2")
    assert set(error.refused) == {"unknown@example.com", "full@example.com"}
    assert refused == {}
    assert [r for r, _ in handler.delivered] == ["a@example.com"]


async def test_deliver_returns_each_recipients_own_reply(
    lmtpd: tuple[TCPLMTPController, Handler],
) -> None:
    controller, _ = lmtpd
    recipients = ["a@example.com", "full@example.com", "b@example.com"]
    async with client(controller) as lmtp:
        result = await lmtp.deliver("s@example.com", recipients, MESSAGE)
        failed = await lmtp.deliver("s@example.com", ["full@example.com"], MESSAGE)
        nobody = await lmtp.deliver("s@example.com", ["unknown@example.com"], MESSAGE)
    assert result.status is SendStatus.PARTIALLY_SENT and result.ok
    assert result.accepted == ["a@example.com", "b@example.com"]
    assert {r: reply.queue_id for r, reply in result.replies.items()} == {
        "a@example.com": "Q0id",
        "b@example.com": "Q2id",
    }
    assert result.queue_id == "Q0id"
    assert list(result.refused) == ["full@example.com"]
    assert failed.status is SendStatus.FAILED_TEMPORARILY
    assert isinstance(failed.exception, LMTPDataError)
    assert failed.reply == SMTPResponse(452, "4.2.2 <full@example.com> Mailbox is full")
    assert nobody.status is SendStatus.FAILED_PERMANENTLY
    assert nobody.refused["unknown@example.com"].code == 550
    assert nobody.queue_id is None


async def test_deliver_takes_dsn_and_refuses_it_where_not_offered(
    lmtpd: tuple[TCPLMTPController, Handler],
) -> None:
    controller, handler = lmtpd
    dsn = fastsmtp.DSN(ret="HDRS", envid="batch+7", notify={"FAILURE"}, orcpt=True)
    async with client(controller) as lmtp:
        with pytest.raises(fastsmtp.SMTPNotSupported):
            await lmtp.deliver("s@example.com", ["a@example.com"], MESSAGE, dsn=dsn)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "s@example.com", "b@example.com", "x"
        message.set_content("Hello.")
        with pytest.raises(fastsmtp.SMTPNotSupported):
            await lmtp.deliver_message(message, dsn=dsn)
    assert handler.options == []  # refused before MAIL: nothing reached the server



async def test_deliver_sends_dsn_parameters() -> None:
    # aiosmtpd refuses RET/ENVID on MAIL, so the DSN-offering server is scripted: the
    # parameters are checked byte for byte (RFC 3461 sections 4.1-4.4, xtext encoded).
    script = [
        LMTP_GREETING,
        Expect(b"LHLO "),
        lhlo_reply("PIPELINING", "DSN"),
        Expect(b"MAIL FROM:<s@example.com> RET=HDRS ENVID=batch+2B7"),
        Expect(b"RCPT TO:<a@example.com> NOTIFY=FAILURE ORCPT=rfc822;a@example.com"),
        Expect(b"DATA"),
        reply("250 2.1.0 ok", "250 2.1.5 a", "354 go"),
        ExpectData(),
        reply("250 2.0.0 <a@example.com> Aa1 Saved"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    dsn = fastsmtp.DSN(ret="HDRS", envid="batch+7", notify={"FAILURE"}, orcpt=True)
    async with ScriptedServer(script) as server:
        async with LMTP(hostname="127.0.0.1", port=server.port, timeout=10) as lmtp:
            result = await lmtp.deliver("s@example.com", ["a@example.com"], MESSAGE, dsn=dsn)
        conn = server.connections[0]
    assert conn.errors == []
    assert result.ok and result.queue_id == "Aa1"


async def test_one_command_at_a_time(lmtpd: tuple[TCPLMTPController, Handler]) -> None:
    controller, handler = lmtpd
    async with client(controller) as lmtp:
        with pytest.raises(fastsmtp.SMTPNotSupported, match="no HELO"):
            await lmtp.helo()
        assert (await lmtp.ehlo()).code == 250  # sends LHLO
        await lmtp.mail("s@example.com")
        await lmtp.rcpt("a@example.com")
        with pytest.raises(fastsmtp.SMTPRecipientRefused):
            await lmtp.rcpt("unknown@example.com")
        await lmtp.rcpt("b@example.com")
        response = await lmtp.data(MESSAGE)
        assert response == SMTPResponse(250, "2.0.0 <a@example.com> Q0id Saved")
        await lmtp.mail("s@example.com")
        await lmtp.rcpt("full@example.com")
        await lmtp.rcpt("c@example.com")
        with pytest.raises(LMTPDataError) as info:
            await lmtp.data(MESSAGE)  # refused for one: data() says so
    assert info.value.refused == {
        "full@example.com": SMTPResponse(452, "4.2.2 <full@example.com> Mailbox is full")
    }
    assert [r for r, _ in handler.delivered] == ["a@example.com", "b@example.com", "c@example.com"]
    assert len(handler.greetings) == 2  # connect's LHLO and ehlo()'s


# -- scripted servers ---------------------------------------------------------------------


def lhlo_reply(*keywords: str) -> Any:
    return ehlo_reply(*keywords, host="lmtp.test")


async def test_pipelined_mixed_results_and_the_next_message_pairs_right() -> None:
    script = [
        LMTP_GREETING,
        Expect(b"LHLO "),
        lhlo_reply("PIPELINING", "ENHANCEDSTATUSCODES"),
        Expect(b"MAIL FROM:<s@example.com>"),
        Expect(b"RCPT TO:<a@example.com>"),
        Expect(b"RCPT TO:<b@example.com>"),
        Expect(b"RCPT TO:<c@example.com>"),
        Expect(b"DATA"),
        reply("250 2.1.0 ok", "250 2.1.5 a", "250 2.1.5 b", "250 2.1.5 c", "354 go"),
        ExpectData(),
        reply("250 2.0.0 <a@example.com> Aa1 Saved", "452 4.2.2 b full", "550 5.1.1 c gone"),
        Expect(b"MAIL FROM:<s@example.com>"),
        Expect(b"RCPT TO:<d@example.com>"),
        Expect(b"DATA"),
        reply("250 2.1.0 ok", "250 2.1.5 d", "354 go"),
        ExpectData(),
        reply("250 2.0.0 <d@example.com> Dd4 Saved"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with ScriptedServer(script) as server:
        async with LMTP(hostname="127.0.0.1", port=server.port, timeout=10) as lmtp:
            first = await lmtp.deliver(
                "s@example.com", ["a@example.com", "b@example.com", "c@example.com"], MESSAGE
            )
            second = await lmtp.sendmail("s@example.com", ["d@example.com"], MESSAGE)
        conn = server.connections[0]
    assert conn.errors == []
    assert first.status is SendStatus.PARTIALLY_SENT
    assert first.accepted == ["a@example.com"]
    assert first.queue_id == "Aa1"
    assert {r: (v.code, v.enhanced_status) for r, v in first.refused.items()} == {
        "b@example.com": (452, "4.2.2"),
        "c@example.com": (550, "5.1.1"),
    }
    assert [v.permanent for v in first.refused.values()] == [False, True]
    assert second == ({}, "2.0.0 <d@example.com> Dd4 Saved")


async def test_concurrent_messages_on_one_connection_get_their_own_replies() -> None:
    # The second message's commands go out behind the first's body (RFC 2920 section
    # 3.1); the server answers everything in order, so pairing is by order alone.
    script = [
        LMTP_GREETING,
        Expect(b"LHLO"),
        lhlo_reply("PIPELINING"),
        Expect(b"MAIL"),
        Expect(b"RCPT TO:<x1@example.com>"),
        Expect(b"RCPT TO:<x2@example.com>"),
        Expect(b"DATA"),
        reply("250 ok", "250 r1", "250 r2", "354 go"),
        ExpectData(),
        Expect(b"MAIL"),
        Expect(b"RCPT TO:<y1@example.com>"),
        Expect(b"RCPT TO:<y2@example.com>"),
        Expect(b"DATA"),
        reply("250 x1 saved", "550 x2 gone", "250 ok", "250 r1", "250 r2", "354 go"),
        ExpectData(),
        reply("550 y1 gone", "250 y2 saved"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with (
        ScriptedServer(script) as server,
        LMTP(hostname="127.0.0.1", port=server.port, timeout=10) as lmtp,
    ):
        x, y = await asyncio.gather(
            lmtp.sendmail("s@example.com", ["x1@example.com", "x2@example.com"], MESSAGE),
            lmtp.sendmail("s@example.com", ["y1@example.com", "y2@example.com"], MESSAGE),
        )
        assert server.connections[0].errors == []
    assert x == ({"x2@example.com": SMTPResponse(550, "x2 gone")}, "x1 saved")
    assert y == ({"y1@example.com": SMTPResponse(550, "y1 gone")}, "y2 saved")


async def test_without_pipelining_commands_go_one_by_one() -> None:
    script = [
        LMTP_GREETING,
        Expect(b"LHLO"),
        lhlo_reply("8BITMIME"),
        Expect(b"MAIL"),
        reply("250 ok"),
        Expect(b"RCPT TO:<a@example.com>"),
        reply("550 5.1.1 a gone"),
        Expect(b"RCPT TO:<b@example.com>"),
        reply("250 ok"),
        Expect(b"RCPT TO:<c@example.com>"),
        reply("250 ok"),
        Expect(b"DATA"),
        reply("354 go"),
        ExpectData(),
        reply("250 b saved", "250 c saved"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with ScriptedServer(script) as server:
        async with LMTP(hostname="127.0.0.1", port=server.port, timeout=10) as lmtp:
            refused, text = await lmtp.sendmail(
                "s@example.com", ["a@example.com", "b@example.com", "c@example.com"], MESSAGE
            )
        assert server.connections[0].errors == []
    assert refused == {"a@example.com": SMTPResponse(550, "5.1.1 a gone")}
    assert text == "b saved"


async def test_bdat_last_is_answered_per_recipient() -> None:
    script = [
        LMTP_GREETING,
        Expect(b"LHLO"),
        lhlo_reply("PIPELINING", "CHUNKING"),
        Expect(b"MAIL"),
        Expect(b"RCPT TO:<a@example.com>"),
        Expect(b"RCPT TO:<b@example.com>"),
        reply("250 ok", "250 a", "250 b"),
        Expect(b"BDAT %d LAST" % len(MESSAGE)),
        # The chunk, exactly as given (no dot-stuffing), read line by line.
        Expect(b"Subject: lmtp\r\n"),
        Expect(b"\r\n"),
        Expect(b"Hello.\r\n"),
        Expect(b".dot line\r\n"),
        reply("550 5.2.2 a over quota", "250 2.0.0 b saved as Bb2"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with ScriptedServer(script) as server:
        async with LMTP(hostname="127.0.0.1", port=server.port, timeout=10, chunking=True) as lmtp:
            refused, text = await lmtp.sendmail(
                "s@example.com", ["a@example.com", "b@example.com"], MESSAGE
            )
        conn = server.connections[0]
    assert conn.errors == []
    assert b"".join(conn.lines).endswith(b"BDAT %d LAST\r\n" % len(MESSAGE) + MESSAGE + b"QUIT\r\n")
    assert refused == {"a@example.com": SMTPResponse(550, "5.2.2 a over quota")}
    assert text == "2.0.0 b saved as Bb2"


async def test_a_server_that_refuses_lhlo_gets_no_helo() -> None:
    script = [
        reply("220 smtp.test ESMTP"),
        Expect(b"LHLO"),
        reply('500 5.5.1 Error: command "LHLO" not recognized'),
    ]
    async with ScriptedServer(script) as server:
        lmtp = LMTP(hostname="127.0.0.1", port=server.port, timeout=10)
        with pytest.raises(fastsmtp.SMTPHeloError) as info:
            await lmtp.connect()
        lmtp.close()
        conn = server.connections[0]
        await conn.finished.wait()
    assert info.value.code == 500
    assert [line.split()[0] for line in conn.lines] == [b"LHLO"]


async def test_a_server_gone_between_the_replies_leaves_the_outcome_unknown() -> None:
    script = [
        LMTP_GREETING,
        Expect(b"LHLO"),
        lhlo_reply("PIPELINING"),
        Expect(b"MAIL"),
        Expect(b"RCPT"),
        Expect(b"RCPT"),
        Expect(b"DATA"),
        reply("250 ok", "250 a", "250 b", "354 go"),
        ExpectData(),
        reply("250 a saved"),  # and b's reply never comes
        Close(),
    ]
    async with (
        ScriptedServer(script) as server,
        LMTP(hostname="127.0.0.1", port=server.port, timeout=10) as lmtp,
    ):
        with pytest.raises(fastsmtp.SMTPServerDisconnected) as info:
            await lmtp.sendmail("s@example.com", ["a@example.com", "b@example.com"], MESSAGE)
    # a@ has its message, b@ may or may not: never reported as refused, never retried.
    assert info.value.outcome_unknown


async def test_the_default_port_is_24_not_25() -> None:
    # RFC 2033 section 5: LMTP must not be on port 25. With nothing listening on
    # 127.0.0.1:24 the refusal names the port tried.
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", 24)
    except OSError:
        pass
    else:
        writer.close()
        await writer.wait_closed()
        pytest.skip("something listens on 127.0.0.1:24")
    lmtp = LMTP(hostname="127.0.0.1", timeout=10)
    with pytest.raises(fastsmtp.SMTPConnectError, match="on port 24"):
        await lmtp.connect()
    assert lmtp.port is None


async def test_a_server_that_answers_once_for_two_recipients_is_not_trusted() -> None:
    # aiosmtpd's LMTP with a handler that returns nothing special sends one "250 OK" after
    # the data whatever the number of recipients (not RFC 2033 section 4.2). The client
    # waits for the second reply instead of guessing whose the first was; when the
    # final-reply timeout ends the wait, the outcome is unknown (nothing is retried).
    class OneReply:
        async def handle_EHLO(
            self,
            server: SMTPServer,
            session: Session,
            envelope: Envelope,
            hostname: str,
            responses: list[str],
        ) -> list[str]:
            session.host_name = hostname
            return responses

    controller = TCPLMTPController(OneReply(), hostname="127.0.0.1", port=0)
    controller.start()
    try:
        lmtp = LMTP(
            hostname="127.0.0.1",
            port=controller.port,
            timeout=fastsmtp.Timeouts(10, final_reply=0.5),
        )
        async with lmtp:
            with pytest.raises(fastsmtp.SMTPTimeoutError) as info:
                await lmtp.sendmail("s@example.com", ["a@example.com", "b@example.com"], MESSAGE)
            assert not lmtp.is_connected
    finally:
        controller.stop()
    assert info.value.outcome_unknown
