"""Issue 16 end to end against aiosmtpd (and the policy server for BDAT): typed DSN
(RFC 3461), REQUIRETLS (RFC 8689), SIZE checked before MAIL (RFC 1870), IDNA domains
without SMTPUTF8. Each test checks the MAIL/RCPT parameters the server received, byte for
byte, or that no MAIL reached it at all."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import EmailMessage
from typing import Any

import pytest

import fastsmtp
from fastsmtp import DSN, SMTP, DSNRecipient, SMTPNotSupported, SMTPPool
from fastsmtp.errors import SMTPSenderRefused, SMTPSizeRefusedLocally
from tests._servers import RecordingServer
from tests.client.conftest import SmtpdFactory, TLSMaterial
from tests.client.policy_server import Policy, PolicyServer

SENDER = "sender@example.com"
RAW = b"Subject: hello\r\n\r\nbody\r\n"
DSN_FULL = DSN(
    ret="HDRS",
    envid="batch+7=x",
    notify={"FAILURE", "DELAY"},
    orcpt=True,
    recipients={"b@example.com": DSNRecipient(notify="NEVER", orcpt="list+b@example.org")},
)
MAIL_PARAMS = ["RET=HDRS", "ENVID=batch+2B7+3Dx"]
RCPT_PARAMS = [
    ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;a@example.com"],
    ["NOTIFY=NEVER", "ORCPT=rfc822;list+2Bb@example.org"],
]


def client_for(server: RecordingServer, **kwargs: Any) -> SMTP:
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("start_tls", False)
    return SMTP(hostname=server.host, port=server.port, **kwargs)


def message(to: str = "a@example.com, b@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = to
    msg["Subject"] = "hello"
    msg.set_content("body")
    return msg


def without_size(options: list[str]) -> list[str]:
    return [o for o in options if not o.lower().startswith(("size=", "body="))]


# -- DSN ----------------------------------------------------------------------------------

Send = Callable[[RecordingServer, DSN], Awaitable[object]]


async def _sendmail(server: RecordingServer, dsn: DSN) -> object:
    async with client_for(server) as client:
        return await client.sendmail(SENDER, ["a@example.com", "b@example.com"], RAW, dsn=dsn)


async def _send_message(server: RecordingServer, dsn: DSN) -> object:
    async with client_for(server) as client:
        return await client.send_message(message(), dsn=dsn)


async def _api_send(server: RecordingServer, dsn: DSN) -> object:
    return await fastsmtp.send(
        message(), hostname=server.host, port=server.port, start_tls=False, timeout=5, dsn=dsn
    )


async def _api_send_raw(server: RecordingServer, dsn: DSN) -> object:
    return await fastsmtp.send(
        RAW,
        sender=SENDER,
        recipients=["a@example.com", "b@example.com"],
        hostname=server.host,
        port=server.port,
        start_tls=False,
        timeout=5,
        dsn=dsn,
    )


def _pool(server: RecordingServer) -> SMTPPool:
    return SMTPPool(hostname=server.host, port=server.port, start_tls=False, timeout=5)


async def _pool_sendmail(server: RecordingServer, dsn: DSN) -> object:
    async with _pool(server) as pool:
        return await pool.sendmail(SENDER, ["a@example.com", "b@example.com"], RAW, dsn=dsn)


async def _pool_send_message(server: RecordingServer, dsn: DSN) -> object:
    async with _pool(server) as pool:
        return await pool.send_message(message(), dsn=dsn)


async def _pool_send_many(server: RecordingServer, dsn: DSN) -> object:
    async with _pool(server) as pool:
        (result,) = await pool.send_many([message()], dsn=dsn)
        (raw,) = await pool.send_many([(RAW, SENDER, ["a@example.com", "b@example.com"])], dsn=dsn)
    if result.exception is not None:
        raise result.exception
    if raw.exception is not None:
        raise raw.exception
    return result


SENDS: dict[str, Send] = {
    "sendmail": _sendmail,
    "send_message": _send_message,
    "send": _api_send,
    "send-raw": _api_send_raw,
    "pool.sendmail": _pool_sendmail,
    "pool.send_message": _pool_send_message,
    "pool.send_many": _pool_send_many,
}


@pytest.mark.parametrize("send", SENDS.values(), ids=SENDS.keys())
async def test_dsn_parameters_arrive_encoded(smtpd_factory: SmtpdFactory, send: Send) -> None:
    server = smtpd_factory(extra_ehlo=["DSN"])
    await send(server, DSN_FULL)
    assert server.messages
    for received in server.messages:
        assert received.rcpt_tos == ["a@example.com", "b@example.com"]
        assert without_size(received.mail_options) == MAIL_PARAMS
        assert received.rcpt_options == RCPT_PARAMS
    mail = [c.arg for c in server.commands if c.verb == "MAIL"]
    assert all(arg is not None and arg.endswith(" RET=HDRS ENVID=batch+2B7+3Dx") for arg in mail)


@pytest.mark.parametrize("send", SENDS.values(), ids=SENDS.keys())
async def test_dsn_not_offered_nothing_is_sent(smtpd: RecordingServer, send: Send) -> None:
    with pytest.raises(SMTPNotSupported, match="DSN is not supported"):
        await send(smtpd, DSN_FULL)
    assert "MAIL" not in smtpd.verbs
    assert smtpd.messages == []


async def test_dsn_not_required_is_dropped(smtpd: RecordingServer) -> None:
    dsn = DSN(ret="FULL", notify="NEVER", required=False)
    async with client_for(smtpd) as client:
        await client.sendmail(SENDER, ["a@example.com"], RAW, dsn=dsn)
        await client.send_message(message("a@example.com"), dsn=dsn)
    assert len(smtpd.messages) == 2
    for received in smtpd.messages:
        assert without_size(received.mail_options) == []
        assert received.rcpt_options == [[]]


async def test_raw_dsn_options_still_go_through(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(extra_ehlo=["DSN"])
    async with client_for(server) as client:
        await client.sendmail(
            SENDER,
            ["a@example.com"],
            RAW,
            mail_options=["RET=FULL"],
            rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;a@example.com"],
        )
        with pytest.raises(ValueError, match="not both"):
            await client.sendmail(
                SENDER, ["a@example.com"], RAW, mail_options=["RET=FULL"], dsn=DSN(envid="x")
            )
    (received,) = server.messages
    assert without_size(received.mail_options) == ["RET=FULL"]
    assert received.rcpt_options == [["NOTIFY=SUCCESS", "ORCPT=rfc822;a@example.com"]]
    assert server.verbs.count("MAIL") == 1


# -- REQUIRETLS ---------------------------------------------------------------------------


@pytest.fixture
def requiretls_smtpd(smtpd_factory: SmtpdFactory, tls: TLSMaterial) -> RecordingServer:
    return smtpd_factory(starttls_context=tls.server_context(), extra_ehlo_tls=["REQUIRETLS"])


async def test_require_tls_over_verified_tls(
    requiretls_smtpd: RecordingServer, client_tls_context: ssl.SSLContext
) -> None:
    client = client_for(requiretls_smtpd, start_tls=True, tls_context=client_tls_context)
    async with client:
        await client.sendmail(SENDER, ["a@example.com"], RAW, require_tls=True)
        await client.send_message(message("a@example.com"), require_tls=True)
    for received in requiretls_smtpd.messages:
        assert received.tls
        assert without_size(received.mail_options) == ["REQUIRETLS"]
    assert len(requiretls_smtpd.messages) == 2


async def test_require_tls_refused_without_verification(
    requiretls_smtpd: RecordingServer,
) -> None:
    async with client_for(requiretls_smtpd, start_tls=True, validate_certs=False) as client:
        with pytest.raises(SMTPNotSupported, match="certificate verified"):
            await client.sendmail(SENDER, ["a@example.com"], RAW, require_tls=True)
        with pytest.raises(SMTPNotSupported, match="certificate verified"):
            await client.send_message(message("a@example.com"), require_tls=True)
        assert client.is_connected
        await client.sendmail(SENDER, ["a@example.com"], RAW)  # the connection is fine
    assert requiretls_smtpd.verbs.count("MAIL") == 1


async def test_require_tls_refused_in_plaintext(requiretls_smtpd: RecordingServer) -> None:
    async with client_for(requiretls_smtpd, start_tls=False) as client:
        with pytest.raises(SMTPNotSupported, match="certificate verified"):
            await client.sendmail(SENDER, ["a@example.com"], RAW, require_tls=True)
    assert "MAIL" not in requiretls_smtpd.verbs


async def test_require_tls_refused_when_not_advertised(
    tls_smtpd: RecordingServer, client_tls_context: ssl.SSLContext
) -> None:
    async with client_for(tls_smtpd, start_tls=True, tls_context=client_tls_context) as client:
        with pytest.raises(SMTPNotSupported, match="REQUIRETLS is not supported"):
            await client.sendmail(SENDER, ["a@example.com"], RAW, require_tls=True)
    assert "MAIL" not in tls_smtpd.verbs


async def test_require_tls_through_pool_and_send(
    requiretls_smtpd: RecordingServer, client_tls_context: ssl.SSLContext
) -> None:
    server = requiretls_smtpd
    options: dict[str, Any] = {
        "hostname": server.host,
        "port": server.port,
        "start_tls": True,
        "tls_context": client_tls_context,
        "timeout": 5,
    }
    await fastsmtp.send(message("a@example.com"), require_tls=True, **options)
    async with SMTPPool(**options) as pool:
        await pool.sendmail(SENDER, ["a@example.com"], RAW, require_tls=True)
    assert [without_size(m.mail_options) for m in server.messages] == [["REQUIRETLS"]] * 2


# -- SIZE ---------------------------------------------------------------------------------


async def test_size_over_the_limit_is_refused_before_mail(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(size=1000)
    fits = b"Subject: x\r\n\r\n" + b"y" * (1000 - 16) + b"\r\n"  # 1000 octets exactly
    assert len(fits) == 1000
    lf_only = fits.replace(b"\r\n", b"\n")  # 997 octets, 1000 with CRLF line ends
    async with client_for(server) as client:
        with pytest.raises(SMTPSizeRefusedLocally) as refused:
            await client.sendmail(SENDER, ["a@example.com"], fits + b"z")
        assert isinstance(refused.value, SMTPSenderRefused)
        assert refused.value.code == 552
        assert refused.value.message.startswith("5.3.4 Message size 1003 exceeds")
        with pytest.raises(SMTPSizeRefusedLocally, match="size 1004 exceeds"):
            # 1000 octets as given, but four line ends that go as CRLF
            await client.sendmail(SENDER, ["a@example.com"], lf_only + b"zz\n")
        assert "MAIL" not in server.verbs
        await client.sendmail(SENDER, ["a@example.com"], lf_only)
    (received,) = server.messages
    assert received.mail_options == ["size=1000"]


async def test_size_of_a_stream_is_the_declared_one(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(size=1000)
    read: list[bytes] = []

    async def stream() -> AsyncIterator[bytes]:
        read.append(b"started")
        yield RAW

    async with client_for(server) as client:
        with pytest.raises(SMTPSizeRefusedLocally, match="size 1001 exceeds"):
            await client.sendmail(SENDER, ["a@example.com"], stream(), size=1001)
        assert read == []  # not a byte of it was read, nothing was written
        assert "MAIL" not in server.verbs
        await client.sendmail(SENDER, ["a@example.com"], stream(), size=1000)
    assert [m.content for m in server.messages] == [RAW]


async def test_size_through_the_pool_is_a_permanent_failure(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(size=100)
    async with _pool(server) as pool:
        (result,) = await pool.send_many([(b"x" * 200, SENDER, ["a@example.com"])])
    assert isinstance(result.exception, SMTPSizeRefusedLocally)
    assert result.status is fastsmtp.SendStatus.FAILED_PERMANENTLY
    assert "MAIL" not in server.verbs


@pytest.mark.parametrize("binary", [False, True])
async def test_size_of_bdat_is_the_exact_bytes(binary: bool) -> None:
    # RFC 3030: BDAT sends the (normalised) bytes as they are, no final CRLF added.
    body = b"Subject: x\r\n\r\n" + b"." * 86  # 100 octets; dots are not stuffed in BDAT
    extensions = ("CHUNKING", "BINARYMIME", "SIZE 100")
    options = ["BODY=BINARYMIME"] if binary else None
    async with PolicyServer(Policy(extensions=extensions)) as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, chunking=True)
        async with client:
            with pytest.raises(SMTPSizeRefusedLocally, match="size 101 exceeds"):
                await client.sendmail(SENDER, ["a@example.com"], body + b".", mail_options=options)
            await client.sendmail(SENDER, ["a@example.com"], body, mail_options=options)
    assert server.messages == [body]
    assert bytes(server.sessions[0].received).count(b"MAIL FROM") == 1


# -- international addresses --------------------------------------------------------------


async def test_idna_domains_without_smtputf8(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(smtputf8=False, extra_ehlo=["DSN"])
    async with client_for(server) as client:
        await client.sendmail("s@b\u00fccher.de", ["a@\u4f8b\u3048.jp"], RAW, dsn=DSN(orcpt=True))
        await client.send_message(message("Zo\u00eb <z@b\u00fccher.de>"))
        with pytest.raises(SMTPNotSupported, match="SMTPUTF8 is not supported"):
            await client.send_message(message("j\u00f6rg@b\u00fccher.de"))
        with pytest.raises(UnicodeEncodeError):
            await client.sendmail(SENDER, ["j\u00f6rg@example.com"], RAW)
    first, second = server.messages
    assert first.mail_from == "s@xn--bcher-kva.de"
    assert first.rcpt_tos == ["a@xn--r8jz45g.jp"]
    assert first.rcpt_options == [["ORCPT=rfc822;a@xn--r8jz45g.jp"]]
    assert second.rcpt_tos == ["z@xn--bcher-kva.de"]
    assert "SMTPUTF8" not in second.mail_options
    assert b"\r\nTo: =?utf-8?q?Zo=C3=AB?= <z@xn--bcher-kva.de>\r\n" in second.content
    assert server.verbs.count("MAIL") == 2


async def test_smtputf8_false_never_sends_it(smtpd: RecordingServer) -> None:
    async with client_for(smtpd) as client:
        await client.ehlo()
        assert client.supports_extension("smtputf8")
        await client.send_message(message("z@b\u00fccher.de"), smtputf8=False)
        with pytest.raises(SMTPNotSupported, match="smtputf8=False"):
            await client.send_message(message("j\u00f6rg@example.com"), smtputf8=False)
        with pytest.raises(ValueError, match="smtputf8=False"):
            await client.sendmail(
                SENDER, ["a@example.com"], RAW, mail_options=["SMTPUTF8"], smtputf8=False
            )
        # Unchanged by default: SMTPUTF8 is used when offered.
        await client.send_message(message("z@b\u00fccher.de"))
    first, second = smtpd.messages
    assert first.rcpt_tos == ["z@xn--bcher-kva.de"]
    assert "SMTPUTF8" not in first.mail_options
    assert second.rcpt_tos == ["z@b\u00fccher.de"]
    assert "SMTPUTF8" in second.mail_options
    assert smtpd.verbs.count("MAIL") == 2
