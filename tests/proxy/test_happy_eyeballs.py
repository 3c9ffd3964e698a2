"""Happy eyeballs (RFC 8305) when a host name has several addresses: interleaved families,
the next address when one refuses or after the Connection Attempt Delay while one hangs, and
one deadline for them all. (Issue 14's connection work; the proxies are next door.)

The name is answered through ``fastsmtp._connector.resolve`` (the resolver seam) with
loopback addresses only: a dead address is a port nothing listens on, a hanging one a
listener whose accept queue is full (the kernel then drops the SYN, as a black-holed route
would). The attempts are read from the ``fastsmtp.connect`` debug log.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest

import fastsmtp
from fastsmtp import SMTP, SMTPConnectError, SMTPConnectTimeoutError, _connector
from tests.client.conftest import SmtpdFactory, TLSMaterial

RAW = b"Subject: eyeballs\r\n\r\nbody\r\n"
NAME = "mail.eyeballs.test"


def dead_port(family: int = socket.AF_INET) -> int:
    """A port the OS just handed out on the loopback address of ``family``: nothing listens."""
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def v4(port: int, host: str = "127.0.0.1") -> tuple[int, Any]:
    return (socket.AF_INET, (host, port))


def v6(port: int) -> tuple[int, Any]:
    return (socket.AF_INET6, ("::1", port, 0, 0))


class Resolver:
    """Answers every name with ``addresses`` and records the questions."""

    def __init__(self, addresses: list[tuple[int, Any]]) -> None:
        self.addresses = addresses
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[tuple[int, Any]]:
        self.asked.append((host, port))
        return list(self.addresses)


@pytest.fixture
def resolve_as(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def install(addresses: list[tuple[int, Any]]) -> Resolver:
        resolver = Resolver(addresses)
        monkeypatch.setattr(_connector, "resolve", resolver)
        return resolver

    yield install


@pytest.fixture
def attempts(caplog: pytest.LogCaptureFixture) -> Any:
    """``attempts()``: the connection log lines as (event, address, port)."""
    caplog.set_level(logging.DEBUG, logger="fastsmtp.connect")
    pattern = re.compile(r"^(connecting to|connected to) (\S+) port (\d+)( failed)?")

    def read() -> list[tuple[str, str, int]]:
        events = []
        for record in caplog.records:
            if record.name != "fastsmtp.connect":
                continue
            match = pattern.match(record.getMessage())
            if match:
                verb, host, port, failed = match.groups()
                event = "failed" if failed else ("try" if verb == "connecting to" else "ok")
                events.append((event, host, int(port)))
        return events

    return read


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A port on ::1 where a new connection neither completes nor is refused: a listener
    with a full accept queue (filled until one more connection hangs)."""
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind(("::1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(16):
            filler = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            fillers.append(filler)
            filler.settimeout(0.2)
            try:
                filler.connect(("::1", port))
            except TimeoutError:
                break
        else:
            pytest.skip("could not fill the accept queue of a loopback listener")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_dead_address_then_live_one(
    resolve_as: Any, attempts: Any, smtpd_factory: SmtpdFactory
) -> None:
    server = smtpd_factory()
    resolver = resolve_as([v6(server.port), v4(server.port)])  # nothing on ::1
    async with SMTP(hostname=NAME, port=server.port, timeout=5) as client:
        assert client.get_transport_info("peername")[:2] == ("127.0.0.1", server.port)
        await client.sendmail("a@example.com", ["b@example.com"], RAW)
    assert resolver.asked == [(NAME, server.port)]
    assert attempts() == [
        ("try", "::1", server.port),
        ("failed", "::1", server.port),
        ("try", "127.0.0.1", server.port),
        ("ok", "127.0.0.1", server.port),
    ]
    assert [m.content for m in server.messages] == [RAW]


async def test_live_first_address_is_the_only_one_tried(
    resolve_as: Any, attempts: Any, smtpd_factory: SmtpdFactory
) -> None:
    server = smtpd_factory()
    resolve_as([v4(server.port), v6(server.port)])
    await fastsmtp.send(
        RAW, sender="a@example.com", recipients=["b@example.com"], hostname=NAME, port=server.port
    )
    assert attempts() == [("try", "127.0.0.1", server.port), ("ok", "127.0.0.1", server.port)]


async def test_families_are_interleaved(
    resolve_as: Any, attempts: Any, smtpd_factory: SmtpdFactory
) -> None:
    """RFC 8305 section 4: v4, v6, v4, ... starting with the first answer's family."""
    server = smtpd_factory()
    dead_a, dead_b, dead_6 = dead_port(), dead_port(), dead_port(socket.AF_INET6)
    resolve_as([v4(dead_a), v4(dead_b), v4(server.port), v6(dead_6), v6(dead_6)])
    async with SMTP(hostname=NAME, port=server.port, timeout=5) as client:
        await client.noop()
    tried = [(host, port) for event, host, port in attempts() if event == "try"]
    assert tried == [
        ("127.0.0.1", dead_a),
        ("::1", dead_6),  # (the duplicate answer is tried once)
        ("127.0.0.1", dead_b),
        ("127.0.0.1", server.port),
    ]


async def test_hanging_address_gives_way_after_the_attempt_delay(
    resolve_as: Any, attempts: Any, smtpd_factory: SmtpdFactory
) -> None:
    server = smtpd_factory()
    with black_hole() as hole:
        resolve_as([v6(hole), v4(server.port)])
        started = time.monotonic()
        async with SMTP(hostname=NAME, port=server.port, timeout=5) as client:
            elapsed = time.monotonic() - started
            assert client.get_transport_info("peername")[:2] == ("127.0.0.1", server.port)
            await client.sendmail("a@example.com", ["b@example.com"], RAW)
    # The second attempt waited for the delay (not started at once), and the whole
    # thing did not wait for the first attempt's connect to time out.
    assert _connector.HAPPY_EYEBALLS_DELAY * 0.9 <= elapsed < 3
    assert attempts() == [
        ("try", "::1", hole),
        ("try", "127.0.0.1", server.port),
        ("ok", "127.0.0.1", server.port),
    ]
    assert [m.content for m in server.messages] == [RAW]


async def test_every_address_dead(resolve_as: Any, attempts: Any) -> None:
    dead_4, dead_6 = dead_port(), dead_port(socket.AF_INET6)
    resolve_as([v6(dead_6), v4(dead_4)])
    client = SMTP(hostname=NAME, port=dead_4, timeout=5)
    with pytest.raises(SMTPConnectError) as failed:
        await client.connect()
    assert type(failed.value) is SMTPConnectError
    message = str(failed.value)
    assert message.startswith(f"Error connecting to {NAME} on port {dead_4}: ")
    assert "::1" in message and "127.0.0.1" in message
    assert [e for e, _, _ in attempts()] == ["try", "failed", "try", "failed"]


async def test_one_deadline_for_every_attempt(resolve_as: Any) -> None:
    with black_hole() as hole:
        resolve_as([v6(hole)])
        client = SMTP(hostname=NAME, port=hole, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(SMTPConnectTimeoutError):
            await client.connect()
        assert time.monotonic() - started < 3


async def test_source_address_keeps_to_its_family(
    resolve_as: Any, attempts: Any, smtpd_factory: SmtpdFactory
) -> None:
    server = smtpd_factory()
    resolve_as([v6(server.port), v4(server.port)])
    client = SMTP(hostname=NAME, port=server.port, source_address=("127.0.0.1", 0), timeout=5)
    async with client:
        await client.noop()
    assert attempts() == [("try", "127.0.0.1", server.port), ("ok", "127.0.0.1", server.port)]


async def test_tls_is_checked_against_the_name_not_the_address(
    resolve_as: Any, smtpd_factory: SmtpdFactory, tls: TLSMaterial
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.ca.issue_cert(NAME).configure_cert(context)
    server = smtpd_factory(implicit_tls_context=context)
    resolve_as([v6(server.port), v4(server.port)])
    async with SMTP(
        hostname=NAME, port=server.port, use_tls=True, tls_context=tls.client_context(), timeout=5
    ) as client:
        assert client.get_transport_info("ssl_object").server_hostname == NAME
        await client.noop()


def test_interleave_order() -> None:
    a, b, c, d = v6(1), v6(2), v4(3), v4(4)
    assert _connector._interleave([a, b, c, d]) == [a, c, b, d]
    assert _connector._interleave([c, a, a, d, b]) == [c, a, d, b]
    assert _connector._interleave([]) == []
