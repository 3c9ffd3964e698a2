"""A pool of SMTP connections for sending a lot of mail: reuse, retries, rate limits.

``SMTPPool`` keeps up to ``max_connections`` :class:`fastsmtp.SMTP` clients to one server
(or spread over ``relays``, with failover: ``fastsmtp._pool._relays``).
Every send checks a connection out, runs one mail transaction on it, and checks it back
in; so concurrency is bounded by the pool, whatever the caller does. Connections are
opened lazily (each new one logs in when ``username`` is set, as ``SMTP.connect`` does),
reused, NOOP-checked before reuse after sitting idle, and replaced after a 421, a
disconnect or a timeout (the client has closed itself then), after
``max_messages_per_connection`` messages and after ``max_connection_age`` seconds.

Retries (RFC 5321 sections 4.2.5 and 4.5.4.1): a transient failure - a 4yz reply, a
disconnect or a timeout before the message was sent - is tried again on another
connection after an exponential backoff with jitter, up to ``max_attempts``
transactions; a 5yz reply is final. When some recipients got a 4yz refusal and others
were accepted, only the refused ones are tried again: nobody gets the message twice.
A failure after the whole message was sent and before the final reply is
``OUTCOME_UNKNOWN``: the server may have accepted it, so it is never sent again
automatically (RFC 1047). These short in-call retries do not replace a queue: RFC 5321
section 4.5.4.1 asks for retry intervals of 30 minutes or more for deferred mail.

A result's ``reply`` is the final 250 of the last attempt that delivered the message to
someone; a failed retry for the deferred recipients does not replace it (its exception
is the result's ``exception``, its reply their refusal). Only a message delivered to
nobody reports the reply of its last failure.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, Iterable, Sequence
from email.message import EmailMessage, Message
from types import TracebackType

from ._options import ConnectionOptions, Timeouts
from ._pool._delivery import Delivery
from ._pool._job import BulkItem as BulkItem
from ._pool._job import Job, message_job, recipient_list
from ._pool._policy import RetryPolicy
from ._pool._rate import AllLimits, RateLimit, RateLimiter
from ._pool._relays import Relay as Relay
from ._pool._relays import Relays, RelaySpec
from ._pool._relays import RelaysUnavailableError as RelaysUnavailableError
from ._pool._runner import BulkProgress as BulkProgress
from ._pool._runner import send_many
from ._pool._store import ConnectionStore
from ._transaction import MessageSource
from .dsn import DSN
from .response import SMTPResponse
from .results import RecipientRefusal, SendResult, SendStatus
from .smtp import DEFAULT_TIMEOUT, ProgressCallback
from .typing import Default, SMTPTokenGenerator, SocketPathType, _default

__all__ = (
    "RecipientRefusal",
    "Relay",
    "RelaysUnavailableError",
    "SMTPPool",
    "SendResult",
    "SendStatus",
)


class SMTPPool:
    """Up to ``max_connections`` SMTP connections to one server (or to ``relays``),
    shared by every send.

    Takes ``SMTP``'s connection options (except ``sock``: a pool opens its own
    connections) plus the pool's own. Use ``async with SMTPPool(...) as pool:``;
    leaving the block (or ``await pool.close()``) lets sends in flight finish, fails
    those still waiting for a connection, and QUITs every connection.

    Pool options:

    - ``max_connections``: connections open at once, and so sends in flight.
    - ``max_messages_per_connection``, ``max_connection_age`` (seconds): replace a
      connection after this many messages / this long (None: no limit).
    - ``idle_timeout``: close rather than reuse a connection idle this long;
      ``idle_check_after``: send NOOP before reusing one idle this long.
    - ``max_messages_per_period`` (transactions started), ``max_logins_per_period``
      (connections opened, each logging in when ``username`` is set): limits over any
      window of ``rate_period`` seconds, for the whole pool. ``rate_limiter``: one
      more limit on transactions started, any object with ``async acquire()`` (e.g.
      ``fastsmtp.fleet.RedisRateLimiter``, shared by every process of a fleet).
    - ``max_attempts``: transactions per message, retries included (1: no retry);
      ``backoff_base``/``backoff_max``: seconds before retry n is ``base * 2**(n-1)``,
      capped; ``jitter``: wait a random 50-100 % of that.
    - ``relays``: instead of ``hostname``/``port``, several servers, each ``"host"``,
      ``"host:port"``, ``(host, port)`` or a :class:`Relay` with its own ``priority``
      and options (the others are the pool's). New connections go to the lowest
      priority value not backed off, least loaded first, ties round robin; a relay that
      fails to connect, greet, STARTTLS or log in is backed off for
      ``relay_backoff_base * 2**(failures-1)`` seconds, capped at ``relay_backoff_max``,
      and the next one is tried at once. With every relay backed off a send fails fast
      with ``RelaysUnavailableError`` (transient: retried as ``max_attempts`` allows).
      ``SendResult.relay`` names the relay that took each message (see
      ``fastsmtp._pool._relays``).
    """

    def __init__(
        self,
        *,
        hostname: str | None = None,
        port: int | None = None,
        username: str | bytes | None = None,
        password: str | bytes | None = None,
        oauth_token_generator: SMTPTokenGenerator | None = None,
        local_hostname: str | None = None,
        source_address: tuple[str, int] | None = None,
        timeout: float | Timeouts | None = DEFAULT_TIMEOUT,
        use_tls: bool = False,
        start_tls: bool | None = None,
        validate_certs: bool = True,
        client_cert: str | None = None,
        client_key: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        cert_bundle: str | None = None,
        socket_path: SocketPathType | None = None,
        allow_insecure_auth: bool = False,
        pipelining: bool | None = None,
        chunking: bool | None = False,
        proxy: str | None = None,
        max_connections: int = 8,
        max_messages_per_connection: int | None = None,
        max_connection_age: float | None = None,
        idle_timeout: float | None = 60.0,
        idle_check_after: float | None = 5.0,
        max_messages_per_period: int | None = None,
        max_logins_per_period: int | None = None,
        rate_period: float = 1.0,
        rate_limiter: RateLimiter | None = None,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        jitter: bool = True,
        relays: Sequence[RelaySpec] | None = None,
        relay_backoff_base: float = 1.0,
        relay_backoff_max: float = 300.0,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if max_messages_per_connection is not None and max_messages_per_connection < 1:
            raise ValueError("max_messages_per_connection must be at least 1")
        if backoff_base < 0 or backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must not be negative")
        if relay_backoff_base < 0 or relay_backoff_max < 0:
            raise ValueError("relay_backoff_base and relay_backoff_max must not be negative")
        # Checked now: options SMTP would refuse raise here, not at the first send.
        self._options = ConnectionOptions.from_arguments(locals())
        self.timeout = timeout
        # The parts (see fastsmtp._pool); the pool options below are theirs.
        self._store = ConnectionStore(
            (
                Relays.single(self._options)
                if relays is None
                else Relays.from_specs(
                    relays,
                    self._options,
                    backoff_base=relay_backoff_base,
                    backoff_max=relay_backoff_max,
                )
            ),
            max_connections=max_connections,
            max_messages_per_connection=max_messages_per_connection,
            max_connection_age=max_connection_age,
            idle_timeout=idle_timeout,
            idle_check_after=idle_check_after,
            login_rate=(
                RateLimit(max_logins_per_period, rate_period)
                if max_logins_per_period is not None
                else None
            ),
        )
        self._policy = RetryPolicy(max_attempts, backoff_base, backoff_max, jitter)
        message_rate: RateLimiter | None = (
            RateLimit(max_messages_per_period, rate_period)
            if max_messages_per_period is not None
            else None
        )
        if rate_limiter is not None:  # e.g. shared by a fleet (fastsmtp.fleet)
            message_rate = (
                rate_limiter if message_rate is None else AllLimits(message_rate, rate_limiter)
            )
        self._delivery = Delivery(self._store, self._policy, message_rate)

    # -- options (kept by the parts that use them; settable as before) ---------------

    @property
    def max_connections(self) -> int:
        return self._store.slots.limit

    @max_connections.setter
    def max_connections(self, value: int) -> None:
        self._store.slots.limit = value

    @property
    def max_messages_per_connection(self) -> int | None:
        return self._store.max_messages_per_connection

    @max_messages_per_connection.setter
    def max_messages_per_connection(self, value: int | None) -> None:
        self._store.max_messages_per_connection = value

    @property
    def max_connection_age(self) -> float | None:
        return self._store.max_connection_age

    @max_connection_age.setter
    def max_connection_age(self, value: float | None) -> None:
        self._store.max_connection_age = value

    @property
    def idle_timeout(self) -> float | None:
        return self._store.idle_timeout

    @idle_timeout.setter
    def idle_timeout(self, value: float | None) -> None:
        self._store.idle_timeout = value

    @property
    def idle_check_after(self) -> float | None:
        return self._store.idle_check_after

    @idle_check_after.setter
    def idle_check_after(self, value: float | None) -> None:
        self._store.idle_check_after = value

    @property
    def max_attempts(self) -> int:
        return self._policy.max_attempts

    @max_attempts.setter
    def max_attempts(self, value: int) -> None:
        self._policy.max_attempts = value

    @property
    def backoff_base(self) -> float:
        return self._policy.backoff_base

    @backoff_base.setter
    def backoff_base(self, value: float) -> None:
        self._policy.backoff_base = value

    @property
    def backoff_max(self) -> float:
        return self._policy.backoff_max

    @backoff_max.setter
    def backoff_max(self, value: float) -> None:
        self._policy.backoff_max = value

    @property
    def jitter(self) -> bool:
        return self._policy.jitter

    @jitter.setter
    def jitter(self, value: bool) -> None:
        self._policy.jitter = value

    # -- life cycle -----------------------------------------------------------------

    async def __aenter__(self) -> SMTPPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def is_closed(self) -> bool:
        """True once ``close()`` has been called."""
        return self._store.closed

    @property
    def connection_count(self) -> int:
        """Connections open now (idle or in use)."""
        return self._store.connection_count

    async def close(self) -> None:
        """Stop taking sends, let those in flight finish, then QUIT every connection.

        Sends still waiting for a connection fail (``SMTPException``; in ``send_many``
        results, ``FAILED_TEMPORARILY`` with no attempt). If this is cancelled, every
        connection is closed at once without QUIT.
        """
        await self._store.close()

    @staticmethod
    def _raise_or_return(result: SendResult) -> tuple[dict[str, SMTPResponse], str]:
        """What ``SMTP.sendmail`` returns (or raises) for this result."""
        if result.status in (SendStatus.SENT, SendStatus.PARTIALLY_SENT):
            assert result.reply is not None
            refused = {r: refusal.response for r, refusal in result.refused.items()}
            return refused, result.reply.message
        assert result.exception is not None
        raise result.exception

    # -- public sending -------------------------------------------------------------

    async def sendmail(
        self,
        sender: str,
        recipients: str | Sequence[str],
        message: MessageSource,
        /,
        *,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Timeouts | Default | None = _default,
        size: int | None = None,
        progress: ProgressCallback | None = None,
        dsn: DSN | None = None,
        require_tls: bool = False,
        smtputf8: bool | None = None,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """``SMTP.sendmail`` through the pool: same arguments, result and exceptions.

        Transient failures are retried (a stream ``message`` is tried once only);
        the exception raised is that of the last attempt.
        """
        kwargs = {
            "mail_options": None if mail_options is None else list(mail_options),
            "rcpt_options": None if rcpt_options is None else list(rcpt_options),
            "timeout": timeout,
            "size": size,
            "progress": progress,
            "dsn": dsn,
            "require_tls": require_tls,
            "smtputf8": smtputf8,
        }
        job = Job(message, sender, recipient_list(recipients), kwargs)
        return self._raise_or_return(await self._delivery.deliver(job))

    async def send_message(
        self,
        message: EmailMessage | Message,
        /,
        *,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Timeouts | Default | None = _default,
        dsn: DSN | None = None,
        require_tls: bool = False,
        smtputf8: bool | None = None,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """``SMTP.send_message`` through the pool: same arguments, result and exceptions."""
        job = message_job(
            message,
            sender,
            recipients,
            mail_options,
            rcpt_options,
            timeout,
            extensions={"dsn": dsn, "require_tls": require_tls, "smtputf8": smtputf8},
        )
        return self._raise_or_return(await self._delivery.deliver(job))

    async def send_many(
        self,
        messages: Iterable[BulkItem] | AsyncIterable[BulkItem],
        *,
        concurrency: int | None = None,
        progress: BulkProgress | None = None,
        dsn: DSN | None = None,
        require_tls: bool = False,
        smtputf8: bool | None = None,
    ) -> list[SendResult]:
        """Send every message; one ``SendResult`` per message, in input order.

        ``messages`` holds ``Message`` objects or ``(message, sender, recipients)``
        tuples (``message`` may then be bytes or str; ``sender``/``recipients`` None
        take a Message's headers). It is read lazily, at most ``concurrency`` (default
        twice ``max_connections``) messages ahead. A failing message is reported in its
        result, never raised. ``progress(done, result)`` is called as each finishes.
        ``dsn``, ``require_tls`` and ``smtputf8`` (see ``SMTP.sendmail``) apply to
        every message.

        Two messages per connection by default: while one awaits its final reply, the
        next one's commands go out behind its end of data, in the same write (RFC 2920
        section 3.1), so each connection carries about one round trip per message.
        """
        workers = 2 * self.max_connections if concurrency is None else concurrency
        extensions = {"dsn": dsn, "require_tls": require_tls, "smtputf8": smtputf8}
        return await send_many(self._delivery, messages, workers, progress, extensions)
