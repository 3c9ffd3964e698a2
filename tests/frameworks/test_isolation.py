"""The framework tests' install of fastsmtp as aiosmtplib does not outlive them."""

from __future__ import annotations

import importlib
import sys

import aiosmtplib  # the real one, as the compat tests use it

import fastsmtp
from tests.frameworks.conftest import installed_as_aiosmtplib


def test_install_is_undone() -> None:
    real = sys.modules["aiosmtplib"]
    assert real is aiosmtplib and real is not fastsmtp
    mailers_before = sys.modules.get("mailers")
    with installed_as_aiosmtplib():
        assert importlib.import_module("aiosmtplib") is fastsmtp
        assert importlib.import_module("aiosmtplib.errors") is fastsmtp.errors
        # frameworks are imported afresh, bound to fastsmtp
        fastapi_mail_connection = importlib.import_module("fastapi_mail.connection")
        assert fastapi_mail_connection.aiosmtplib is fastsmtp
        inside = sys.modules["fastapi_mail.connection"]
    assert sys.modules["aiosmtplib"] is real
    assert sys.modules["aiosmtplib.errors"] is real.errors
    assert sys.modules.get("mailers") is mailers_before
    assert sys.modules.get("fastapi_mail.connection") is not inside
    # the real package still works as the reference
    assert importlib.import_module("aiosmtplib.api").send is real.send
