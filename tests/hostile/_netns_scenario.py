"""The non-loopback half of security.md §3, run inside a test network namespace.

``test_auth_channel.py`` creates a namespace whose own loopback device carries the TEST-NET
address ``192.0.2.1`` and runs ``python -m tests.hostile._netns_scenario`` in it with
``ip netns exec``. Every server here listens on 192.0.2.1 (a non-loopback address that exists
only in that namespace), every client connects to it; the results go to stdout as JSON.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import sys
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

import trustme

from fastsmtp import SMTP, send
from fastsmtp.errors import SMTPException
from tests.hostile.kit import Expect, HostileServer, StartTLS, ehlo_reply, reply

ADDRESS = "192.0.2.1"
AUTH_EHLO = ehlo_reply("AUTH PLAIN LOGIN CRAM-MD5")
QUIT = [Expect(b"QUIT"), reply("221 bye")]
CHALLENGE = base64.b64encode(b"<1896.697170952@hostile.test>").decode()


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@example.com"
    msg["To"] = "bob@example.com"
    msg["Subject"] = "hi"
    msg.set_content("hello")
    return msg


async def run_case(script: list[Any], action: Callable[[int], Awaitable[object]]) -> dict[str, Any]:
    async with HostileServer(script, host=ADDRESS) as server:
        error: list[str] | None = None
        try:
            await action(server.port)
        except (SMTPException, OSError, ValueError) as exc:
            error = [type(exc).__name__, str(exc)]
        await server.finished()
        conn = server.conn
        return {
            "error": error,
            "plain": bytes(conn.plain).decode("latin-1"),
            "tls": bytes(conn.tls).decode("latin-1"),
            "script_errors": conn.errors,
        }


async def main() -> dict[str, Any]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(ADDRESS).configure_cert(server_ctx)
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_ctx)
    results: dict[str, Any] = {}

    def client(port: int, **kwargs: Any) -> SMTP:
        return SMTP(hostname=ADDRESS, port=port, local_hostname="client.test", timeout=5, **kwargs)

    async def login(port: int) -> None:
        smtp = client(port, start_tls=False)
        async with smtp:
            assert smtp.get_transport_info("peername")[0] == ADDRESS
            await smtp.login("alice", "s3cret")

    results["login"] = await run_case([Expect(b"EHLO"), AUTH_EHLO, *QUIT], login)

    async def each_mechanism(port: int) -> None:
        smtp = client(port, start_tls=False)
        async with smtp:
            await smtp.ehlo()
            for method in (
                smtp.auth_plain,
                smtp.auth_login,
                smtp.auth_crammd5,
                smtp.auth_scramsha256,
                smtp.auth_scramsha1,
                smtp.auth_oauthbearer,
            ):
                try:
                    await method("alice", "s3cret")
                except SMTPException as exc:
                    assert "Refusing to send credentials" in exc.message, exc
                else:
                    raise AssertionError(f"{method.__name__} did not refuse")
            await smtp.auth_xoauth2("alice", "tok-123")

    results["each_mechanism"] = await run_case(
        [
            Expect(b"EHLO"),
            ehlo_reply(
                "AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER SCRAM-SHA-1 SCRAM-SHA-256 "
                "SCRAM-SHA-256-PLUS"
            ),
            *QUIT,
        ],
        each_mechanism,
    )

    async def send_with_username(port: int) -> None:
        await send(
            message(),
            hostname=ADDRESS,
            port=port,
            username="alice",
            password="s3cret",
            local_hostname="client.test",
            timeout=5,
        )

    results["send"] = await run_case([Expect(b"EHLO"), AUTH_EHLO], send_with_username)

    async def oauth(port: int) -> None:
        async def token() -> str:
            return "tok-123"

        smtp = client(port, start_tls=False, username="alice", oauth_token_generator=token)
        await smtp.connect()
        smtp.close()

    results["oauth"] = await run_case([Expect(b"EHLO"), ehlo_reply("AUTH XOAUTH2")], oauth)

    token_calls: list[int] = []

    async def oauthbearer(port: int) -> None:
        async def token() -> str:
            token_calls.append(1)
            return "tok-123"

        smtp = client(port, start_tls=False, username="alice", oauth_token_generator=token)
        await smtp.connect()
        smtp.close()

    results["oauthbearer"] = await run_case(
        [Expect(b"EHLO"), ehlo_reply("AUTH OAUTHBEARER XOAUTH2")], oauthbearer
    )
    results["oauthbearer"]["token_calls"] = len(token_calls)

    async def insecure_allowed(port: int) -> None:
        smtp = client(port, start_tls=False, allow_insecure_auth=True)
        async with smtp:
            response = await smtp.login("alice", "s3cret")
            assert response.code == 235

    results["insecure_allowed"] = await run_case(
        [
            Expect(b"EHLO"),
            AUTH_EHLO,
            Expect(b"AUTH CRAM-MD5"),
            reply(f"334 {CHALLENGE}"),
            Expect(b""),
            reply("235 2.7.0 ok"),
            Expect(b"QUIT"),
            reply("221 bye"),
        ],
        insecure_allowed,
    )

    async def over_starttls(port: int) -> None:
        smtp = client(port, start_tls=True, tls_context=client_ctx)
        async with smtp:
            response = await smtp.login("alice", "s3cret")
            assert response.code == 235

    results["starttls"] = await run_case(
        [
            Expect(b"EHLO"),
            ehlo_reply("STARTTLS"),
            Expect(b"STARTTLS"),
            reply("220 go"),
            StartTLS(server_ctx),
            Expect(b"EHLO"),
            ehlo_reply("AUTH PLAIN"),
            Expect(b"AUTH PLAIN"),
            reply("235 2.7.0 ok"),
            Expect(b"QUIT"),
            reply("221 bye"),
        ],
        over_starttls,
    )
    return results


if __name__ == "__main__":
    if os.environ.get("FASTSMTP_TEST_LOOP") == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        json.dump(loop.run_until_complete(main()), sys.stdout)
    finally:
        loop.close()
