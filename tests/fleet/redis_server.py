"""A private redis-server for the fleet tests: a Unix socket in a temporary directory.

No TCP port at all (``port 0``), no persistence; started once per test session and
stopped at its end. Readiness is read from the server's own log line, not polled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

__all__ = ["RedisServer", "RedisUnavailable", "start_redis"]

REDIS_SERVER = os.environ.get("FASTSMTP_REDIS_SERVER", "/usr/bin/redis-server")


class RedisUnavailable(Exception):
    """redis-server is missing or did not start."""


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    root: str
    socket: str

    @property
    def url(self) -> str:
        """For redis-py (``redis.asyncio.from_url``) and taskiq-redis."""
        return f"unix://{self.socket}"

    @property
    def kombu_url(self) -> str:
        """For Celery's broker and result backend."""
        return f"redis+socket://{self.socket}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.root, ignore_errors=True)


def start_redis() -> RedisServer:
    """Start redis-server on a Unix socket; wait for 'Ready to accept connections'."""
    if not os.access(REDIS_SERVER, os.X_OK):
        raise RedisUnavailable(f"{REDIS_SERVER} not found (Debian package redis-server)")
    root = tempfile.mkdtemp(prefix="fastsmtp-redis.")
    sock = os.path.join(root, "redis.sock")
    args = [
        REDIS_SERVER, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
        "--dir", root, "--save", "", "--appendonly", "no", "--daemonize", "no",
        "--databases", "16", "--maxclients", "1000",
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    seen: list[bytes] = []
    for line in process.stdout:  # blocks on the server's log, line by line
        seen.append(line)
        if b"ready to accept connections" in line.lower():
            return RedisServer(process, root, sock)
        if time.monotonic() > deadline:
            break
    process.kill()
    process.wait()
    shutil.rmtree(root, ignore_errors=True)
    raise RedisUnavailable("redis-server did not start: " + b"".join(seen[-5:]).decode())
