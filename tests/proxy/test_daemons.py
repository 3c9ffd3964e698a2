"""Sending through real proxy daemons: Dante (SOCKS 5/4), microsocks (SOCKS 5, RFC 1929
username/password) and tinyproxy (HTTP CONNECT, basic auth), each to aiosmtpd on 127.0.0.1.

Every test checks what the SMTP server received and that the connection it saw came from
the proxy (its peer is not the client's socket; the client's peer is the proxy).
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import pytest

import fastsmtp
from fastsmtp import SMTP, SMTPConnectError, SMTPException, _connector
from tests._servers import RecordingServer
from tests.client.conftest import SmtpdFactory, TLSMaterial

from .conftest import PASSWORD, USER, DaemonFactory, ProxyDaemon, unavailable
from .daemons import free_port

RAW = b"Subject: through a proxy\r\n\r\ntunnelled body\r\n"


def need_python_socks() -> None:
    try:
        import python_socks.async_.asyncio  # noqa: F401
    except ImportError as exc:
        unavailable(f"python-socks is not installed: {exc}")


@dataclass(frozen=True)
class Route:
    daemon: str
    scheme: str
    auth: bool
    #: The SMTP host as the client names it: "localhost" is resolved by the proxy for
    #: socks5h/socks4a/http, here for socks5/socks4.
    hostname: str


ROUTES = {
    "danted-socks5": Route("danted", "socks5", False, "127.0.0.1"),
    "danted-socks5h": Route("danted", "socks5h", False, "localhost"),
    "danted-socks4": Route("danted", "socks4", False, "127.0.0.1"),
    # (Dante rejects SOCKS 4a requests, microsocks speaks SOCKS 5 only: socks4a is tested
    # against a scripted proxy in test_scripted.py.)
    "microsocks-socks5": Route("microsocks", "socks5", False, "localhost"),
    "microsocks-socks5-auth": Route("microsocks", "socks5", True, "127.0.0.1"),
    "microsocks-socks5h-auth": Route("microsocks", "socks5h", True, "localhost"),
    "tinyproxy-http": Route("tinyproxy", "http", False, "localhost"),
    "tinyproxy-http-auth": Route("tinyproxy", "http", True, "127.0.0.1"),
}


def start_route(proxies: DaemonFactory, route: Route, smtp_port: int) -> tuple[ProxyDaemon, str]:
    """Start the route's daemon; returns it and the proxy URL (with credentials if any)."""
    if route.scheme != "http":
        need_python_socks()
    credentials = {"user": USER, "password": PASSWORD} if route.auth else {}
    if route.daemon == "tinyproxy":
        daemon = proxies("tinyproxy", connect_port=smtp_port, **credentials)
    else:
        daemon = proxies(route.daemon, **credentials)
    return daemon, daemon.url(route.scheme)


def assert_through(server: RecordingServer, daemon: ProxyDaemon, sockname: object) -> None:
    """The server's one connection came from the proxy, not from the client's socket."""
    (conn,) = server.connections
    assert conn.peername is not None
    assert tuple(conn.peername[:2]) != tuple(sockname[:2])  # type: ignore[index]
    assert conn.peername[0] == "127.0.0.1"


@pytest.mark.parametrize("name", list(ROUTES))
async def test_send_through_each_proxy(
    name: str, proxies: DaemonFactory, smtpd_factory: SmtpdFactory
) -> None:
    route = ROUTES[name]
    server = smtpd_factory()
    daemon, url = start_route(proxies, route, server.port)
    client = SMTP(hostname=route.hostname, port=server.port, proxy=url, timeout=10)
    async with client:
        assert client.get_transport_info("peername")[:2] == daemon.address
        sockname = client.get_transport_info("sockname")
        errors, reply = await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert errors == {}
    assert reply.startswith("2.0.0")
    (message,) = server.messages
    assert message.content == RAW
    assert message.mail_from == "a@example.com"
    assert message.rcpt_tos == ["b@example.com"]
    assert server.connections[0].verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert_through(server, daemon, sockname)
    if route.daemon == "tinyproxy":
        # tinyproxy names the host it was asked for: the SMTP host, by name or address.
        assert f"{route.hostname}:{server.port}" in daemon.log()


