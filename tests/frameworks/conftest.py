"""Fixtures for the framework tests: aiosmtplib-based frameworks run on fastsmtp.

``aiosmtplib_is_fastsmtp`` calls :func:`fastsmtp.compat.install_as_aiosmtplib` for one test
and undoes it afterwards: the real aiosmtplib (which other tests compare against) and the
frameworks' own modules are taken out of ``sys.modules`` first, so a framework imported in
the test binds to fastsmtp, and everything is put back as it was when the test ends.
"""

from __future__ import annotations

import contextlib
import gc
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trustme

import fastsmtp
import fastsmtp.compat
from tests._servers import RecordingServer, ServerConfig

# Modules that must be imported afresh while aiosmtplib is fastsmtp.
_SWAPPED = ("aiosmtplib", "fastapi_mail", "mailers")

USERS = {"alice": "s3cret-pässword"}


def _swapped(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in _SWAPPED)


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """A leaked socket (ResourceWarning -> error) is reported by the test that leaked it."""
    yield
    gc.collect()


@contextlib.contextmanager
def installed_as_aiosmtplib() -> Iterator[ModuleType]:
    """``import aiosmtplib`` gives fastsmtp inside the block; ``sys.modules`` is restored
    (the real aiosmtplib and the frameworks' modules as they were) when it ends."""
    saved = {name: module for name, module in sys.modules.items() if _swapped(name)}
    for name in saved:
        del sys.modules[name]
    try:
        fastsmtp.compat.install_as_aiosmtplib()
        assert sys.modules["aiosmtplib"] is fastsmtp
        yield fastsmtp
    finally:
        for name in [name for name in sys.modules if _swapped(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.fixture
def aiosmtplib_is_fastsmtp() -> Iterator[ModuleType]:
    """fastsmtp installed as aiosmtplib for one test (see :func:`installed_as_aiosmtplib`)."""
    with installed_as_aiosmtplib() as module:
        yield module


def real_aiosmtplib_loaded() -> list[str]:
    """Modules of the real aiosmtplib in ``sys.modules`` (there must be none in a test)."""
    return [
        name
        for name, module in sys.modules.items()
        if "site-packages" in (getattr(module, "__file__", None) or "")
        and "aiosmtplib" in (getattr(module, "__file__", None) or "")
    ]


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cert_bundle(ca: trustme.CA, tmp_path: Path) -> str:
    """A PEM file with the test CA: what the frameworks are told to trust."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def _start(**config: Any) -> RecordingServer:
    return RecordingServer(
        ServerConfig(auth_mechanisms=("PLAIN", "LOGIN"), users=USERS, **config)
    ).start()


@pytest.fixture
def plain_server() -> Iterator[RecordingServer]:
    """aiosmtpd on 127.0.0.1 with AUTH PLAIN/LOGIN, no TLS."""
    server = _start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def starttls_server(ca: trustme.CA) -> Iterator[RecordingServer]:
    """aiosmtpd on 127.0.0.1 that requires STARTTLS (certificate from the test CA) before
    any mail command and offers AUTH only over TLS."""
    server = _start(
        starttls_context=_server_context(ca), require_starttls=True, auth_require_tls=True
    )
    try:
        yield server
    finally:
        server.stop()
