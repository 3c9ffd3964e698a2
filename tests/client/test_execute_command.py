"""Every command sent on its own goes through ``SMTP.execute_command``, as in aiosmtplib.

A common way to trace or test aiosmtplib code is a subclass that overrides the public
``execute_command``; these tests run the same subclass over fastsmtp and over aiosmtplib
against the same aiosmtpd server and compare what each saw, then check that a subclass can
answer a command itself. A pipelined ``sendmail`` and BDAT chunks are written directly
(documented in ``fastsmtp.smtp``); that is checked too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiosmtplib
import pytest

import fastsmtp
from fastsmtp import SMTPResponse
from tests._servers import RecordingServer
from tests.client.conftest import SmtpdFactory, TLSMaterial

RAW = b"Subject: traced\r\n\r\nbody\r\n"
USERS = {"alice": "s3cret"}


def tracing(base: type[Any]) -> type[Any]:
    """A subclass of ``base`` (either library's SMTP) that records every command's args."""

    class Tracing(base):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.seen: list[tuple[bytes, ...]] = []

        async def execute_command(self, *args: bytes, **kwargs: Any) -> Any:
            self.seen.append(args)
            return await super().execute_command(*args, **kwargs)

    return Tracing


Scenario = Callable[[Any], Awaitable[None]]


async def run(library: Any, server: RecordingServer, scenario: Scenario, **kwargs: Any) -> Any:
    client = tracing(library.SMTP)(hostname=server.host, port=server.port, timeout=5, **kwargs)
    await client.connect()
    try:
        await scenario(client)
    finally:
        if client.is_connected:
            await client.quit()
    return client


async def commands(client: Any) -> None:
    await client.ehlo()
    await client.noop()
    await client.rset()
    await client.help()
    await client.vrfy("alice@example.com")
    await client.mail("a@example.com")
    await client.rcpt("b@example.com")
    await client.data(RAW)
    # aiosmtpd offers no PIPELINING: sendmail goes in lockstep, command by command.
    await client.sendmail("a@example.com", ["b@example.com", "c@example.com"], RAW)


async def test_single_commands_match_aiosmtplib(smtpd_factory: SmtpdFactory) -> None:
    server = smtpd_factory()
    theirs = await run(aiosmtplib, server, commands, start_tls=False)
    ours = await run(fastsmtp, server, commands, start_tls=False)
    # aiosmtplib writes DATA from its protocol; fastsmtp routes it through too (a 354
    # that did not come from the server never lets a body go: see below).
    assert [args for args in ours.seen if args != (b"DATA",)] == theirs.seen
    assert ours.seen.count((b"DATA",)) == 2
    assert server.connections[0].raw == server.connections[1].raw
    verbs = [args[0] for args in ours.seen]
    assert verbs[:8] == [b"EHLO", b"NOOP", b"RSET", b"HELP", b"VRFY", b"MAIL", b"RCPT", b"DATA"]
    assert verbs[-1] == b"QUIT"
    assert ours.seen[-5:-1] == [
        (b"MAIL", b"FROM:<a@example.com>", b"size=25"),
        (b"RCPT", b"TO:<b@example.com>"),
        (b"RCPT", b"TO:<c@example.com>"),
        (b"DATA",),
    ]
    assert len(server.messages) == 4


async def test_helo_matches_aiosmtplib(smtpd: RecordingServer) -> None:
    async def helo(client: Any) -> None:
        await client.helo()
        await client.helo(hostname="client.example")

    theirs = await run(aiosmtplib, smtpd, helo, start_tls=False)
    ours = await run(fastsmtp, smtpd, helo, start_tls=False)
    assert ours.seen == theirs.seen
    assert ours.seen[1] == (b"HELO", b"client.example")


@pytest.mark.parametrize("method", ["auth_plain", "auth_login", "login"])
async def test_auth_lines_match_aiosmtplib(smtpd_factory: SmtpdFactory, method: str) -> None:
    server = smtpd_factory(auth_mechanisms=("PLAIN", "LOGIN"), users=USERS)

    async def authenticate(client: Any) -> None:
        await client.ehlo()
        response = await getattr(client, method)("alice", "s3cret")
        assert response.code == 235

    theirs = await run(aiosmtplib, server, authenticate, start_tls=False)
    ours = await run(fastsmtp, server, authenticate, start_tls=False)
    assert ours.seen == theirs.seen
    assert [args[:2] for args in ours.seen if args[0] == b"AUTH"] != []
    assert [a.success for a in server.auth_attempts] == [True, True]


async def test_xoauth2_error_challenge_answer_goes_through(smtpd_factory: SmtpdFactory) -> None:
    """The empty line that answers an XOAUTH2 error challenge is a command like any other."""
    server = smtpd_factory(auth_mechanisms=("XOAUTH2",), oauth_tokens={"alice": "good"})

    async def authenticate(client: Any) -> None:
        await client.ehlo()
        with pytest.raises(Exception) as info:
            await client.auth_xoauth2("alice", "bad")
        assert info.value.code == 535  # type: ignore[attr-defined]

    theirs = await run(aiosmtplib, server, authenticate, start_tls=False)
    ours = await run(fastsmtp, server, authenticate, start_tls=False)
    assert ours.seen == theirs.seen
    assert (b"",) in ours.seen or [a[0] for a in ours.seen].count(b"AUTH") == 1


async def test_starttls_goes_through(smtpd_factory: SmtpdFactory, tls: TLSMaterial) -> None:
    server = smtpd_factory(starttls_context=tls.server_context())
    context = tls.client_context()

    async def nothing(client: Any) -> None:
        await client.noop()

    theirs = await run(aiosmtplib, server, nothing, start_tls=True, tls_context=context)
    ours = await run(fastsmtp, server, nothing, start_tls=True, tls_context=context)
    # aiosmtplib writes STARTTLS from its protocol; fastsmtp routes it through too.
    assert ours.seen == [
        *theirs.seen[:1],
        (b"STARTTLS",),
        *theirs.seen[1:],
    ]
    assert server.connections[0].raw_lines == server.connections[1].raw_lines


async def test_a_subclass_can_answer_commands(smtpd: RecordingServer) -> None:
    """A test double answers RCPT for one address itself: that recipient is refused as if
    the server had refused it, and nothing about it reaches the server."""

    class Blocking(fastsmtp.SMTP):
        async def execute_command(self, *args: bytes, **kwargs: Any) -> SMTPResponse:
            if args == (b"RCPT", b"TO:<blocked@example.com>"):
                return SMTPResponse(550, "5.7.1 blocked by the test double")
            if args == (b"NOOP",):
                return SMTPResponse(250, "scripted")
            return await super().execute_command(*args, **kwargs)

    async with Blocking(hostname=smtpd.host, port=smtpd.port, timeout=5, start_tls=False) as c:
        assert (await c.noop()).message == "scripted"
        refused, _ = await c.sendmail(
            "a@example.com", ["ok@example.com", "blocked@example.com"], RAW
        )
    assert refused == {"blocked@example.com": SMTPResponse(550, "5.7.1 blocked by the test double")}
    assert [m.rcpt_tos for m in smtpd.messages] == [["ok@example.com"]]
    assert "NOOP" not in smtpd.verbs
    assert b"blocked" not in bytes(smtpd.connections[0].raw)


async def test_pipelined_sendmail_is_written_directly(smtpd_factory: SmtpdFactory) -> None:
    """Documented: one write for MAIL, every RCPT and DATA does not pass through it."""
    server = smtpd_factory(extra_ehlo=("PIPELINING",))
    client = await run(
        fastsmtp,
        server,
        lambda c: c.sendmail("a@example.com", ["b@example.com"], RAW),
        start_tls=False,
    )
    assert [args[0] for args in client.seen] == [b"EHLO", b"QUIT"]
    assert server.verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert len(server.messages) == 1


async def test_cancelled_auth_step_in_a_subclass_aborts(smtpd_factory: SmtpdFactory) -> None:
    """An override that fails between AUTH lines leaves the server mid-exchange: the
    connection is aborted (the session's rule), never reused for the next command."""
    server = smtpd_factory(auth_mechanisms=("LOGIN",), users=USERS)

    class Failing(fastsmtp.SMTP):
        async def execute_command(self, *args: bytes, **kwargs: Any) -> SMTPResponse:
            if self.after_auth:
                self.after_auth = False
                raise RuntimeError("the double gave up")
            self.after_auth = args[0] == b"AUTH"
            return await super().execute_command(*args, **kwargs)

        after_auth = False

    client = Failing(hostname=server.host, port=server.port, timeout=5, start_tls=False)
    await client.connect()
    await client.ehlo()
    with pytest.raises(RuntimeError):
        await client.auth_login("alice", "s3cret")
    assert not client.is_connected
    with pytest.raises(fastsmtp.SMTPServerDisconnected):
        await client.noop()
    await server.wait_all_closed()
    assert server.verbs == ["EHLO", "AUTH"]


@pytest.mark.parametrize("how", ["data", "sendmail"])
async def test_a_made_up_354_never_lets_the_body_go(smtpd: RecordingServer, how: str) -> None:
    """A double that answers DATA with 354 itself: the server never said so, so the body
    (whose lines it would read as commands) is not written."""

    class Eager(fastsmtp.SMTP):
        async def execute_command(self, *args: bytes, **kwargs: Any) -> SMTPResponse:
            if args == (b"DATA",):
                return SMTPResponse(354, "go ahead (made up)")
            return await super().execute_command(*args, **kwargs)

    body = b"Subject: x\r\n\r\nRSET\r\nMAIL FROM:<evil@example.com>\r\n"
    async with Eager(hostname=smtpd.host, port=smtpd.port, timeout=5, start_tls=False) as c:
        with pytest.raises(fastsmtp.SMTPException, match="body was not sent"):
            if how == "data":
                await c.ehlo()
                await c.mail("a@example.com")
                await c.rcpt("b@example.com")
                await c.data(body)
            else:
                await c.sendmail("a@example.com", ["b@example.com"], body)
    assert b"evil" not in bytes(smtpd.connections[0].raw)
    assert smtpd.messages == []