@pytest.mark.parametrize("name", ["danted-socks5h", "microsocks-socks5-auth", "tinyproxy-http"])
async def test_send_function_through_proxy(
    name: str, proxies: DaemonFactory, smtpd_factory: SmtpdFactory
) -> None:
    route = ROUTES[name]
    server = smtpd_factory()
    _daemon, url = start_route(proxies, route, server.port)
    errors, _ = await fastsmtp.send(
        RAW,
        sender="a@example.com",
        recipients=["c@example.com"],
        hostname=route.hostname,
        port=server.port,
        proxy=url,
        timeout=10,
    )
    assert errors == {}
    assert [m.content for m in server.messages] == [RAW]


async def test_pool_through_proxy(proxies: DaemonFactory, smtpd_factory: SmtpdFactory) -> None:
    need_python_socks()
    server = smtpd_factory()
    daemon = proxies("microsocks", user=USER, password=PASSWORD)
    async with fastsmtp.SMTPPool(
        hostname="127.0.0.1",
        port=server.port,
        proxy=daemon.url("socks5"),
        timeout=10,
        max_connections=2,
    ) as pool:
        for n in range(3):
            await pool.sendmail("a@example.com", [f"r{n}@example.com"], RAW)
    assert sorted(m.rcpt_tos[0] for m in server.messages) == [
        "r0@example.com",
        "r1@example.com",
        "r2@example.com",
    ]
    assert server.connections
    assert all(conn.peername[0] == "127.0.0.1" for conn in server.connections)


async def test_connect_option_sets_the_proxy(
    proxies: DaemonFactory, smtpd_factory: SmtpdFactory
) -> None:
    """``connect(proxy=...)`` replaces the stored option (like every connect option)."""
    server = smtpd_factory()
    daemon = proxies("tinyproxy", connect_port=server.port)
    client = SMTP(hostname="127.0.0.1", port=server.port, timeout=10)
    await client.connect(proxy=daemon.url("http"))
    try:
        assert client.get_transport_info("peername")[:2] == daemon.address
        await client.noop()
    finally:
        await client.quit()
    assert f"127.0.0.1:{server.port}" in daemon.log()


# --- TLS: verified and named for the SMTP host, never the proxy ----------------------------

TLS_ROUTES = ["danted-socks5h", "microsocks-socks5h-auth", "tinyproxy-http-auth", "danted-socks4"]


