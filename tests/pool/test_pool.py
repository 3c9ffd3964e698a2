"""SMTPPool end to end: limits, reuse, replacement, retries, rate limits, closing.

Faults come from :mod:`tests.pool.server` (a reactive server in the test's loop) and
aiosmtpd (:class:`tests._servers.RecordingServer`). Every check is on what the server
saw (connections, commands, Message-IDs accepted) and on the results returned.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import pytest

import fastsmtp
from fastsmtp import (
    SMTP,
    SMTPPool,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from fastsmtp.results import SendStatus, parse_enhanced_status
from tests._servers import RecordingServer
from tests.client.conftest import (  # noqa: F401  (fixtures)
    _collect_garbage,
    auth_smtpd,
    smtpd,
    smtpd_factory,
)
from tests.pool.server import CLOSE, SILENT, PoolServer, Session

FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "local_hostname": "client.test"}


def message(i: int, *, to: str = "rcpt@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "sender@example.com"
    msg["To"] = to
    msg["Subject"] = f"message {i}"
    msg["Message-ID"] = f"<m{i}@pool.test>"
    msg.set_content(f"body {i}\n")
    return msg


def raw(i: int) -> bytes:
    return f"Message-ID: <r{i}@pool.test>\r\nSubject: {i}\r\n\r\nbody {i}\r\n".encode()


def pool_for(server: PoolServer | RecordingServer, **options: object) -> SMTPPool:
    kwargs: dict[str, object] = {**FAST, **options}
    return SMTPPool(hostname="127.0.0.1", port=server.port, **kwargs)  # type: ignore[arg-type]


def assert_once(server: PoolServer, ids: list[str]) -> None:
    delivered = server.delivered()
    assert sorted(delivered) == sorted(ids)
    assert set(delivered.values()) == {1}, "a message was delivered twice"


# -- the surface ----------------------------------------------------------------------


def test_importable_from_top_level_but_not_in_all() -> None:
    assert fastsmtp.SMTPPool is SMTPPool
    assert fastsmtp.SendResult is fastsmtp.results.SendResult
    assert fastsmtp.SendStatus is SendStatus
    for name in ("SMTPPool", "SendResult", "SendStatus", "RecipientRefusal"):
        assert name not in fastsmtp.__all__
        assert name in fastsmtp.pool.__all__


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("4.7.0 Too many login attempts", "4.7.0"),
        ("5.1.1 <x@y> no such user", "5.1.1"),
        ("2.0.0", "2.0.0"),
        ("4.123.456 long", "4.123.456"),
        ("no code here", None),
        ("3.1.1 wrong class", None),
        ("4.1.1234 too long", None),
        ("4.01.1 leading zero", None),
        ("4.1.1x glued", None),
    ],
)
def test_enhanced_status_grammar(text: str, code: str | None) -> None:
    assert parse_enhanced_status(text) == code


# -- limits and reuse -----------------------------------------------------------------


async def test_never_more_connections_than_the_limit_and_reused() -> None:
    async with PoolServer() as server:
        async with pool_for(server, max_connections=3) as pool:
            results = await pool.send_many((message(i) for i in range(60)), concurrency=10)
            # Plain sendmail calls from many tasks are bounded the same way.
            await asyncio.gather(
                *(pool.sendmail("a@example.com", ["b@example.com"], raw(i)) for i in range(30))
            )
        assert [r.status for r in results] == [SendStatus.SENT] * 60
        assert all(r.attempts == 1 and r.accepted == ["rcpt@example.com"] for r in results)
        assert server.max_live <= 3
        assert len(server.sessions) == 3  # opened lazily, then reused
        assert all(s.quit for s in server.sessions)  # closing the pool QUITs every one
        assert_once(
            server,
            [f"<m{i}@pool.test>" for i in range(60)] + [f"<r{i}@pool.test>" for i in range(30)],
        )


async def test_lazy_opening() -> None:
    async with PoolServer() as server:
        async with pool_for(server, max_connections=5) as pool:
            assert pool.connection_count == 0
            await pool.sendmail("a@example.com", "b@example.com", raw(0))
            await pool.sendmail("a@example.com", "b@example.com", raw(1))
            assert pool.connection_count == 1
        assert len(server.sessions) == 1
        assert pool.is_closed


async def test_max_messages_per_connection_reconnects() -> None:
    async with PoolServer() as server:
        async with pool_for(server, max_connections=1, max_messages_per_connection=5) as pool:
            results = await pool.send_many(message(i) for i in range(12))
        assert all(r.status is SendStatus.SENT for r in results)
        assert len(server.sessions) == 3
        assert [s.verbs.count("MAIL") for s in server.sessions] == [5, 5, 2]
        assert all(s.quit for s in server.sessions)
        assert_once(server, [f"<m{i}@pool.test>" for i in range(12)])


async def test_max_connection_age_reconnects() -> None:
    async with PoolServer() as server:
        async with pool_for(server, max_connections=1, max_connection_age=0) as pool:
            for i in range(3):
                await pool.send_message(message(i))
        assert len(server.sessions) == 3
        assert all(s.verbs.count("MAIL") == 1 and s.quit for s in server.sessions)


async def test_idle_connection_checked_with_noop_before_reuse() -> None:
    async with PoolServer() as server:
        async with pool_for(server, max_connections=1, idle_check_after=0) as pool:
            for i in range(3):
                await pool.send_message(message(i))
        (session,) = server.sessions
        verbs = [v for v in session.verbs if v in ("MAIL", "NOOP")]
        assert verbs == ["MAIL", "NOOP", "MAIL", "NOOP", "MAIL"]


async def test_idle_connection_failing_noop_is_replaced() -> None:
    class Server(PoolServer):
        def reply_noop(self, session: Session) -> str:
            return "421 4.4.2 idle too long"

    async with Server() as server:
        async with pool_for(server, max_connections=1, idle_check_after=0) as pool:
            for i in range(3):
                await pool.send_message(message(i))
        assert len(server.sessions) == 3
        assert_once(server, [f"<m{i}@pool.test>" for i in range(3)])


async def test_idle_timeout_closes_instead_of_reusing() -> None:
    async with PoolServer() as server:
        async with pool_for(server, max_connections=1, idle_timeout=0) as pool:
            for i in range(2):
                await pool.send_message(message(i))
        assert len(server.sessions) == 2
        assert all(s.quit for s in server.sessions)


async def test_new_connections_log_in_again(auth_smtpd: RecordingServer) -> None:  # noqa: F811
    async with pool_for(
        auth_smtpd,
        username="alice",
        password="s3cret",
        max_connections=2,
        max_messages_per_connection=2,
    ) as pool:
        results = await pool.send_many(
            (raw(i), "a@example.com", ["b@example.com"]) for i in range(7)
        )
    assert all(r.status is SendStatus.SENT for r in results)
    connections = auth_smtpd.connections
    assert len(connections) >= 4
    for conn in connections:
        verbs = conn.verbs
        assert verbs.count("AUTH") == 1
        assert verbs.index("AUTH") < verbs.index("MAIL")
    assert len(auth_smtpd.messages) == 7


# -- the same results as SMTP -----------------------------------------------------------


async def test_sendmail_and_send_message_match_smtp(smtpd_factory) -> None:  # noqa: F811
    server = smtpd_factory(refuse_recipients={"bad@example.com": "550 5.1.1 no such user"})
    recipients = ["good@example.com", "bad@example.com"]
    async with SMTP(hostname="127.0.0.1", port=server.port) as client:
        expected = await client.sendmail("a@example.com", recipients, raw(0))
        expected_message = await client.send_message(message(1, to=", ".join(recipients)))
        with pytest.raises(SMTPRecipientsRefused) as direct:
            await client.sendmail("a@example.com", ["bad@example.com"], raw(2))
    async with pool_for(server) as pool:
        assert await pool.sendmail("a@example.com", recipients, raw(0)) == expected
        assert await pool.send_message(message(1, to=", ".join(recipients))) == expected_message
        with pytest.raises(SMTPRecipientsRefused) as pooled:
            await pool.sendmail("a@example.com", ["bad@example.com"], raw(2))
    assert pooled.value.args[0][0].args == direct.value.args[0][0].args
    assert len(server.messages) == 4


async def test_sender_refused_raises_like_smtp(smtpd_factory) -> None:  # noqa: F811
    server = smtpd_factory(refuse_senders={"no@example.com": "553 5.7.1 not yours"})
    async with pool_for(server) as pool:
        with pytest.raises(SMTPSenderRefused) as info:
            await pool.sendmail("no@example.com", ["b@example.com"], raw(0))
        (result,) = await pool.send_many([(raw(1), "no@example.com", "b@example.com")])
    assert info.value.code == 553
    assert result.status is SendStatus.FAILED_PERMANENTLY
    assert result.attempts == 1
    assert result.reply is not None and result.reply.code == 553


# -- faults: every message delivered exactly once, or reported ----------------------------


async def test_server_dropping_every_third_connection() -> None:
    class Server(PoolServer):
        def reply_mail(self, session: Session, message: int) -> str:
            return CLOSE if session.index % 3 == 2 else "250 2.1.0 ok"

    options = {"max_connections": 4, "max_messages_per_connection": 3, "max_attempts": 5}
    async with Server() as server, pool_for(server, **options) as pool:
        results = await pool.send_many((message(i) for i in range(40)), concurrency=8)
    # Every message is delivered exactly once or reported (issue 7): a message that
    # kept landing on dropped connections runs out of attempts and says so.
    sent = [i for i, r in enumerate(results) if r.status is SendStatus.SENT]
    for r in results:
        if r.status is not SendStatus.SENT:
            assert r.status is SendStatus.FAILED_TEMPORARILY, r
            assert isinstance(r.exception, SMTPServerDisconnected), r
            assert r.attempts == 5
    assert len(sent) >= 36
    assert any(r.attempts > 1 for r in results)
    assert_once(server, [f"<m{i}@pool.test>" for i in sent])
    assert server.max_live <= 4


async def test_421_mid_stream_replaces_the_connection() -> None:
    class Server(PoolServer):
        def reply_rcpt(self, session: Session, address: str) -> str:
            # The fourth transaction of the first two connections meets a closing server.
            # (Of every connection, a message retried onto the fourth place of each new
            # one could meet it on all three attempts: a matter of scheduling.)
            if session.index < 2 and session.verbs.count("MAIL") == 4:
                return "421 4.3.2 shutting down"
            return "250 2.1.5 ok"

    async with Server() as server, pool_for(server, max_connections=2) as pool:
        results = await pool.send_many(message(i) for i in range(20))
    assert all(r.status is SendStatus.SENT for r in results)
    assert_once(server, [f"<m{i}@pool.test>" for i in range(20)])
    assert len(server.sessions) > 2  # replaced
    assert server.max_live <= 2


@pytest.mark.parametrize("where", ["mail", "auth"])
async def test_throttling_451_and_454_is_retried(where: str) -> None:
    class Server(PoolServer):
        mails = 0

        def reply_mail(self, session: Session, message: int) -> str:
            # Every third transaction the server sees is throttled, the first included
            # (a 4yz is retried on a fresh connection, so count across connections).
            self.mails += 1
            if where == "mail" and self.mails % 3 == 1:
                return "451 4.7.1 slow down"
            return "250 2.1.0 ok"

        def reply_auth(self, session: Session) -> str:
            if where == "auth" and session.index % 3 == 0:
                return "454 4.7.0 Too many login attempts"
            return "235 2.7.0 ok"

    async with (
        Server(credentials=("u", "p")) as server,
        pool_for(
            server,
            username="u",
            password="p",
            max_connections=2,
            max_messages_per_connection=2 if where == "auth" else None,
            max_attempts=6,
        ) as pool,
    ):
        results = await pool.send_many(message(i) for i in range(10))
    assert all(r.status is SendStatus.SENT for r in results), results
    assert any(r.attempts > 1 for r in results)
    assert_once(server, [f"<m{i}@pool.test>" for i in range(10)])
    if where == "auth":
        assert server.logins >= 5  # re-authenticated on every new connection
    else:
        # Each throttled attempt was retried on a fresh connection.
        throttled = server.mails - 10
        assert throttled > 0
        assert len(server.sessions) > throttled


async def test_retry_only_the_temporarily_refused_recipients() -> None:
    class Server(PoolServer):
        busy = True

        def reply_rcpt(self, session: Session, address: str) -> str:
            if address == "busy@example.com" and self.busy:
                self.busy = False
                return "450 4.2.1 mailbox busy"
            if address == "gone@example.com":
                return "550 5.1.1 no such user"
            return "250 2.1.5 ok"

    async with Server() as server, pool_for(server) as pool:
        to = "ok@example.com, busy@example.com, gone@example.com"
        (result,) = await pool.send_many([message(0, to=to)])
    assert result.status is SendStatus.PARTIALLY_SENT
    assert result.attempts == 2
    assert result.accepted == ["ok@example.com", "busy@example.com"]
    assert list(result.refused) == ["gone@example.com"]
    refusal = result.refused["gone@example.com"]
    assert (refusal.code, refusal.enhanced_status) == (550, "5.1.1")
    assert refusal.text == "5.1.1 no such user"
    # Two transactions: nobody got the message twice.
    assert [d.recipients for d in server.deliveries] == [
        ["ok@example.com"],
        ["busy@example.com"],
    ]


async def test_enhanced_codes_only_when_advertised() -> None:
    class Server(PoolServer):
        def reply_rcpt(self, session: Session, address: str) -> str:
            return "550 5.1.1 no such user" if address.startswith("x") else "250 ok"

    async with Server(extensions=("PIPELINING",)) as server, pool_for(server) as pool:
        (result,) = await pool.send_many([(raw(0), "a@example.com", ["x@e.com", "y@e.com"])])
    assert result.status is SendStatus.PARTIALLY_SENT
    assert result.refused["x@e.com"].enhanced_status is None
    assert result.refused["x@e.com"].code == 550


async def test_temporary_failures_exhaust_the_attempts() -> None:
    class Server(PoolServer):
        def reply_mail(self, session: Session, message: int) -> str:
            return "452 4.3.1 insufficient storage"

    async with Server() as server, pool_for(server, max_attempts=4) as pool:
        (result,) = await pool.send_many([message(0)])
        with pytest.raises(SMTPSenderRefused):
            await pool.send_message(message(1))
    assert result.status is SendStatus.FAILED_TEMPORARILY
    assert result.attempts == 4
    assert result.reply is not None and result.reply.code == 452
    assert not server.deliveries


async def test_timeout_before_the_body_is_retried_on_a_fresh_connection() -> None:
    class Server(PoolServer):
        def reply_rcpt(self, session: Session, address: str) -> str:
            return SILENT if session.index == 0 else "250 2.1.5 ok"

    async with Server() as server, pool_for(server, timeout=0.3) as pool:
        (result,) = await pool.send_many([message(0)])
    assert result.status is SendStatus.SENT
    assert result.attempts == 2
    assert len(server.sessions) == 2
    assert_once(server, ["<m0@pool.test>"])
