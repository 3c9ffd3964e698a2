"""security.md §2: STARTTLS response injection (RFC 3207 §4.2), with a real TLS upgrade.

The server answers STARTTLS with 220 and then tries to smuggle plaintext into the session:
whole lines, a fragment, a fake ``235``, bytes in a later segment, bytes in the middle of the
handshake. The client must abort (never carry those bytes into the TLS session) and the
server must receive nothing in plaintext after the STARTTLS line: only TLS records, if that.
"""

from __future__ import annotations

import pytest

from fastsmtp import SMTP
from fastsmtp.errors import SMTPServerDisconnected
from tests.hostile.kit import (
    Expect,
    HostileServer,
    Pause,
    Send,
    SendOnClientBytes,
    StartTLS,
    TLSFiles,
    ehlo_reply,
    is_tls_records,
    reply,
)

PLAIN_EHLO = ehlo_reply("STARTTLS", "AUTH PLAIN LOGIN", "PIPELINING")
TLS_EHLO = ehlo_reply("SIZE 1000", "8BITMIME", host="tls.hostile.test")
UNSOLICITED = "Connection closed: Unsolicited data from server; connection closed"


def client_for(server: HostileServer, pki: TLSFiles, **kwargs: object) -> SMTP:
    return SMTP(
        hostname="127.0.0.1",
        port=server.port,
        tls_context=pki.client_context(),
        local_hostname="client.test",
        timeout=3,
        **kwargs,  # type: ignore[arg-type]
    )


def assert_nothing_after_starttls(server: HostileServer) -> None:
    conn = server.conn
    assert conn.plain.endswith(b"STARTTLS\r\n"), bytes(conn.plain)
    assert conn.plain.count(b"STARTTLS") == 1
    # After STARTTLS: only TLS records (a ClientHello, an alert) or nothing at all.
    assert is_tls_records(bytes(conn.raw_after_starttls)), bytes(conn.raw_after_starttls)
    assert bytes(conn.tls) == b""
    assert not conn.handshake_done
    assert b"AUTH" not in conn.received