def tls_server_context(tls: TLSMaterial, names: list[str]) -> ssl.SSLContext:
    """A server context whose certificate is valid for "localhost" only (not for 127.0.0.1,
    where the proxies listen), recording the SNI names the clients send into ``names``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.ca.issue_cert("localhost").configure_cert(context)

    def record(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        names.append(str(name))

    context.sni_callback = record  # type: ignore[assignment]
    return context


@pytest.mark.parametrize("name", TLS_ROUTES)
async def test_starttls_through_proxy_is_for_the_smtp_host(
    name: str, proxies: DaemonFactory, smtpd_factory: SmtpdFactory, tls: TLSMaterial
) -> None:
    route = ROUTES[name]
    names: list[str] = []
    server = smtpd_factory(
        starttls_context=tls_server_context(tls, names),
        auth_mechanisms=("PLAIN",),
        users={"alice": "s3cret"},
        auth_require_tls=True,
    )
    daemon, url = start_route(proxies, route, server.port)
    names.clear()  # (the server's own start-up check connects without SNI)
    client = SMTP(
        hostname="localhost",
        port=server.port,
        proxy=url,
        start_tls=True,
        tls_context=tls.client_context(),
        username="alice",
        password="s3cret",
        timeout=10,
    )
    async with client:
        assert client.get_transport_info("ssl_object") is not None
        sockname = client.get_transport_info("sockname")
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert names == ["localhost"]
    (conn,) = server.connections
    assert [(c.verb, c.tls) for c in conn.commands][:4] == [
        ("EHLO", False),
        ("STARTTLS", False),
        ("EHLO", True),
        ("AUTH", True),
    ]
    (message,) = server.messages
    assert message.tls and message.content == RAW
    assert_through(server, daemon, sockname)


@pytest.mark.parametrize("name", TLS_ROUTES)
async def test_implicit_tls_through_proxy_is_for_the_smtp_host(
    name: str, proxies: DaemonFactory, smtpd_factory: SmtpdFactory, tls: TLSMaterial
) -> None:
    route = ROUTES[name]
    names: list[str] = []
    server = smtpd_factory(implicit_tls_context=tls_server_context(tls, names))
    _daemon, url = start_route(proxies, route, server.port)
    names.clear()  # (the server's own start-up check connects without SNI)
    errors, _ = await fastsmtp.send(
        RAW,
        sender="a@example.com",
        recipients=["b@example.com"],
        hostname="localhost",
        port=server.port,
        use_tls=True,
        tls_context=tls.client_context(),
        proxy=url,
        timeout=10,
    )
    assert errors == {}
    assert names == ["localhost"]
    (message,) = server.messages
    assert message.tls and message.content == RAW


@pytest.mark.parametrize("use_tls", [True, False], ids=["implicit", "starttls"])
async def test_certificate_not_for_the_smtp_host_fails_through_proxy(
    use_tls: bool, proxies: DaemonFactory, smtpd_factory: SmtpdFactory, tls: TLSMaterial
) -> None:
    """A certificate valid for another name is refused although the tunnel works: the
    check is made for the SMTP host ("localhost"), and nothing is sent after it fails."""
    context = tls.server_context(tls.other_cert)
    if use_tls:
        server = smtpd_factory(implicit_tls_context=context)
    else:
        server = smtpd_factory(starttls_context=context)
    daemon = proxies("tinyproxy", connect_port=server.port)
    client = SMTP(
        hostname="localhost",
        port=server.port,
        proxy=daemon.url("http"),
        use_tls=use_tls,
        start_tls=None if use_tls else True,
        tls_context=tls.client_context(),
        timeout=10,
    )
    with pytest.raises((SMTPConnectError, ssl.SSLCertVerificationError)) as failed:
        await client.connect()
    assert "localhost" in str(failed.value) or "certificate" in str(failed.value).lower()
    assert not client.is_connected
    for conn in server.connections:
        assert all(not c.tls for c in conn.commands)
        assert "MAIL" not in conn.verbs


# --- refusals and failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("daemon_kind", "scheme", "given", "reason"),
    [
        ("microsocks", "socks5", "wrong-password", "authentication failure"),
        ("microsocks", "socks5", None, "No acceptable authentication methods"),
        ("tinyproxy", "http", "wrong-password", "401 Unauthorized"),  # (tinyproxy's answer)
        ("tinyproxy", "http", None, "407"),
    ],
    ids=["socks5-wrong", "socks5-none", "http-wrong", "http-none"],
)
async def test_proxy_authentication_failure(
    daemon_kind: str,
    scheme: str,
    given: str | None,
    reason: str,
    proxies: DaemonFactory,
    smtpd_factory: SmtpdFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    if scheme != "http":
        need_python_socks()
    server = smtpd_factory()
    options = {"connect_port": server.port} if daemon_kind == "tinyproxy" else {}
    daemon = proxies(daemon_kind, user=USER, password=PASSWORD, **options)
    if given is None:
        url = f"{scheme}://127.0.0.1:{daemon.port}"
    else:
        url = daemon.url(scheme, password=given)
    client = SMTP(hostname="127.0.0.1", port=server.port, proxy=url, timeout=10)
    with pytest.raises(SMTPConnectError) as refused:
        await client.connect()
    message = str(refused.value)
    assert type(refused.value) is SMTPConnectError
    assert reason in message
    assert f"127.0.0.1:{daemon.port}" in message
    assert not client.is_connected
    assert server.connections == []
    everything = message + repr(refused.value) + caplog.text + repr(refused.value.__cause__)
    assert "wrong-password" not in everything
    assert PASSWORD not in everything


async def test_socks_target_refused(proxies: DaemonFactory) -> None:
    """Dante cannot reach the SMTP server: the SOCKS reply's reason is in the error."""
    need_python_socks()
    daemon = proxies("danted")
    client = SMTP(hostname="127.0.0.1", port=free_port(), proxy=daemon.url("socks5"), timeout=10)
    with pytest.raises(SMTPConnectError) as refused:
        await client.connect()
    assert type(refused.value) is SMTPConnectError
    assert "refused" in str(refused.value).lower()


