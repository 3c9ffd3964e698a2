"""The proxy option against small scripted proxies in the test's own loop, and its checks:
a proxy that never answers (the connect timeout covers its handshake), an HTTP proxy whose
CONNECT reply arrives in one segment with the SMTP greeting, credentials kept out of every
repr, message and log, the options that cannot go together, and python-socks missing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import sys
import time
from collections.abc import AsyncIterator

import pytest

import fastsmtp
from fastsmtp import SMTP, SMTPConnectTimeoutError, SMTPPool
from fastsmtp._options import ConnectionOptions
from fastsmtp._proxy import ProxyURL
from tests.client.conftest import SmtpdFactory

from .conftest import PASSWORD, USER
from .test_daemons import RAW, need_python_socks


class ScriptedProxy:
    """An asyncio server on 127.0.0.1 playing a proxy: ``mode="hang"`` reads and never
    answers; ``mode="tunnel"`` is an HTTP CONNECT proxy and ``mode="socks4a"`` a SOCKS 4a
    one, each sending its success reply and the SMTP server's greeting in one write, then
    relaying. Records each request head."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.heads: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> ScriptedProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for writer in self._writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if self.mode == "hang":
            with contextlib.suppress(OSError):
                while await reader.read(4096):
                    pass
            return
        if self.mode == "socks4a":
            # SOCKS 4a: VN=4 CD=1 DSTPORT DSTIP=0.0.0.x USERID NUL HOST NUL.
            head = await reader.readexactly(8)
            head += await reader.readuntil(b"\0")
            host_bytes = await reader.readuntil(b"\0")
            self.heads.append(head + host_bytes)
            assert head[:2] == b"\x04\x01" and head[4:7] == b"\0\0\0"
            host, port = host_bytes[:-1].decode(), int.from_bytes(head[2:4], "big")
            reply = b"\0\x5a" + bytes(6)
        else:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            target = head.split(b" ")[1].decode()
            host, _, port_text = target.rpartition(":")
            port = int(port_text)
            reply = b"HTTP/1.1 200 Connection established\r\nX-Proxy: scripted\r\n\r\n"
        up_reader, up_writer = await asyncio.open_connection(host, port)
        self._writers.append(up_writer)
        greeting = await up_reader.readline()
        # The proxy's reply and the first bytes of the tunnel in one segment.
        writer.write(reply + greeting)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def scripted(mode: str) -> AsyncIterator[ScriptedProxy]:
    async with ScriptedProxy(mode) as proxy:
        yield proxy


# --- the connect timeout covers the proxy's handshake ----------------------------------------


@pytest.mark.parametrize("scheme", ["socks5", "socks5h", "socks4a", "http"])
async def test_proxy_that_never_answers_times_out_as_a_connect_timeout(scheme: str) -> None:
    if scheme != "http":
        need_python_socks()
    user = f"{USER}:{PASSWORD}@" if scheme != "socks4a" else f"{USER}@"
    async with scripted("hang") as proxy:
        client = SMTP(
            hostname="smtp.example.com",
            port=587,
            proxy=f"{scheme}://{user}127.0.0.1:{proxy.port}",
            timeout=0.5,
        )
        started = time.monotonic()
        with pytest.raises(SMTPConnectTimeoutError) as timed_out:
            await client.connect()
        elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 3
    assert isinstance(timed_out.value, asyncio.TimeoutError)
    message = str(timed_out.value)
    assert message.startswith("Timed out connecting to smtp.example.com on port 587 via proxy")
    assert PASSWORD not in message
    assert not client.is_connected


# --- HTTP CONNECT: the reply is read exactly, the greeting after it is kept --------------------


async def test_http_connect_reply_and_greeting_in_one_segment(
    smtpd_factory: SmtpdFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = smtpd_factory()
    async with scripted("tunnel") as proxy:
        url = f"http://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}"
        client = SMTP(hostname="127.0.0.1", port=server.port, proxy=url, timeout=5)
        async with client:
            await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert [m.content for m in server.messages] == [RAW]
    (head,) = proxy.heads
    lines = head.split(b"\r\n")
    assert lines[0] == f"CONNECT 127.0.0.1:{server.port} HTTP/1.1".encode()
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode())
    assert b"Proxy-Authorization: Basic " + basic in lines
    assert PASSWORD not in caplog.text
    assert basic.decode() not in caplog.text


async def test_socks4a_sends_the_name_to_the_proxy(smtpd_factory: SmtpdFactory) -> None:
    """socks4a:// leaves resolving to the proxy (the request carries "localhost"), with the
    user id from the URL."""
    need_python_socks()
    server = smtpd_factory()
    async with scripted("socks4a") as proxy:
        await fastsmtp.send(
            RAW,
            sender="a@example.com",
            recipients=["b@example.com"],
            hostname="localhost",
            port=server.port,
            proxy=f"socks4a://{USER}@127.0.0.1:{proxy.port}",
            timeout=5,
        )
    (head,) = proxy.heads
    assert head[2:4] == server.port.to_bytes(2, "big")
    assert head[8:] == f"{USER}\0localhost\0".encode()
    assert [m.content for m in server.messages] == [RAW]


# --- credentials never shown -------------------------------------------------------------------