async def test_clean_upgrade_uses_only_the_extensions_sent_over_tls(pki: TLSFiles) -> None:
    script = [
        Expect(b"EHLO client.test"),
        PLAIN_EHLO,
        Expect(b"STARTTLS"),
        reply("220 go ahead"),
        StartTLS(pki.good),
        Expect(b"EHLO client.test"),
        TLS_EHLO,
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with HostileServer(script) as server:
        client = client_for(server, pki, start_tls=True)
        await client.connect()
        # Everything learnt before the handshake is gone; EHLO runs again over TLS.
        assert client.esmtp_extensions == {}
        assert client.is_ehlo_or_helo_needed
        await client.ehlo()
        assert client.esmtp_extensions == {"size": "1000", "8bitmime": ""}
        assert client.server_auth_methods == []
        assert client.last_ehlo_response is not None
        assert client.last_ehlo_response.message.startswith("tls.hostile.test")
        await client.quit()
        await server.finished()
    conn = server.conn
    assert conn.errors == []
    assert conn.handshake_done
    assert bytes(conn.plain) == b"EHLO client.test\r\nSTARTTLS\r\n"
    assert bytes(conn.tls) == b"EHLO client.test\r\nQUIT\r\n"
    assert is_tls_records(bytes(conn.raw_after_starttls))


INJECTIONS = {
    "complete-lines": b"220 go ahead\r\n250-evil.test\r\n250 AUTH PLAIN\r\n",
    "fragment-no-line-end": b"220 go ahead\r\n250-evil",
    "fake-235-before-auth": b"220 go ahead\r\n235 2.7.0 Authentication successful\r\n",
    "injected-421": b"220 go ahead\r\n421 bye\r\n",
}


@pytest.mark.parametrize("payload", list(INJECTIONS.values()), ids=list(INJECTIONS))
async def test_bytes_after_the_220_in_the_same_segment_abort(pki: TLSFiles, payload: bytes) -> None:
    script = [
        Expect(b"EHLO"),
        PLAIN_EHLO,
        Expect(b"STARTTLS"),
        Send(payload),
        StartTLS(pki.good),
        Expect(b"EHLO"),
        TLS_EHLO,
        Expect(b"AUTH"),
        reply("235 ok"),
    ]
    async with HostileServer(script) as server:
        client = client_for(server, pki, start_tls=True, username="alice", password="s3cret")
        with pytest.raises(SMTPServerDisconnected) as info:
            await client.connect()
        await server.finished()
    if payload.endswith(b"421 bye\r\n"):
        assert info.value.message == "Connection lost"
    else:
        assert info.value.message == UNSOLICITED
    assert not client.is_connected
    assert_nothing_after_starttls(server)
    assert server.conn.raw_after_starttls == b""  # the client never began a handshake


@pytest.mark.parametrize(
    "injected",
    [b"250 AUTH PLAIN\r\n", b"235 2.7.0 Authentication successful\r\n", b"250-evil"],
    ids=["lines", "fake-235", "fragment"],
)
async def test_bytes_in_a_second_segment_after_the_220_abort(
    pki: TLSFiles, injected: bytes
) -> None:
    # The injected bytes arrive after the client has taken the 220 and may already be
    # in its TLS handshake: either way they must never become part of the session.
    script = [
        Expect(b"EHLO"),
        PLAIN_EHLO,
        Expect(b"STARTTLS"),
        reply("220 go ahead"),
        Pause(0.05),
        Send(injected),
        StartTLS(pki.good),
        Expect(b"EHLO"),
        TLS_EHLO,
        Expect(b"AUTH"),
        reply("235 ok"),
    ]
    async with HostileServer(script) as server:
        client = client_for(server, pki, start_tls=True, username="alice", password="s3cret")
        with pytest.raises((SMTPServerDisconnected, OSError)) as info:
            await client.connect()
        await server.finished()
    assert not client.is_connected
    assert_nothing_after_starttls(server)
    if isinstance(info.value, SMTPServerDisconnected):
        assert info.value.message in (UNSOLICITED, "Connection lost")


@pytest.mark.parametrize(
    "injected",
    [b"250 AUTH PLAIN\r\n", b"235 2.7.0 Authentication successful\r\n"],
    ids=["lines", "fake-235"],
)
async def test_plaintext_injected_into_the_handshake_aborts(pki: TLSFiles, injected: bytes) -> None:
    # The server waits for the ClientHello, then answers with plaintext instead of TLS.
    script = [
        Expect(b"EHLO"),
        PLAIN_EHLO,
        Expect(b"STARTTLS"),
        reply("220 go ahead"),
        SendOnClientBytes(injected),
    ]
    async with HostileServer(script) as server:
        client = client_for(server, pki, start_tls=True, username="alice", password="s3cret")
        with pytest.raises(OSError) as info:  # ssl.SSLError or SMTPServerDisconnected
            await client.connect()
        await server.finished()
    assert not client.is_connected
    assert str(info.value)
    conn = server.conn
    assert conn.plain.endswith(b"STARTTLS\r\n")
    # The ClientHello (and maybe an alert) - TLS records only, nothing in plaintext.
    assert conn.raw_after_starttls[:1] == b"\x16"
    assert is_tls_records(bytes(conn.raw_after_starttls))
    assert b"AUTH" not in conn.received


async def test_starttls_is_never_pipelined(pki: TLSFiles) -> None:
    # The server holds the 220 back: nothing may follow the STARTTLS line until it comes.
    script = [
        Expect(b"EHLO"),
        PLAIN_EHLO,
        Expect(b"STARTTLS"),
        Pause(0.2),
        reply("220 go ahead"),
        StartTLS(pki.good),
        Expect(b"EHLO"),
        TLS_EHLO,
        Expect(b"NOOP"),
        reply("250 ok"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with HostileServer(script) as server:
        client = client_for(server, pki, start_tls=True)
        await client.connect()
        await client.noop()
        await client.quit()
        await server.finished()
    assert server.conn.errors == []
    assert bytes(server.conn.plain) == b"EHLO client.test\r\nSTARTTLS\r\n"
    assert bytes(server.conn.tls) == b"EHLO client.test\r\nNOOP\r\nQUIT\r\n"
