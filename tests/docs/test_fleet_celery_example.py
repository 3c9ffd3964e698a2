"""examples/fleet_celery.py (``# example-needs: redis``), which README.md shows, run as a user
would: a real redis-server (Unix socket, private directory), a real ``celery worker`` process
running the example's app, and the example's producer queueing three messages to the STARTTLS
submission server of ``conftest.py`` (AUTH only after TLS).

Without redis-server or Celery the test skips with the reason; with
``FASTSMTP_REQUIRE_REDIS=1`` (as ``.ci/run`` sets) that is a failure instead.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.conftest import need, unavailable
from tests.fleet.redis_server import RedisServer, RedisUnavailable, start_redis
from tests.fleet.workers import Worker

from .conftest import Submission

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if not EXAMPLES.exists():  # cibuildwheel tests the wheel with a copy of tests/ alone
    pytest.skip("examples/ is not beside tests/ here", allow_module_level=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    need("redis", "test")
    need("celery", "test")
    try:
        server = start_redis()
    except RedisUnavailable as exc:
        unavailable(str(exc))
    assert server.process.stdout is not None
    drain = threading.Thread(target=server.process.stdout.read, daemon=True)
    drain.start()  # its log is piped: never let the server block on a full pipe
    try:
        yield server
    finally:
        server.process.terminate()
        drain.join(10)
        server.stop()


def test_celery_example_sends_each_message_once(
    redis_server: RedisServer, submission: Submission
) -> None:
    env = submission.environ()
    env["CELERY_BROKER_URL"] = f"{redis_server.kombu_url}?virtual_host=0"
    env["FLEET_REDIS_URL"] = f"{redis_server.url}?db=2"
    args = [
        sys.executable, "-m", "celery", "--workdir", str(EXAMPLES), "-A", "fleet_celery",
        "worker", "--pool", "threads", "--concurrency", "4", "--hostname", "docs@fleet",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
    ]  # fmt: skip
    worker = Worker("docs", args, env, ready_text=" ready.")
    try:
        worker.wait_ready()
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "fleet_celery.py")],
            cwd=EXAMPLES,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        worker.stop()
    output = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}\nworker:\n{worker.log()}"
    assert done.returncode == 0, output
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.split()[1:3] == ["new", "sent"] for line in lines), output
    received = submission.starttls.messages
    assert sorted(m.rcpt_tos[0] for m in received) == [f"member{n}@example.org" for n in range(3)]
    assert all(m.tls for m in received)
