"""SMTPPool with several relays: spreading, priority, failover, backoff, relay in results.

Healthy relays are aiosmtpd (:class:`tests._servers.RecordingServer`) or the reactive
:class:`tests.pool.server.PoolServer`; faulty ones are a closed port (connect refused),
PoolServers greeting 421/554 or refusing AUTH, and an implicit-TLS aiosmtpd with a
certificate nobody trusts. Backoff is checked on the pool's own clock (``clock`` of its
relays, set by the test), never by sleeping: each check is on which server saw a
connection, and when.
"""

from __future__ import annotations

import pickle
import re
import socket
import ssl
from email.message import EmailMessage

import pytest

import fastsmtp
from fastsmtp import Relay, RelaysUnavailableError, SMTPPool
from fastsmtp.results import SendResult, SendStatus
from tests._servers import RecordingServer
from tests.client.conftest import (  # noqa: F401  (fixtures)
    SmtpdFactory,
    TLSMaterial,
    _collect_garbage,
    client_tls_context,
    smtpd_factory,
    tls,
)
from tests.pool.server import CLOSE, PoolServer, Session

FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "local_hostname": "client.test"}
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def message(i: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "sender@example.com"
    msg["To"] = "rcpt@example.com"
    msg["Subject"] = f"message {i}"
    msg["Message-ID"] = f"<m{i}@relay.test>"
    msg.set_content(f"body {i}\n")
    return msg


def name(server: Server | RecordingServer | int) -> str:
    port = server if isinstance(server, int) else server.port
    return f"127.0.0.1:{port}"


def received(server: RecordingServer) -> list[str]:
    """Message-IDs the aiosmtpd server accepted, in order."""
    ids = []
    for msg in server.messages:
        match = _MESSAGE_ID.search(msg.content)
        assert match is not None
        ids.append(match.group(1).decode())
    return ids


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound by the OS, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Clock:
    """The pool's relay clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def relay_pool(*relays: object, clock: Clock | None = None, **options: object) -> SMTPPool:
    pool = SMTPPool(relays=list(relays), **{**FAST, **options})  # type: ignore[arg-type]
    if clock is not None:
        pool._store.relays.clock = clock
    return pool


class Server(PoolServer):
    """A PoolServer whose port is known after it stopped (for naming it in asserts)."""

    async def __aenter__(self) -> Server:
        await super().__aenter__()
        self.known_port = super().port
        return self

    @property
    def port(self) -> int:
        return self.known_port


class Greeting(Server):
    """Greets every connection with ``greeting`` (421/554...) while ``down`` is set."""

    def __init__(self, greeting: str) -> None:
        super().__init__()
        self.greeting = greeting
        self.down = True

    def reply_greeting(self, session: Session) -> str:
        return self.greeting if self.down else super().reply_greeting(session)


# -- the surface ----------------------------------------------------------------------


def test_importable_from_top_level_but_not_in_all() -> None:
    assert fastsmtp.Relay is Relay
    assert issubclass(RelaysUnavailableError, fastsmtp.SMTPConnectError)
    for symbol in ("Relay", "RelaysUnavailableError"):
        assert symbol not in fastsmtp.__all__
        assert symbol in fastsmtp.pool.__all__


def test_relay_forms_and_names() -> None:
    pool = SMTPPool(
        relays=[
            "mx1.example.com",
            "mx2.example.com:2525",
            "[2001:db8::1]:26",
            "2001:db8::2",
            ("mx3.example.com", 587),
            Relay("mx4.example.com", use_tls=True, priority=5),
            Relay(socket_path="/run/smtp.sock"),
        ],
        start_tls=False,
    )
    states = pool._store.relays.states
    assert [s.name for s in states] == [
        "mx1.example.com:25",
        "mx2.example.com:2525",
        "[2001:db8::1]:26",
        "[2001:db8::2]:25",
        "mx3.example.com:587",
        "mx4.example.com:465",  # implicit TLS: its own option, the default port follows
        "/run/smtp.sock",
    ]
    assert [s.priority for s in states] == [0, 0, 0, 0, 0, 5, 0]
    assert states[5].options.use_tls and not states[0].options.use_tls
    assert all(s.options.start_tls is False for s in states)  # the pool's option


@pytest.mark.parametrize(
    ("relays", "error", "text"),
    [
        ([], ValueError, "non-empty"),
        ("mx.example.com", ValueError, "non-empty"),
        (["mx.example.com:smtp"], ValueError, "port must be a number"),
        (["[::1"], ValueError, "malformed relay"),
        ([":25"], ValueError, "no host name"),
        ([("mx.example.com", "25")], TypeError, "(hostname, port)"),
        ([25], TypeError, "a relay must be"),
    ],
)
def test_bad_relays_are_refused_at_construction(
    relays: object, error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=re.escape(text)):
        SMTPPool(relays=relays)  # type: ignore[arg-type]


def test_bad_relay_options_are_refused_at_construction() -> None:
    with pytest.raises(TypeError, match="unknown connection options: sock"):
        Relay("mx.example.com", sock=None)
    with pytest.raises(ValueError, match="needs a hostname or a socket_path"):
        Relay(port=25)
    with pytest.raises(ValueError, match="port must be 1-65535"):
        Relay("mx.example.com", 0)
    with pytest.raises(TypeError, match="priority must be an int"):
        Relay("mx.example.com", priority=1.5)  # type: ignore[arg-type]
    # Checked together with the pool's options, per relay.
    with pytest.raises(ValueError, match="start_tls and use_tls"):
        SMTPPool(relays=[Relay("mx.example.com", use_tls=True)], start_tls=True)
    with pytest.raises(ValueError, match="not both"):
        SMTPPool(hostname="mx.example.com", relays=["mx2.example.com"])
    with pytest.raises(ValueError, match="must not be negative"):
        SMTPPool(relays=["mx.example.com"], relay_backoff_base=-1)


# -- spreading and priority -----------------------------------------------------------


async def test_new_connections_go_round_robin(smtpd_factory: SmtpdFactory) -> None:  # noqa: F811
    a, b = smtpd_factory(), smtpd_factory()
    # One message per connection, one connection at a time: every send opens a new one.
    async with relay_pool(
        f"127.0.0.1:{a.port}",
        ("127.0.0.1", b.port),
        max_connections=1,
        max_messages_per_connection=1,
    ) as pool:
        for i in range(4):
            assert await pool.send_message(message(i)) == (
                {},
                "2.0.0 Message accepted for delivery",
            )
        results = await pool.send_many([message(4), message(5)], concurrency=1)
    assert received(a) == ["<m0@relay.test>", "<m2@relay.test>", "<m4@relay.test>"]
    assert received(b) == ["<m1@relay.test>", "<m3@relay.test>", "<m5@relay.test>"]
    assert [r.relay for r in results] == [name(a), name(b)]
    assert all(r.status is SendStatus.SENT for r in results)


async def test_concurrent_connections_spread_least_loaded(
    smtpd_factory: SmtpdFactory,  # noqa: F811
) -> None:
    a, b = smtpd_factory(), smtpd_factory()
    async with relay_pool(("127.0.0.1", a.port), ("127.0.0.1", b.port), max_connections=4) as pool:
        results = await pool.send_many((message(i) for i in range(40)), concurrency=4)
    # Four connections opened at once: two to each relay, then reused.
    assert len(a.connections) == 2 and len(b.connections) == 2
    got_a, got_b = received(a), received(b)
    assert sorted(got_a + got_b) == sorted(f"<m{i}@relay.test>" for i in range(40))
    assert len(set(got_a + got_b)) == 40, "a message was delivered twice"
    assert got_a and got_b
    for i, result in enumerate(results):
        assert result.status is SendStatus.SENT
        expected = name(a) if f"<m{i}@relay.test>" in got_a else name(b)
        assert result.relay == expected


async def test_a_new_connection_goes_to_the_least_loaded_relay() -> None:
    async with Server() as a, Server() as b:
        pool = relay_pool(
            ("127.0.0.1", a.port), ("127.0.0.1", b.port), max_connections=2, idle_check_after=0
        )
        async with pool:
            first = await pool.send_many([message(0), message(1)], concurrency=2)
            assert {r.relay for r in first} == {name(a), name(b)}
            # The server drops b's idle connection: the next two sends need one new
            # connection while a's is in use. Round robin alone would pick a (its turn);
            # the least loaded relay is b.
            (dropped,) = b.protocols
            assert dropped.transport is not None
            dropped.transport.close()
            second = await pool.send_many([message(2), message(3)], concurrency=2)
        assert {r.relay for r in second} == {name(a), name(b)}
        assert len(a.sessions) == 1 and len(b.sessions) == 2
    assert sorted([*a.delivered(), *b.delivered()]) == [f"<m{i}@relay.test>" for i in range(4)]


async def test_lower_priority_value_is_preferred(smtpd_factory: SmtpdFactory) -> None:  # noqa: F811
    backup, primary = smtpd_factory(), smtpd_factory()
    async with relay_pool(
        Relay("127.0.0.1", backup.port, priority=10),
        Relay("127.0.0.1", primary.port, priority=0),
        max_connections=4,
    ) as pool:
        results = await pool.send_many((message(i) for i in range(12)), concurrency=4)
    assert len(received(primary)) == 12
    assert backup.connections == []
    assert {r.relay for r in results} == {name(primary)}


async def test_single_server_pool_names_its_server() -> None:
    async with Server() as server:
        pool = SMTPPool(hostname="127.0.0.1", port=server.port, **FAST)  # type: ignore[arg-type]
        async with pool:
            (result,) = await pool.send_many([message(0)])
    assert result.relay == name(server)
    assert SendResult(SendStatus.SENT).relay is None


# -- failover -------------------------------------------------------------------------


async def test_each_relay_failure_fails_over_at_once(
    smtpd_factory: SmtpdFactory,  # noqa: F811
    tls: TLSMaterial,  # noqa: F811
    client_tls_context: ssl.SSLContext,  # noqa: F811
) -> None:
    """Refused, 421 and 554 greetings, a certificate that fails verification, a 535 to
    AUTH: each backs its relay off and the same attempt goes on to the next relay."""
    untrusted = smtpd_factory(implicit_tls_context=tls.server_context(tls.untrusted_cert))
    async with (
        Greeting("421 4.3.2 busy, try later") as busy,
        Greeting("554 5.7.1 no service for you") as hostile,
        Server(credentials=("u", "p")) as wrong_password,
        Server(credentials=("u", "p")) as good,
    ):
        refused = closed_port()
        clock = Clock()
        pool = relay_pool(
            Relay("127.0.0.1", refused, priority=0),
            Relay("127.0.0.1", busy.port, priority=1),
            Relay("127.0.0.1", hostile.port, priority=2),
            Relay(
                "127.0.0.1",
                untrusted.port,
                priority=3,
                use_tls=True,
                tls_context=client_tls_context,
            ),
            Relay("127.0.0.1", wrong_password.port, priority=4, password="wrong"),
            Relay("127.0.0.1", good.port, priority=5),
            clock=clock,
            username="u",
            password="p",
            relay_backoff_base=60,
        )
        async with pool:
            results = await pool.send_many((message(i) for i in range(3)), concurrency=1)
        states = pool._store.relays.states
    assert [r.status for r in results] == [SendStatus.SENT] * 3
    assert [r.attempts for r in results] == [1, 1, 1]  # failover used no attempt
    assert {r.relay for r in results} == {name(good)}
    assert sorted(good.delivered()) == [f"<m{i}@relay.test>" for i in range(3)]
    # Each faulty relay was tried once, then left alone for its backoff.
    assert len(busy.sessions) == len(hostile.sessions) == len(wrong_password.sessions) == 1
    assert wrong_password.sessions[0].verbs == ["EHLO", "AUTH"]  # no MAIL after the 535
    assert wrong_password.logins == 0 and good.logins == 1
    assert [s.failures for s in states] == [1, 1, 1, 1, 1, 0]
    assert [s.retry_at - clock.now for s in states[:5]] == [60.0] * 5
    errors = [type(s.last_error).__name__ for s in states[:5]]
    assert errors == [
        "SMTPConnectError",
        "SMTPConnectResponseError",
        "SMTPConnectResponseError",
        "SMTPConnectError",
        "SMTPAuthenticationError",
    ]
    assert "certificate verify failed" in str(states[3].last_error)


async def test_backoff_is_exponential_capped_and_ends_on_the_clock() -> None:
    clock = Clock()
    async with Greeting("421 4.3.2 not now") as primary, Server() as backup:
        pool = relay_pool(
            Relay("127.0.0.1", primary.port, priority=0),
            Relay("127.0.0.1", backup.port, priority=1),
            clock=clock,
            relay_backoff_base=10,
            relay_backoff_max=25,
        )
        async with pool:
            tries = []
            # (time, connections the primary has seen after a send at that time)
            for at in (0, 5, 9.9, 10, 29.9, 30, 54.9, 55):
                clock.now = 1000 + at
                result = await pool.send_message(message(len(tries)))
                assert result == ({}, "2.0.0 queued")
                tries.append((at, len(primary.sessions)))
            # Backoffs 10, 20, then 25 (capped): tried again only when each had passed.
            assert tries == [
                (0, 1),
                (5, 1),
                (9.9, 1),
                (10, 2),
                (29.9, 2),
                (30, 3),
                (54.9, 3),
                (55, 4),
            ]
            assert len(backup.delivered()) == 8
            # The primary recovers: at the end of its backoff it takes the mail again,
            # and the idle connection to the backup is retired (QUIT), not reused.
            primary.down = False
            clock.now = 1000 + 55 + 25
            backup_sessions = len(backup.sessions)
            (result,) = await pool.send_many([message(99)])
            assert result.relay == name(primary) and result.status is SendStatus.SENT
            assert len(primary.sessions) == 5
            await backup.wait_for(lambda: all(s.closed for s in backup.sessions))
            assert all(s.quit for s in backup.sessions)
            assert len(backup.sessions) == backup_sessions
            assert pool._store.relays.states[0].failures == 0  # a working connection clears it
        assert primary.delivered() == {"<m99@relay.test>": 1}


async def test_all_relays_backed_off_fails_fast_with_every_reason() -> None:
    clock = Clock()
    refused = closed_port()
    async with Greeting("421 4.3.2 too busy") as busy:
        pool = relay_pool(
            ("127.0.0.1", refused),
            ("127.0.0.1", busy.port),
            clock=clock,
            max_attempts=3,
            relay_backoff_base=30,
        )
        async with pool:
            with pytest.raises(RelaysUnavailableError) as info:
                await pool.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nx\r\n")
            (result,) = await pool.send_many([message(0)])
        # The first attempt tried both; the next two found both backed off and failed
        # at once, without connecting.
        assert len(busy.sessions) == 1
    error = info.value
    assert set(error.errors) == {name(refused), name(busy)}
    assert error.retry_in == 30.0
    assert "No relay is available" in error.message
    assert (
        f"127.0.0.1:{busy.port} (backed off for 30.0 s: SMTPConnectResponseError" in error.message
    )
    assert "421" in error.message
    assert result.status is SendStatus.FAILED_TEMPORARILY
    assert result.attempts == 3
    assert result.relay is None
    assert isinstance(result.exception, RelaysUnavailableError)


async def test_auth_failure_on_every_relay_defers_rather_than_bounces() -> None:
    """Like Postfix's smtp_sasl_auth_soft_bounce: a relay refusing our login is a
    configuration problem of that relay, not of the message."""
    async with Server(credentials=("u", "p")) as server:
        pool = relay_pool(
            ("127.0.0.1", server.port), username="u", password="hunter2", max_attempts=1
        )
        async with pool:
            (result,) = await pool.send_many([message(0)])
    assert result.status is SendStatus.FAILED_TEMPORARILY
    assert isinstance(result.exception, RelaysUnavailableError)
    cause = result.exception.errors[name(server)]
    assert isinstance(cause, fastsmtp.SMTPAuthenticationError) and cause.code == 535
    assert result.exception.__cause__ is cause  # the traceback shows why
    copy = pickle.loads(pickle.dumps(result.exception))
    assert (copy.message, copy.retry_in) == (result.exception.message, result.exception.retry_in)
    assert "535" in str(result.exception)
    assert "hunter2" not in str(result.exception)  # never a credential in an error


async def test_a_retry_may_go_to_another_relay() -> None:
    class Deferring(Server):
        def reply_mail(self, session: Session, message: int) -> str:
            return "451 4.3.0 try again later"

    async with (
        Deferring() as a,
        Server() as b,
        relay_pool(("127.0.0.1", a.port), ("127.0.0.1", b.port), max_connections=1) as pool,
    ):
        (result,) = await pool.send_many([message(0)])
    assert result.status is SendStatus.SENT
    assert result.attempts == 2
    assert result.relay == name(b)
    assert [s.verbs[:2] for s in a.sessions] == [["EHLO", "MAIL"]]
    assert b.delivered() == {"<m0@relay.test>": 1}


async def test_a_relay_dying_mid_run_loses_and_duplicates_nothing() -> None:
    class Dying(Server):
        """Accepts three messages, then stops listening and drops every connection at
        its next MAIL (before any body: the message is retried, elsewhere)."""

        def reply_mail(self, session: Session, message: int) -> str:
            if len(self.deliveries) >= 3:
                assert self._server is not None
                self._server.close()  # no new connections: refused from now on
                return CLOSE
            return super().reply_mail(session, message)

    async with Dying() as a, Server() as b:
        pool = relay_pool(
            ("127.0.0.1", a.port),
            ("127.0.0.1", b.port),
            max_connections=2,
            relay_backoff_base=3600,
        )
        async with pool:
            results = await pool.send_many((message(i) for i in range(30)), concurrency=4)
        states = pool._store.relays.states
    got_a, got_b = a.delivered(), b.delivered()
    assert len(got_a) == 3
    assert set(got_a.values()) == set(got_b.values()) == {1}
    assert sorted([*got_a, *got_b]) == sorted(f"<m{i}@relay.test>" for i in range(30))
    assert not set(got_a) & set(got_b)
    for i, result in enumerate(results):
        assert result.status is SendStatus.SENT
        assert result.relay == (name(a) if f"<m{i}@relay.test>" in got_a else name(b))
    assert states[0].failures >= 1 and states[1].failures == 0
