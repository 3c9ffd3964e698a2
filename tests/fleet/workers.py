"""Worker processes for the fleet tests: real ``celery worker`` and ``taskiq worker``.

Each is started with its own environment, its output read by a thread (kept for the
failure report; the worker is ready when it says so), and stopped - or killed with
SIGKILL by the test - by its process id.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

__all__ = ["Worker", "start_celery_worker", "start_taskiq_worker"]

ROOT = Path(__file__).resolve().parents[2]  # the repository: `tests` is importable from it


class Worker:
    """One worker process; ``ready`` is set when its output says it is."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], ready_text: str) -> None:
        self.name = name
        self.tail: collections.deque[str] = collections.deque(maxlen=200)
        self.ready = threading.Event()
        self._ready_text = ready_text
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a SIGKILL of the test's never reaches the test
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.tail.append(line.rstrip())
            if self._ready_text in line:
                self.ready.set()
        self.ready.set()  # it ended: whoever waits looks at the process

    def wait_ready(self, timeout: float = 60) -> None:
        if not self.ready.wait(timeout) or self.process.poll() is not None:
            raise RuntimeError(f"worker {self.name} did not start:\n" + self.log())

    def log(self) -> str:
        return "\n".join(self.tail)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no acknowledgement, connections cut mid-flight."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._reader.join(10)

    def stop(self, timeout: float = 30) -> None:
        """A warm shutdown (SIGTERM); SIGKILL if it does not end in ``timeout``."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_celery_worker(name: str, env: dict[str, str], concurrency: int = 8) -> Worker:
    args = [
        sys.executable, "-m", "celery", "-A", "tests.fleet.celery_app", "worker",
        "--pool", "threads", "--concurrency", str(concurrency), "--hostname", f"{name}@fleet",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO",
    ]  # fmt: skip
    return Worker(name, args, env, ready_text=" ready.")


def start_taskiq_worker(name: str, env: dict[str, str]) -> Worker:
    args = [
        sys.executable, "-m", "taskiq", "worker", "tests.fleet.taskiq_app:broker",
        "--workers", "1", "--log-level", "INFO", "--ack-type", "when_saved",
    ]  # fmt: skip
    return Worker(name, args, env, ready_text="Listening started")