async def test_http_connect_to_a_port_not_allowed(
    proxies: DaemonFactory, smtpd_factory: SmtpdFactory
) -> None:
    """tinyproxy refuses CONNECT to a port outside its ConnectPort list (403)."""
    server = smtpd_factory()
    daemon = proxies("tinyproxy", connect_port=free_port())
    client = SMTP(hostname="127.0.0.1", port=server.port, proxy=daemon.url("http"), timeout=10)
    with pytest.raises(SMTPConnectError) as refused:
        await client.connect()
    assert "403" in str(refused.value)
    assert server.connections == []


@pytest.mark.parametrize("scheme", ["socks5", "socks5h", "socks4", "http"])
async def test_unreachable_proxy(scheme: str) -> None:
    if scheme != "http":
        need_python_socks()
    port = free_port()  # nothing listens there
    url = f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{port}"
    if scheme == "socks4":
        url = f"socks4://{USER}@127.0.0.1:{port}"
    client = SMTP(hostname="127.0.0.1", port=2525, proxy=url, timeout=10)
    started = time.monotonic()
    with pytest.raises(SMTPConnectError) as failed:
        await client.connect()
    assert time.monotonic() - started < 5
    assert type(failed.value) is SMTPConnectError
    message = str(failed.value)
    assert f"127.0.0.1:{port}" in message
    assert PASSWORD not in message and PASSWORD not in repr(failed.value.__cause__)


async def test_cleartext_auth_through_a_proxy_is_refused(
    proxies: DaemonFactory, smtpd_factory: SmtpdFactory
) -> None:
    """security.md section 3: a loopback proxy says nothing about the hop after it, so a
    plaintext session through it is not "local": credentials are refused before AUTH."""
    server = smtpd_factory(auth_mechanisms=("PLAIN", "LOGIN"), users={"alice": "s3cret"})
    daemon = proxies("tinyproxy", connect_port=server.port)
    client = SMTP(hostname="127.0.0.1", port=server.port, proxy=daemon.url("http"), timeout=10)
    async with client:
        with pytest.raises(SMTPException, match="unencrypted"):
            await client.login("alice", "s3cret")
    assert "AUTH" not in server.connections[0].verbs
    # The caller may still say the channel is trusted.
    trusted = SMTP(
        hostname="127.0.0.1",
        port=server.port,
        proxy=daemon.url("http"),
        allow_insecure_auth=True,
        timeout=10,
    )
    async with trusted:
        await trusted.login("alice", "s3cret")
    assert "AUTH" in server.connections[1].verbs


@pytest.mark.parametrize("name", ["microsocks-socks5", "tinyproxy-http"])
async def test_source_address_is_used_to_reach_the_proxy(
    name: str, proxies: DaemonFactory, smtpd_factory: SmtpdFactory
) -> None:
    route = ROUTES[name]
    server = smtpd_factory()
    daemon, url = start_route(proxies, route, server.port)
    source = ("127.0.0.1", free_port())
    client = SMTP(
        hostname=route.hostname, port=server.port, proxy=url, source_address=source, timeout=10
    )
    async with client:
        assert client.get_transport_info("sockname")[:2] == source
        assert client.get_transport_info("peername")[:2] == daemon.address
        await client.noop()
    assert server.connections[0].peername[:2] != source


async def test_http_proxy_name_with_a_dead_address_first(
    proxies: DaemonFactory, smtpd_factory: SmtpdFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HTTP proxy is reached the happy-eyeballs way too: its name's dead IPv6 address
    is passed over for the live IPv4 one."""
    server = smtpd_factory()
    daemon = proxies("tinyproxy", connect_port=server.port)
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        dead = s.getsockname()[1]

    async def resolve(host: str, port: int) -> list[tuple[int, Any]]:
        assert (host, port) == ("proxy.eyeballs.test", daemon.port)
        return [(socket.AF_INET6, ("::1", dead, 0, 0)), (socket.AF_INET, daemon.address)]

    monkeypatch.setattr(_connector, "resolve", resolve)
    client = SMTP(
        hostname="127.0.0.1",
        port=server.port,
        proxy=f"http://proxy.eyeballs.test:{daemon.port}",
        timeout=10,
    )
    async with client:
        assert client.get_transport_info("peername")[:2] == daemon.address
        await client.noop()
    assert f"127.0.0.1:{server.port}" in daemon.log()
