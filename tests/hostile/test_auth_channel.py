"""security.md §3: no credentials in the clear; ``start_tls=True`` means required.

The non-loopback case runs in a network namespace this test creates: the server listens on
the TEST-NET address 192.0.2.1 of the namespace's own loopback device (see
``_netns_scenario.py``); nothing touches a real external address.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fastsmtp import SMTP
from fastsmtp.errors import SMTPException, SMTPResponseException
from tests._servers import RecordingServer, ServerConfig
from tests.hostile.kit import (
    Expect,
    HostileServer,
    StartTLS,
    TLSFiles,
    ehlo_reply,
    reply,
)

REPO = Path(__file__).resolve().parents[2]
REFUSAL = (
    "Refusing to send credentials over an unencrypted connection to a remote server. Use TLS "
    "(use_tls=True or start_tls=True), or pass allow_insecure_auth=True if this channel is "
    "trusted."
)
USERS = {"alice": "s3cret"}


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def netns_results(request: pytest.FixtureRequest) -> dict[str, Any]:
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace needs root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 ('ip') is not installed")
    name = f"fastsmtp-test-{secrets.token_hex(4)}"
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace: {exc.stderr.decode().strip()}")
    try:
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        _ip("netns", "exec", name, "ip", "addr", "add", "192.0.2.1/32", "dev", "lo")
        env = dict(os.environ, FASTSMTP_TEST_LOOP=request.config.getoption("--event-loop"))
        proc = subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, "-m", "tests.hostile._netns_scenario"],
            cwd=REPO,
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        results: dict[str, Any] = json.loads(proc.stdout)
        return results
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=10)


def test_non_loopback_plaintext_auth_is_refused_before_any_auth_line(
    netns_results: dict[str, Any],
) -> None:
    for case in ("login", "each_mechanism"):
        result = netns_results[case]
        assert result["error"] == ["SMTPException", REFUSAL], case
        assert result["plain"] == "EHLO client.test\r\nQUIT\r\n", case
        assert result["script_errors"] == [], case
    # send(username=...) fails inside connect(): the connection is closed without QUIT.
    assert netns_results["send"]["error"] == ["SMTPException", REFUSAL]
    assert netns_results["send"]["plain"] == "EHLO client.test\r\n"
    oauth = netns_results["oauth"]
    assert oauth["error"] == ["SMTPException", REFUSAL]
    assert oauth["plain"] == "EHLO client.test\r\n"
    # OAUTHBEARER (preferred when offered): refused before the token is even fetched.
    bearer = netns_results["oauthbearer"]
    assert bearer["error"] == ["SMTPException", REFUSAL]
    assert bearer["plain"] == "EHLO client.test\r\n"
    assert bearer["token_calls"] == 0


def test_non_loopback_allow_insecure_auth_sends_credentials(
    netns_results: dict[str, Any],
) -> None:
    result = netns_results["insecure_allowed"]
    assert result["error"] is None
    assert result["script_errors"] == []
    lines = result["plain"].split("\r\n")
    assert lines[:2] == ["EHLO client.test", "AUTH CRAM-MD5"]
    assert lines[3:] == ["QUIT", ""]


def test_non_loopback_auth_over_starttls_succeeds(netns_results: dict[str, Any]) -> None:
    result = netns_results["starttls"]
    assert result["error"] is None
    assert result["script_errors"] == []
    assert result["plain"] == "EHLO client.test\r\nSTARTTLS\r\n"
    assert result["tls"].startswith("EHLO client.test\r\nAUTH PLAIN ")
    assert result["tls"].endswith("\r\nQUIT\r\n")


# -- local channels: allowed without TLS -------------------------------------------------------


async def test_loopback_plaintext_auth_succeeds() -> None:
    server = RecordingServer(ServerConfig(auth_mechanisms=("PLAIN", "LOGIN"), users=USERS))
    with server:
        async with SMTP(hostname="127.0.0.1", port=server.port, start_tls=False) as client:
            assert (await client.login("alice", "s3cret")).code == 235
        await server.wait_all_closed()
    assert [a.success for a in server.auth_attempts] == [True]
    assert server.connections[0].commands[1].verb == "AUTH"
    assert not server.connections[0].commands[1].tls


async def test_unix_socket_plaintext_auth_succeeds(tmp_path: Path) -> None:
    config = ServerConfig(auth_mechanisms=("PLAIN",), users=USERS)
    with RecordingServer(config, unix_path=tmp_path / "s.sock") as server:
        async with SMTP(socket_path=tmp_path / "s.sock", start_tls=False) as client:
            assert (await client.login("alice", "s3cret")).code == 235
        await server.wait_all_closed()
    assert [a.success for a in server.auth_attempts] == [True]


# -- start_tls=True means required -------------------------------------------------------------


async def test_required_starttls_not_offered_raises_and_sends_nothing_more() -> None:
    script = [Expect(b"EHLO"), ehlo_reply("AUTH PLAIN", "SIZE 100")]
    async with HostileServer(script) as server:
        client = SMTP(
            hostname="127.0.0.1",
            port=server.port,
            start_tls=True,
            username="alice",
            password="s3cret",
            local_hostname="client.test",
            timeout=3,
        )
        with pytest.raises(SMTPException) as info:
            await client.connect()
        await server.finished()
    assert info.value.message == "SMTP STARTTLS extension not supported by server."
    assert not client.is_connected
    assert bytes(server.conn.plain) == b"EHLO client.test\r\n"


@pytest.mark.parametrize("answer", ["454 4.7.0 TLS not available", "250 sure", "502 no"])
async def test_required_starttls_refused_raises_and_sends_nothing_more(answer: str) -> None:
    script = [
        Expect(b"EHLO"),
        ehlo_reply("STARTTLS", "AUTH PLAIN"),
        Expect(b"STARTTLS"),
        reply(answer),
    ]
    async with HostileServer(script) as server:
        client = SMTP(
            hostname="127.0.0.1",
            port=server.port,
            start_tls=True,
            username="alice",
            password="s3cret",
            local_hostname="client.test",
            timeout=3,
        )
        with pytest.raises(SMTPResponseException) as info:
            await client.connect()
        await server.finished()
    code, _, text = answer.partition(" ")
    assert (info.value.code, info.value.message) == (int(code), text)
    assert not client.is_connected
    assert bytes(server.conn.plain) == b"EHLO client.test\r\nSTARTTLS\r\n"


async def test_mechanisms_come_only_from_the_post_tls_ehlo(pki: TLSFiles) -> None:
    # Plaintext EHLO offers PLAIN; the TLS one offers none: login must not try PLAIN.
    script = [
        Expect(b"EHLO"),
        ehlo_reply("STARTTLS", "AUTH PLAIN LOGIN"),
        Expect(b"STARTTLS"),
        reply("220 go"),
        StartTLS(pki.good),
        Expect(b"EHLO"),
        ehlo_reply("SIZE 100"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with HostileServer(script) as server:
        client = SMTP(
            hostname="127.0.0.1",
            port=server.port,
            start_tls=True,
            tls_context=pki.client_context(),
            local_hostname="client.test",
            timeout=3,
        )
        async with client:
            with pytest.raises(SMTPException) as info:
                await client.login("alice", "s3cret")
        await server.finished()
    assert info.value.message == "The SMTP AUTH extension is not supported by this server."
    assert bytes(server.conn.tls) == b"EHLO client.test\r\nQUIT\r\n"
