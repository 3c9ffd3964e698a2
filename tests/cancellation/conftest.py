"""Fixtures for the cancellation tests: test PKI, garbage collection after each test."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tests.hostile.kit import TLSFiles, make_tls_files


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """A leaked socket or transport is reported (ResourceWarning -> error) by its own test."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def pki() -> TLSFiles:
    return make_tls_files()
