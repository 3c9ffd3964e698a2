"""Real proxy daemons from Debian packages, each started in the foreground on 127.0.0.1 with
its own configuration in a private directory (never the machine's configuration, never as a
system service), and stopped again by the fixture that started it.

* ``danted`` (dante-server): SOCKS 5 and SOCKS 4 without authentication;
* ``microsocks``: SOCKS 5 with or without username/password (RFC 1929);
* ``tinyproxy``: HTTP CONNECT, with or without basic authentication, to allowed ports only.

A daemon that is not installed raises :class:`DaemonUnavailable` (the fixtures turn that into
a skip locally, a failure in CI).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DaemonUnavailable", "ProxyDaemon", "free_port", "start_danted", "start_microsocks"]

#: How long a daemon may take to accept connections after it was started.
READY_WITHIN = 10.0


class DaemonUnavailable(Exception):
    """The daemon's program is missing or it did not start."""


@dataclass
class ProxyDaemon:
    """A running proxy daemon: where it listens, its log, how to stop it."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    user: str | None = None
    password: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def url(self, scheme: str, *, user: str | None = None, password: str | None = None) -> str:
        user = self.user if user is None else user
        password = self.password if password is None else password
        credentials = f"{user}:{password}@" if user is not None else ""
        return f"{scheme}://{credentials}127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS just handed out (free when this returns)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _program(name: str, *candidates: str) -> str:
    for candidate in (*candidates, name):
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    raise DaemonUnavailable(f"{name} is not installed (Debian package: {_PACKAGES[name]})")


_PACKAGES = {"danted": "dante-server", "microsocks": "microsocks", "tinyproxy": "tinyproxy"}


def _start(name: str, argv: list[str], port: int, log_path: Path, cwd: Path) -> ProxyDaemon:
    """Start ``argv`` and wait (bounded, by connecting) until it accepts on ``port``."""
    out = (cwd / f"{name}.out").open("wb")
    try:
        process = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    finally:
        out.close()
    daemon = ProxyDaemon(name, port, process, log_path)
    deadline = time.monotonic() + READY_WITHIN
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return daemon
        except OSError:
            pass
        try:
            # Waiting on the process doubles as the pause between two connection tries,
            # and notices at once when it exited instead of listening.
            code = process.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None or time.monotonic() > deadline:
            daemon.stop()
            output = (cwd / f"{name}.out").read_text(errors="replace")[-2000:]
            why = f"exited with {code}" if code is not None else "is not listening"
            raise DaemonUnavailable(f"{name} {why}: {output}{daemon.log()[-2000:]}")


def start_danted(directory: Path) -> ProxyDaemon:
    """Dante: SOCKS 5 and SOCKS 4, no authentication, to 127.0.0.1 only."""
    program = _program("danted", "/usr/sbin/danted")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = directory / "danted.log"
    config = directory / "danted.conf"
    config.write_text(
        f"logoutput: {log_path}\n"
        f"internal: 127.0.0.1 port = {port}\n"
        "external: 127.0.0.1\n"
        "clientmethod: none\n"
        "socksmethod: none\n"
        "user.privileged: root\n"
        "user.unprivileged: nobody\n"
        "client pass {\n  from: 127.0.0.0/8 to: 0.0.0.0/0\n  log: connect error\n}\n"
        "socks pass {\n  from: 127.0.0.0/8 to: 127.0.0.0/8\n  command: connect\n"
        "  log: connect error\n}\n"
    )
    argv = [program, "-f", str(config), "-p", str(directory / "danted.pid"), "-N", "1"]
    return _start("danted", argv, port, log_path, directory)


def start_microsocks(
    directory: Path, user: str | None = None, password: str | None = None
) -> ProxyDaemon:
    """microsocks: SOCKS 5, with username/password authentication when given."""
    program = _program("microsocks", "/usr/bin/microsocks")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [program, "-i", "127.0.0.1", "-p", str(port), "-b", "127.0.0.1"]
    if user is not None and password is not None:
        argv += ["-u", user, "-P", password]
    daemon = _start("microsocks", argv, port, directory / "microsocks.out", directory)
    daemon.user, daemon.password = user, password
    return daemon


def start_tinyproxy(
    directory: Path, connect_port: int, user: str | None = None, password: str | None = None
) -> ProxyDaemon:
    """tinyproxy: HTTP CONNECT to ``connect_port`` only, with basic auth when given."""
    program = _program("tinyproxy", "/usr/bin/tinyproxy")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = directory / "tinyproxy.log"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Bind 127.0.0.1",
        "Timeout 30",
        "MaxClients 20",
        "Allow 127.0.0.1",
        f"ConnectPort {connect_port}",
        "DisableViaHeader Yes",
        f'LogFile "{log_path}"',
        "LogLevel Info",
        f'PidFile "{directory / "tinyproxy.pid"}"',
    ]
    if user is not None and password is not None:
        lines.append(f"BasicAuth {user} {password}")
    config = directory / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    daemon = _start("tinyproxy", [program, "-d", "-c", str(config)], port, log_path, directory)
    daemon.user, daemon.password = user, password
    return daemon