def test_proxy_url_repr_hides_credentials() -> None:
    need_python_socks()
    options = ConnectionOptions({"proxy": f"socks5h://{USER}:{PASSWORD}@proxy.example:1080"})
    proxy = options.proxy
    assert isinstance(proxy, ProxyURL)
    assert (proxy.host, proxy.port, proxy.username, proxy.password) == (
        "proxy.example",
        1080,
        USER,
        PASSWORD,
    )
    assert proxy.remote_dns
    for shown in (repr(proxy), str(proxy), repr(options), repr(options.as_dict())):
        assert PASSWORD not in shown
        assert USER not in shown
    assert str(proxy) == "socks5h://***@proxy.example:1080"
    # Percent-encoded credentials are decoded, and still hidden.
    encoded = ProxyURL("http://us%40er:p%3Ass@[::1]:3128")
    assert (encoded.username, encoded.password) == ("us@er", "p:ss")
    assert str(encoded) == "http://***@[::1]:3128"


@pytest.mark.parametrize(
    "url",
    [
        f"https://{USER}:{PASSWORD}@proxy.example:443",
        f"ftp://{USER}:{PASSWORD}@proxy.example:21",
        f"http://{USER}:{PASSWORD}@proxy.example",
        f"socks5://{USER}:{PASSWORD}@proxy.example:99999",
        f"socks5://{USER}:{PASSWORD}@proxy.example:1080/path",
        f"socks4://{USER}:{PASSWORD}@proxy.example:1080",
        f"socks5://{USER}:{PASSWORD}@:1080",
    ],
)
def test_invalid_proxy_urls_are_refused_without_showing_credentials(url: str) -> None:
    with pytest.raises(ValueError) as refused:
        SMTP(hostname="smtp.example.com", proxy=url)
    assert PASSWORD not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "socks5://user@proxy.example:1080",  # a user name without a password
        "http://proxy.example:3128\r\nX-Injected: 1",
        "socks5:///",
        "proxy.example:1080",
    ],
)
def test_malformed_proxy_urls(url: str) -> None:
    with pytest.raises(ValueError):
        ConnectionOptions({"proxy": url})


def test_proxy_must_be_a_string() -> None:
    with pytest.raises(TypeError):
        SMTP(proxy=("127.0.0.1", 1080))  # type: ignore[arg-type]


# --- options that cannot go together -----------------------------------------------------------


async def test_proxy_with_sock_or_socket_path_is_refused() -> None:
    a, b = socket.socketpair()
    try:
        with pytest.raises(ValueError, match="proxy"):
            SMTP(sock=a, proxy="http://127.0.0.1:3128")
        with pytest.raises(ValueError, match="proxy"):
            SMTP(socket_path="/tmp/nothing.sock", proxy="http://127.0.0.1:3128")
        with pytest.raises(ValueError, match="proxy"):
            await fastsmtp.send(
                RAW,
                sender="a@example.com",
                recipients=["b@example.com"],
                sock=a,
                hostname=None,
                proxy="http://127.0.0.1:3128",
            )
        client = SMTP(proxy="http://127.0.0.1:3128")
        with pytest.raises(ValueError, match="proxy"):
            await client.connect(sock=a, hostname=None)
        assert not client.is_connected
        with pytest.raises(ValueError, match="proxy"):
            SMTPPool(socket_path="/tmp/nothing.sock", proxy="http://127.0.0.1:3128")
    finally:
        a.close()
        b.close()


def test_pool_checks_the_proxy_when_made() -> None:
    with pytest.raises(ValueError, match="scheme"):
        SMTPPool(hostname="smtp.example.com", proxy="gopher://127.0.0.1:70")


# --- without python-socks ----------------------------------------------------------------------


async def test_socks_without_python_socks_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, smtpd_factory: SmtpdFactory
) -> None:
    """Raised when the option is set, before any connection; HTTP proxies need nothing."""
    for name in list(sys.modules):
        if name == "python_socks" or name.startswith("python_socks."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "python_socks", None)
    server = smtpd_factory()
    url = f"socks5://{USER}:{PASSWORD}@127.0.0.1:{server.port}"
    for make in (
        lambda: SMTP(hostname="127.0.0.1", proxy=url),
        lambda: SMTPPool(hostname="127.0.0.1", proxy=url),
    ):
        with pytest.raises(ImportError, match=r'pip install "fastsmtplib\[proxy\]"') as missing:
            make()
        assert PASSWORD not in str(missing.value)
    with pytest.raises(ImportError, match="python-socks"):
        await fastsmtp.send(
            RAW, sender="a@example.com", recipients=["b@example.com"], port=server.port, proxy=url
        )
    client = SMTP(hostname="127.0.0.1", port=server.port)
    with pytest.raises(ImportError, match="python-socks"):
        await client.connect(proxy=url)
    assert server.connections == []
    # HTTP CONNECT is built in.
    async with scripted("tunnel") as proxy:
        await fastsmtp.send(
            RAW,
            sender="a@example.com",
            recipients=["b@example.com"],
            hostname="127.0.0.1",
            port=server.port,
            proxy=f"http://127.0.0.1:{proxy.port}",
            timeout=5,
        )
    assert [m.content for m in server.messages] == [RAW]
