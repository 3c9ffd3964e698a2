"""Connecting: option validation, stored options, defaults, Unix sockets, ``sock=``,
``source_address=``, the async context manager and the sync wrappers."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

import fastsmtp
from fastsmtp import SMTP, SMTPConnectError, SMTPServerDisconnected
from tests._servers import RecordingServer
from tests.client.conftest import SmtpdFactory

RAW = b"Subject: connect\r\n\r\nbody\r\n"


def client_for(server: RecordingServer, **kwargs: object) -> SMTP:
    kwargs.setdefault("timeout", 5)
    return SMTP(hostname=server.host, port=server.port, **kwargs)  # type: ignore[arg-type]


async def _token() -> str:
    return "token"


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# --- validation (contract section 3.1) ----------------------------------------------------

INVALID_OPTIONS = [
    pytest.param({"password": "p", "oauth_token_generator": _token}, id="password+oauth"),
    pytest.param({"start_tls": True, "use_tls": True}, id="start_tls+use_tls"),
    pytest.param(
        {"tls_context": ssl.create_default_context(), "client_cert": "c.pem"},
        id="tls_context+client_cert",
    ),
    pytest.param({"socket_path": "/tmp/x.sock", "port": 25}, id="socket_path+port"),
    pytest.param({"socket_path": "/tmp/x.sock", "use_tls": True}, id="socket_path+tls-no-host"),
    pytest.param({"hostname": "mail.example\r\nRSET"}, id="hostname-crlf"),
    pytest.param({"hostname": "mail.example\n"}, id="hostname-lf"),
    pytest.param({"local_hostname": "   "}, id="local_hostname-blank"),
    pytest.param({"local_hostname": "my host"}, id="local_hostname-space"),
    pytest.param({"local_hostname": "host\x00x"}, id="local_hostname-nul"),
    pytest.param({"local_hostname": "host\x7f"}, id="local_hostname-del"),
    pytest.param({"local_hostname": "a\r\nRSET"}, id="local_hostname-crlf"),
]


@pytest.mark.parametrize("options", INVALID_OPTIONS)
def test_constructor_validation(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SMTP(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("options", INVALID_OPTIONS)
async def test_connect_validation(smtpd: RecordingServer, options: dict[str, object]) -> None:
    client = SMTP(timeout=5)
    with pytest.raises(ValueError):
        await client.connect(**options)  # type: ignore[arg-type]
    assert not client.is_connected
    assert smtpd.connections == []


def test_sock_validation() -> None:
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(ValueError):
            SMTP(sock=a, socket_path="/tmp/x.sock")
        with pytest.raises(ValueError):
            SMTP(sock=a, port=25)
        with pytest.raises(ValueError):
            SMTP(sock=a, use_tls=True)


def test_constructor_stores_options() -> None:
    client = SMTP(
        hostname="mail.example",
        port=2525,
        local_hostname=" client.example ",
        timeout=12.5,
        use_tls=True,
        validate_certs=False,
        cert_bundle="ca.pem",
        client_cert="c.pem",
        client_key="c.key",
        source_address=("127.0.0.1", 0),
    )
    assert client.hostname == "mail.example"
    assert client.port == 2525
    assert client.local_hostname == "client.example"
    assert client.timeout == 12.5
    assert client.use_tls is True
    assert client.validate_certs is False
    assert client.cert_bundle == "ca.pem"
    assert client.client_cert == "c.pem"
    assert client.client_key == "c.key"
    assert client.source_address == ("127.0.0.1", 0)
    assert client.tls_context is None
    assert client.socket_path is None
    assert client.sock is None
    assert not client.is_connected
    assert client.protocol is None
    assert client.transport is None


# --- connect options, defaults ------------------------------------------------------------


async def test_connect_options_overwrite_stored(smtpd: RecordingServer) -> None:
    client = SMTP(hostname="192.0.2.1", port=1, local_hostname="old.example", cert_bundle="x")
    await client.connect(
        hostname=smtpd.host,
        port=smtpd.port,
        local_hostname="new.example",
        cert_bundle=None,
        start_tls=False,
        timeout=5,
    )
    try:
        assert client.hostname == smtpd.host
        assert client.port == smtpd.port
        assert client.local_hostname == "new.example"
        assert client.cert_bundle is None
        await client.ehlo()
    finally:
        await client.quit()
    assert smtpd.connections[0].lines[0] == "EHLO new.example"


async def test_connect_timeout_does_not_overwrite(smtpd: RecordingServer) -> None:
    client = SMTP(hostname=smtpd.host, port=smtpd.port, timeout=42)
    await client.connect(timeout=5)
    try:
        assert client.timeout == 42
    finally:
        await client.quit()


async def test_default_hostname_is_localhost_not_written_back(smtpd: RecordingServer) -> None:
    client = SMTP(port=smtpd.port, timeout=5)
    async with client:
        assert client.get_transport_info("peername")[1] == smtpd.port
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
        assert client.hostname is None
    assert len(smtpd.messages) == 1


@pytest.mark.parametrize(
    ("options", "port"),
    [({}, 25), ({"start_tls": False}, 25), ({"start_tls": True}, 587), ({"use_tls": True}, 465)],
)
async def test_default_ports(options: dict[str, object], port: int) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            pytest.skip(f"something listens on 127.0.0.1:{port}")
    client = SMTP(hostname="127.0.0.1", timeout=2, **options)  # type: ignore[arg-type]
    with pytest.raises(SMTPConnectError) as info:
        await client.connect()
    assert info.value.message.startswith(f"Error connecting to 127.0.0.1 on port {port}: ")
    assert client.port is None
    assert not client.is_connected


async def test_connection_refused(refusing_port: int) -> None:
    client = SMTP(hostname="127.0.0.1", port=refusing_port, timeout=5)
    with pytest.raises(SMTPConnectError) as info:
        await client.connect()
    exc = info.value
    assert isinstance(exc, ConnectionError)
    assert exc.message.startswith(f"Error connecting to 127.0.0.1 on port {refusing_port}: ")
    assert exc.args == (exc.message,)
    assert not client.is_connected


async def test_send_connection_refused(refusing_port: int) -> None:
    with pytest.raises(SMTPConnectError):
        await fastsmtp.send(
            RAW,
            sender="a@example.com",
            recipients=["b@example.com"],
            hostname="127.0.0.1",
            port=refusing_port,
            timeout=5,
        )


# --- Unix sockets, sock=, source_address= ------------------------------------------------


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
@pytest.mark.parametrize("kind", ["str", "bytes", "pathlike"])
async def test_unix_socket(smtpd_factory: SmtpdFactory, kind: str) -> None:
    server = smtpd_factory(unix=True)
    assert server.unix_path is not None
    path: str | bytes | Path = {
        "str": str(server.unix_path),
        "bytes": os.fsencode(server.unix_path),
        "pathlike": server.unix_path,
    }[kind]
    client = SMTP(socket_path=path, timeout=5)
    async with client:
        assert client.socket_path == path
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    (msg,) = server.messages
    assert msg.content == RAW


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
async def test_send_unix_socket(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory(unix=True)
    await fastsmtp.send(
        RAW,
        sender="a@example.com",
        recipients="b@example.com",
        socket_path=server.unix_path,
        timeout=5,
    )
    assert server.messages[0].rcpt_tos == ["b@example.com"]


async def test_sock(smtpd: RecordingServer) -> None:
    sock = socket.create_connection((smtpd.host, smtpd.port))
    client = SMTP(sock=sock, timeout=5)
    try:
        async with client:
            assert client.sock is sock
            assert client.get_transport_info("peername")[1] == smtpd.port
            await client.sendmail("a@example.com", ["b@example.com"], RAW)
    finally:
        sock.close()
    assert len(smtpd.messages) == 1
    assert smtpd.connections[0].verbs[-1] == "QUIT"


async def test_send_with_sock(smtpd: RecordingServer) -> None:
    sock = socket.create_connection((smtpd.host, smtpd.port))
    try:
        await fastsmtp.send(
            RAW, sender="a@example.com", recipients=["b@example.com"], sock=sock, timeout=5
        )
    finally:
        sock.close()
    assert len(smtpd.messages) == 1


async def test_source_address(smtpd: RecordingServer) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    client = client_for(smtpd, source_address=("127.0.0.1", port))
    async with client:
        assert client.get_transport_info("sockname") == ("127.0.0.1", port)
        await client.noop()
    assert smtpd.connections[0].peername == ("127.0.0.1", port)


# --- the async context manager ----------------------------------------------------------


async def test_context_manager_connects_and_quits(smtpd: RecordingServer) -> None:
    client = client_for(smtpd)
    async with client as entered:
        assert entered is client
        assert client.is_connected
    assert not client.is_connected
    assert smtpd.verbs[-1] == "QUIT"


async def test_context_manager_quits_on_other_exceptions(smtpd: RecordingServer) -> None:
    client = client_for(smtpd)
    with pytest.raises(KeyError):
        async with client:
            await client.noop()
            raise KeyError("boom")
    assert not client.is_connected
    assert smtpd.verbs == ["EHLO", "NOOP", "QUIT"]


@pytest.mark.parametrize(
    "error",
    [ConnectionResetError("reset"), SMTPServerDisconnected("gone"), TimeoutError("slow")],
    ids=["ConnectionResetError", "SMTPServerDisconnected", "TimeoutError"],
)
async def test_context_manager_only_closes_on_connection_and_timeout_errors(
    smtpd: RecordingServer, error: Exception
) -> None:
    client = client_for(smtpd)
    with pytest.raises(type(error)) as info:
        async with client:
            await client.noop()
            raise error
    assert info.value is error
    assert not client.is_connected
    await smtpd.wait_all_closed()
    assert "QUIT" not in smtpd.verbs


async def test_context_manager_nested(smtpd: RecordingServer) -> None:
    client = client_for(smtpd)
    async with client:
        async with client:
            await client.noop()
        assert not client.is_connected
    assert smtpd.verbs.count("QUIT") == 1
    assert len(smtpd.connections) == 1


async def test_context_manager_does_not_reconnect(smtpd: RecordingServer) -> None:
    client = client_for(smtpd)
    await client.connect()
    async with client:
        await client.noop()
    assert len(smtpd.connections) == 1


async def test_context_manager_quit_failure_is_swallowed(smtpd: RecordingServer) -> None:
    client = client_for(smtpd)
    async with client:
        await client.quit()  # the exit's own QUIT then finds no connection
    assert not client.is_connected
    assert smtpd.verbs.count("QUIT") == 1


# --- sync wrappers ------------------------------------------------------------------------


def test_sendmail_sync(smtpd: RecordingServer) -> None:
    client = client_for(smtpd)
    errors, text = client.sendmail_sync("a@example.com", ["b@example.com"], RAW)
    assert errors == {}
    assert text == "2.0.0 Message accepted for delivery"
    assert not client.is_connected
    assert smtpd.verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert smtpd.messages[0].content == RAW


def test_send_message_sync(smtpd: RecordingServer) -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["To"] = "b@example.com"
    msg["Subject"] = "sync"
    msg.set_content("sync body\n")
    client = client_for(smtpd)
    errors, _ = client.send_message_sync(msg)
    assert errors == {}
    assert not client.is_connected
    (got,) = smtpd.messages
    assert got.rcpt_tos == ["b@example.com"]
    assert b"Subject: sync\r\n" in got.content


def test_sendmail_sync_twice(smtpd: RecordingServer) -> None:
    client = client_for(smtpd)
    client.sendmail_sync("a@example.com", "b@example.com", RAW)
    client.sendmail_sync("a@example.com", "c@example.com", RAW)
    assert [m.rcpt_tos for m in smtpd.messages] == [["b@example.com"], ["c@example.com"]]
    assert len(smtpd.connections) == 2


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
async def test_sendmail_sync_inside_running_loop_fails(smtpd: RecordingServer) -> None:
    client = client_for(smtpd)
    with pytest.raises(RuntimeError):
        client.sendmail_sync("a@example.com", ["b@example.com"], RAW)
    assert smtpd.messages == []


def test_transport_info_is_from_this_connection(smtpd: RecordingServer) -> None:
    client = client_for(smtpd)
    client.sendmail_sync("a@example.com", ["b@example.com"], RAW)
    with pytest.raises(SMTPServerDisconnected):
        client.get_transport_info("peername")
    assert smtpd.verbs[-1] == "QUIT"
