"""Fixtures of the fleet tests: one real redis-server per session, a clean database each.

Without redis-server (or redis-py) the tests skip with the reason; with
``FASTSMTP_REQUIRE_REDIS=1`` (as ``.ci/run`` sets) that is a failure instead.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from .redis_server import RedisServer, RedisUnavailable, start_redis

REQUIRE_REDIS = os.environ.get("FASTSMTP_REQUIRE_REDIS") == "1"


def unavailable(reason: str) -> None:
    """Skip (or fail under FASTSMTP_REQUIRE_REDIS=1) because ``reason``."""
    if REQUIRE_REDIS:
        pytest.fail(f"FASTSMTP_REQUIRE_REDIS=1 but {reason}")
    pytest.skip(reason)


def need(module: str, extra: str) -> None:
    """Skip (or fail in CI) unless ``module`` imports."""
    try:
        __import__(module)
    except ImportError as exc:
        unavailable(f"{module} is not installed (pip install '.[{extra}]'): {exc}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    need("redis", "test")
    try:
        server = start_redis()
    except RedisUnavailable as exc:
        unavailable(str(exc))
    # Its log is piped: drain it so the server never blocks on a full pipe.
    assert server.process.stdout is not None
    drain = threading.Thread(target=server.process.stdout.read, daemon=True)
    drain.start()
    try:
        yield server
    finally:
        server.process.terminate()
        drain.join(10)  # the log ends when the server does
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The server's URL, its data flushed before the test."""
    import redis

    client = redis.Redis(unix_socket_path=redis_server.socket)
    try:
        client.flushall()
    finally:
        client.close()
    yield redis_server.url
