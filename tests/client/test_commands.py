"""Plain connections and the individual SMTP commands, against a recording aiosmtpd server."""

from __future__ import annotations

import pytest

import fastsmtp
from fastsmtp import (
    SMTP,
    SMTPDataError,
    SMTPHeloError,
    SMTPRecipientRefused,
    SMTPResponse,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from tests._servers import RecordingServer
from tests.client.conftest import SmtpdFactory

MESSAGE = b"Subject: hi\r\n\r\nHello there.\r\n"


def client_for(server: RecordingServer, **kwargs: object) -> SMTP:
    kwargs.setdefault("timeout", 5)
    return SMTP(hostname=server.host, port=server.port, **kwargs)  # type: ignore[arg-type]


async def test_connect_ehlo_sendmail_quit(smtpd: RecordingServer) -> None:
    client = client_for(smtpd, start_tls=False)
    greeting = await client.connect()
    assert isinstance(greeting, SMTPResponse)
    assert greeting.code == 220
    assert client.is_connected
    ehlo = await client.ehlo()
    assert ehlo.code == 250
    errors, text = await client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    assert errors == {}
    assert text == "2.0.0 Message accepted for delivery"
    quit_reply = await client.quit()
    assert quit_reply.code == 221
    assert not client.is_connected
    assert client.protocol is None
    assert client.transport is None

    (msg,) = smtpd.messages
    assert msg.mail_from == "a@example.com"
    assert msg.rcpt_tos == ["b@example.com"]
    assert msg.content == MESSAGE
    (conn,) = smtpd.connections
    assert conn.verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert conn.lines[1].startswith("MAIL FROM:<a@example.com>")
    assert conn.lines[2] == "RCPT TO:<b@example.com>"


async def test_local_hostname_used_in_ehlo_and_helo(smtpd: RecordingServer) -> None:
    client = client_for(smtpd, start_tls=False, local_hostname="  client.example  ")
    assert client.local_hostname == "client.example"
    async with client:
        await client.ehlo()
        await client.helo()
        await client.ehlo(hostname="other.example")
    lines = smtpd.connections[0].lines
    assert lines[:3] == ["EHLO client.example", "HELO client.example", "EHLO other.example"]


async def test_sendmail_without_explicit_ehlo_does_ehlo_first(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        assert client.is_ehlo_or_helo_needed
        await client.sendmail("a@example.com", "b@example.com", "Subject: x\n\nbody\n")
        assert not client.is_ehlo_or_helo_needed
    assert smtpd.verbs[:2] == ["EHLO", "MAIL"]
    assert smtpd.messages[0].content == b"Subject: x\r\n\r\nbody\r\n"


async def test_ehlo_refused_falls_back_to_helo(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(ehlo_reply="502 5.5.1 EHLO not implemented")
    async with client_for(server, start_tls=False) as client:
        await client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert client.last_helo_response is not None
        assert client.last_helo_response.code == 250
        assert client.last_ehlo_response is None
        assert not client.supports_esmtp
        assert client.esmtp_extensions == {}
    assert server.verbs[:3] == ["EHLO", "HELO", "MAIL"]
    assert len(server.messages) == 1


async def test_ehlo_error_raises_helo_error(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(ehlo_reply="502 5.5.1 EHLO not implemented")
    async with client_for(server, start_tls=False) as client:
        with pytest.raises(SMTPHeloError) as info:
            await client.ehlo()
        assert info.value.code == 502
        assert info.value.message == "5.5.1 EHLO not implemented"
        assert info.value.args == (502, "5.5.1 EHLO not implemented")
        assert client.last_ehlo_response is None


async def test_extensions_state(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(
        size=1000000, extra_ehlo=["PIPELINING", "DSN"], auth_mechanisms=("PLAIN", "LOGIN")
    )
    client = client_for(server, start_tls=False)
    await client.connect()
    try:
        assert client.last_ehlo_response is None
        response = await client.ehlo()
        assert client.last_ehlo_response == response
        assert client.supports_esmtp
        ext = client.esmtp_extensions
        assert ext["size"] == "1000000"
        assert "8bitmime" in ext
        assert "smtputf8" in ext
        assert "pipelining" in ext
        assert "dsn" in ext
        assert client.supports_extension("PIPELINING")
        assert client.supports_extension("pipelining")
        assert client.supports_extension("Size")
        assert not client.supports_extension("starttls")
        assert not client.supports_extension("chunking")
        assert sorted(client.server_auth_methods) == ["login", "plain"]
        assert client.supported_auth_methods == ["plain", "login"]
        assert not client.is_ehlo_or_helo_needed
    finally:
        await client.quit()
    # close() resets the server state
    assert client.esmtp_extensions == {}
    assert client.server_auth_methods == []
    assert not client.supports_esmtp
    assert client.last_ehlo_response is None
    assert client.last_helo_response is None


async def test_helo_sets_last_helo_response(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        response = await client.helo()
        assert response.code == 250
        assert client.last_helo_response == response
        assert not client.is_ehlo_or_helo_needed


async def test_help_returns_text(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        text = await client.help()
    assert isinstance(text, str)
    assert "Supported commands" in text
    assert "HELP" in smtpd.verbs


async def test_rset_noop(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        assert (await client.noop()).code == 250
        assert (await client.rset()).code == 250
    assert smtpd.verbs == ["EHLO", "NOOP", "RSET", "QUIT"]


async def test_vrfy_and_expn(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        response = await client.vrfy("someone@example.com")
        assert response.code == 252
        with pytest.raises(SMTPResponseException) as info:
            await client.expn("list@example.com")
        assert info.value.code == 502
        assert info.value.message == "EXPN not implemented"
    lines = smtpd.connections[0].lines
    assert "VRFY someone@example.com" in lines
    assert "EXPN list@example.com" in lines


async def test_mail_rcpt_data_by_hand(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        assert (await client.mail("a@example.com")).code == 250
        assert (await client.rcpt("b@example.com")).code == 250
        assert (await client.rcpt("c@example.com")).code == 250
        response = await client.data("Subject: by hand\r\n\r\n.leading dot\r\nend")
        assert response.code == 250
    (msg,) = smtpd.messages
    assert msg.rcpt_tos == ["b@example.com", "c@example.com"]
    assert msg.content == b"Subject: by hand\r\n\r\n.leading dot\r\nend\r\n"
    raw = bytes(smtpd.connections[0].raw)
    assert b"\r\n..leading dot\r\nend\r\n.\r\n" in raw


async def test_mail_refused(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(refuse_senders={"bad@example.com": "550 5.7.1 Sender rejected"})
    async with client_for(server, start_tls=False) as client:
        with pytest.raises(SMTPSenderRefused) as info:
            await client.mail("bad@example.com")
    exc = info.value
    assert exc.args == (550, "5.7.1 Sender rejected", "bad@example.com")
    assert exc.code == 550
    assert exc.sender == "bad@example.com"


async def test_rcpt_refused(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(refuse_recipients={"no@example.com": "550 5.1.1 No such user"})
    async with client_for(server, start_tls=False) as client:
        await client.mail("a@example.com")
        with pytest.raises(SMTPRecipientRefused) as info:
            await client.rcpt("no@example.com")
    assert info.value.args == (550, "5.1.1 No such user", "no@example.com")
    assert info.value.recipient == "no@example.com"


async def test_mail_and_rcpt_options_are_sent(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        await client.mail("a@example.com", options=["RET=HDRS", "ENVID=abc"])
        await client.rcpt("b@example.com", options=["NOTIFY=SUCCESS,FAILURE"])
    lines = smtpd.connections[0].lines
    assert "MAIL FROM:<a@example.com> RET=HDRS ENVID=abc" in lines
    assert "RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE" in lines


async def test_data_refused(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(data_reply="554 5.6.0 Content rejected")
    async with client_for(server, start_tls=False) as client:
        await client.mail("a@example.com")
        await client.rcpt("b@example.com")
        with pytest.raises(SMTPDataError) as info:
            await client.data(MESSAGE)
    assert info.value.args == (554, "5.6.0 Content rejected")


async def test_data_without_recipients_raises_data_error(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        await client.ehlo()
        with pytest.raises(SMTPDataError) as info:
            await client.data(MESSAGE)
    assert info.value.code == 503


async def test_data_str_must_be_ascii(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        await client.mail("a@example.com")
        await client.rcpt("b@example.com")
        with pytest.raises(UnicodeEncodeError):
            await client.data("Subject: caf\u00e9\r\n\r\nbody\r\n")
    assert smtpd.messages == []


async def test_execute_command(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        response = await client.execute_command(b"NOOP", b"hello")
        assert response == SMTPResponse(250, "OK")
        response = await client.execute_command(b"XFOO")
        assert response.code == 500
    assert smtpd.connections[0].raw_lines[:2] == [b"NOOP hello", b"XFOO"]


@pytest.mark.parametrize("bad", [b"a\r\nRSET", b"a\nb", b"a\rb", b"\x00", b"x\x7f", b"\x1b"])
async def test_execute_command_control_bytes_write_nothing(
    smtpd: RecordingServer, bad: bytes
) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        await client.ehlo()
        with pytest.raises(ValueError):
            await client.execute_command(b"NOOP", bad)
        with pytest.raises(ValueError):
            await client.execute_command(bad)
        assert (await client.noop()).code == 250
    raw = bytes(smtpd.connections[0].raw)
    assert raw.count(b"NOOP") == 1
    assert smtpd.verbs == ["EHLO", "NOOP", "QUIT"]


async def test_commands_when_not_connected() -> None:
    client = SMTP(hostname="127.0.0.1", port=1)
    assert not client.is_connected
    with pytest.raises(SMTPServerDisconnected) as info:
        await client.execute_command(b"NOOP")
    assert info.value.args == ("Server not connected",)
    with pytest.raises(SMTPServerDisconnected) as info:
        client.get_transport_info("peername")
    assert info.value.args == ("Server not connected",)
    with pytest.raises(SMTPServerDisconnected):
        await client.noop()
    with pytest.raises(SMTPServerDisconnected):
        await client.starttls()


async def test_transport_info(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        peer = client.get_transport_info("peername")
        assert peer[:2] == ("127.0.0.1", smtpd.port)
        sockname = client.get_transport_info("sockname")
        assert sockname[0] == "127.0.0.1"
        assert client.get_transport_info("sslcontext") is None
    assert smtpd.connections[0].peername[:2] == sockname[:2]


async def test_quit_closes_and_reconnect_works(smtpd: RecordingServer) -> None:
    client = client_for(smtpd, start_tls=False)
    await client.connect()
    await client.quit()
    assert not client.is_connected
    await client.connect()
    assert client.is_connected
    await client.noop()
    await client.quit()
    assert len(smtpd.connections) == 2


async def test_close_is_idempotent(smtpd: RecordingServer) -> None:
    client = client_for(smtpd, start_tls=False)
    await client.connect()
    client.close()
    client.close()
    assert not client.is_connected
    with pytest.raises(SMTPServerDisconnected):
        await client.noop()
    await smtpd.wait_all_closed()
    assert smtpd.verbs == []


async def test_already_connected(smtpd: RecordingServer) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        with pytest.raises(fastsmtp.SMTPException) as info:
            await client.connect()
        assert info.value.args == ("SMTP instance is already connected",)
        assert client.is_connected
        assert (await client.noop()).code == 250
    assert len(smtpd.connections) == 1


async def test_vrfy_smtputf8_option_not_advertised(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(smtputf8=False)
    async with client_for(server, start_tls=False) as client:
        with pytest.raises(fastsmtp.SMTPNotSupported):
            await client.vrfy("zoë@example.com", options=["SMTPUTF8"])
    assert "VRFY" not in server.verbs


@pytest.mark.parametrize("hostname", ["bad host", "", "a\r\nRSET", "x\x00"])
async def test_helo_ehlo_hostname_validation(smtpd: RecordingServer, hostname: str) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        with pytest.raises(ValueError):
            await client.ehlo(hostname=hostname)
        with pytest.raises(ValueError):
            await client.helo(hostname=hostname)
        assert (await client.noop()).code == 250
    assert smtpd.verbs == ["EHLO", "NOOP", "QUIT"]
    assert smtpd.connections[0].raw.count(b"HELO") == 0


@pytest.mark.parametrize("address", ["a b@example.com", "a@b@example.com>"])
async def test_bad_envelope_address_rejected(smtpd: RecordingServer, address: str) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        await client.ehlo()
        with pytest.raises(ValueError):
            await client.mail(address)
        with pytest.raises(ValueError):
            await client.sendmail("a@example.com", [address], b"x")
        with pytest.raises(ValueError):
            await client.sendmail(address, ["b@example.com"], b"x")
    assert smtpd.verbs == ["EHLO", "QUIT"]
    assert smtpd.messages == []


async def test_execute_command_without_arguments_sends_an_empty_line(
    smtpd: RecordingServer,
) -> None:
    async with client_for(smtpd, start_tls=False) as client:
        response = await client.execute_command()
        assert response.code == 500
    assert smtpd.connections[0].raw_lines[0] == b""
