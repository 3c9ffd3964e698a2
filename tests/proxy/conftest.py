"""Fixtures for the proxy tests: real proxy daemons (see :mod:`tests.proxy.daemons`), the
recording SMTP servers and TLS material of the client tests.

A daemon or python-socks that is missing skips its tests with the reason; with
``FASTSMTP_REQUIRE_PROXIES=1`` (as ``.ci/run`` sets) that is a failure instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

# The client tests' fixtures: the trustme PKI, recording aiosmtpd servers, and the
# garbage collection after each test that pins a leaked socket on the test that leaked it.
from tests.client.conftest import (  # noqa: F401
    _collect_garbage,
    smtpd_factory,
    tls,
)

from .daemons import (
    DaemonUnavailable,
    ProxyDaemon,
    start_danted,
    start_microsocks,
    start_tinyproxy,
)

REQUIRE_PROXIES = os.environ.get("FASTSMTP_REQUIRE_PROXIES") == "1"
USER = "mailer"
PASSWORD = "pr0xy-s3cret-Pw"

_T = TypeVar("_T")


def unavailable(reason: str) -> None:
    """Skip (or fail under FASTSMTP_REQUIRE_PROXIES=1) because ``reason``."""
    if REQUIRE_PROXIES:
        pytest.fail(f"FASTSMTP_REQUIRE_PROXIES=1 but {reason}")
    pytest.skip(reason)


def _started(start: Callable[[], _T]) -> _T:
    try:
        return start()
    except DaemonUnavailable as exc:
        unavailable(f"proxy daemon unavailable: {exc}")
        raise  # not reached


DaemonFactory = Callable[..., ProxyDaemon]


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[DaemonFactory]:
    """``proxies(kind, **options)`` starts a daemon in its own directory under tmp_path:
    ``"danted"``, ``"microsocks"`` (``user=``, ``password=``) or ``"tinyproxy"``
    (``connect_port=``, ``user=``, ``password=``). All are stopped at teardown."""
    started: list[ProxyDaemon] = []

    def start(kind: str, **options: object) -> ProxyDaemon:
        directory = tmp_path / f"{kind}{len(started)}"
        starters: dict[str, Callable[..., ProxyDaemon]] = {
            "danted": start_danted,
            "microsocks": start_microsocks,
            "tinyproxy": start_tinyproxy,
        }
        daemon = _started(lambda: starters[kind](directory, **options))
        started.append(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            daemon.stop()
