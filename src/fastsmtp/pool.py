"""A pool of SMTP connections for sending a lot of mail: reuse, retries, rate limits.

``SMTPPool`` keeps up to ``max_connections`` :class:`fastsmtp.SMTP` clients to one server.
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
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import ssl
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Iterable,
    Sequence,
)
from email.message import EmailMessage, Message
from types import TracebackType
from typing import Any

from ._bulk import (
    BulkItem,
    BulkProgress,
    _classify,
    _Job,
    _Kind,
    _Outcome,
    _RateLimit,
    _recipient_list,
    _SyncSource,
)
from ._transaction import MessageSource
from .email import extract_recipients
from .errors import (
    SMTPException,
    SMTPRecipientsRefused,
    SMTPResponseException,
)
from .response import SMTPResponse
from .results import RecipientRefusal, SendResult, SendStatus
from .smtp import DEFAULT_TIMEOUT, SMTP, ProgressCallback
from .typing import Default, SMTPTokenGenerator, SocketPathType, _default

__all__ = ("RecipientRefusal", "SMTPPool", "SendResult", "SendStatus")

log = logging.getLogger("fastsmtp")

class _PoolClosedError(SMTPException):
    """The pool was closed before this send got a connection."""


class _Pooled:
    """A pooled client and its bookkeeping (times from the event loop's clock)."""

    __slots__ = ("client", "created", "enhanced", "last_used", "messages")

    def __init__(self, client: SMTP, now: float) -> None:
        self.client = client
        self.created = now
        self.last_used = now
        self.messages = 0
        # RFC 2034: parse RFC 3463 codes only if advertised (known after EHLO; kept
        # here because a closed client forgets the server's extensions).
        self.enhanced = client.supports_extension("enhancedstatuscodes")


class SMTPPool:
    """Up to ``max_connections`` SMTP connections to one server, shared by every send.

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
      window of ``rate_period`` seconds, for the whole pool.
    - ``max_attempts``: transactions per message, retries included (1: no retry);
      ``backoff_base``/``backoff_max``: seconds before retry n is ``base * 2**(n-1)``,
      capped; ``jitter``: wait a random 50-100 % of that.
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
        timeout: float | None = DEFAULT_TIMEOUT,
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
        max_connections: int = 8,
        max_messages_per_connection: int | None = None,
        max_connection_age: float | None = None,
        idle_timeout: float | None = 60.0,
        idle_check_after: float | None = 5.0,
        max_messages_per_period: int | None = None,
        max_logins_per_period: int | None = None,
        rate_period: float = 1.0,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        jitter: bool = True,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if max_messages_per_connection is not None and max_messages_per_connection < 1:
            raise ValueError("max_messages_per_connection must be at least 1")
        if backoff_base < 0 or backoff_max < 0:
            raise ValueError("backoff_base and backoff_max must not be negative")
        self._options: dict[str, Any] = {
            "hostname": hostname,
            "port": port,
            "username": username,
            "password": password,
            "oauth_token_generator": oauth_token_generator,
            "local_hostname": local_hostname,
            "source_address": source_address,
            "timeout": timeout,
            "use_tls": use_tls,
            "start_tls": start_tls,
            "validate_certs": validate_certs,
            "client_cert": client_cert,
            "client_key": client_key,
            "tls_context": tls_context,
            "cert_bundle": cert_bundle,
            "socket_path": socket_path,
            "allow_insecure_auth": allow_insecure_auth,
            "pipelining": pipelining,
            "chunking": chunking,
        }
        SMTP(**self._options)  # raises now for options SMTP would refuse
        self.timeout = timeout
        self.max_connections = max_connections
        self.max_messages_per_connection = max_messages_per_connection
        self.max_connection_age = max_connection_age
        self.idle_timeout = idle_timeout
        self.idle_check_after = idle_check_after
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.jitter = jitter
        self._message_rate = (
            _RateLimit(max_messages_per_period, rate_period)
            if max_messages_per_period is not None
            else None
        )
        self._login_rate = (
            _RateLimit(max_logins_per_period, rate_period)
            if max_logins_per_period is not None
            else None
        )
        self._idle: list[_Pooled] = []  # most recently used last
        self._connections: set[_Pooled] = set()
        self._in_use = 0  # slots held: sends in flight (each with at most one connection)
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._drained: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None
        self._closed = False

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
        return self._closed

    @property
    def connection_count(self) -> int:
        """Connections open now (idle or in use)."""
        return len(self._connections)

    async def close(self) -> None:
        """Stop taking sends, let those in flight finish, then QUIT every connection.

        Sends still waiting for a connection fail (``SMTPException``; in ``send_many``
        results, ``FAILED_TEMPORARILY`` with no attempt). If this is cancelled, every
        connection is closed at once without QUIT.
        """
        self._closed = True
        self._closing_event().set()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(_PoolClosedError("The SMTP pool is closed"))
        try:
            if self._in_use:
                await self._drained_event().wait()
            idle, self._idle = self._idle, []
            await asyncio.gather(*(self._retire(conn) for conn in idle))
        except BaseException:
            for conn in list(self._connections):
                conn.client.close()
            self._connections.clear()
            raise

    def _closing_event(self) -> asyncio.Event:
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    def _drained_event(self) -> asyncio.Event:
        if self._drained is None:
            self._drained = asyncio.Event()
        return self._drained

    # -- slots and connections --------------------------------------------------------

    async def _acquire_slot(self) -> None:
        if self._closed:
            raise _PoolClosedError("The SMTP pool is closed")
        if self._in_use < self.max_connections and not self._waiters:
            self._in_use += 1
            self._drained_event().clear()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # the releasing send hands its slot over
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release_slot()  # handed over just as we were cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _release_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_use -= 1
        if not self._in_use:
            self._drained_event().set()

    async def _checkout(self) -> _Pooled:
        """A slot, and a connection that should work: reused if possible, else new."""
        await self._acquire_slot()
        try:
            loop = asyncio.get_running_loop()
            while self._idle:
                conn = self._idle.pop()
                if await self._usable(conn, loop.time()):
                    return conn
                await self._retire(conn)
            return await self._open()
        except BaseException:
            self._release_slot()
            raise

    async def _usable(self, conn: _Pooled, now: float) -> bool:
        client = conn.client
        if not client.is_connected:
            return False
        limit = self.max_messages_per_connection
        if limit is not None and conn.messages >= limit:
            return False
        if self.max_connection_age is not None and now - conn.created >= self.max_connection_age:
            return False
        idle = now - conn.last_used
        if self.idle_timeout is not None and idle >= self.idle_timeout:
            return False
        if self.idle_check_after is not None and idle >= self.idle_check_after:
            # The server may have dropped us meanwhile (RFC 5321 section 4.5.3.2.7).
            try:
                await client.noop()
            except SMTPException:
                return False
        return client.is_connected

    async def _open(self) -> _Pooled:
        if self._login_rate is not None:
            await self._login_rate.acquire()
        client = SMTP(**self._options)
        await client.connect()  # STARTTLS and AUTH as configured
        try:
            await client._greet_if_needed()
        except BaseException:
            client.close()
            raise
        if self._options["local_hostname"] is None:
            self._options["local_hostname"] = client.local_hostname  # one getfqdn only
        conn = _Pooled(client, asyncio.get_running_loop().time())
        self._connections.add(conn)
        return conn

    async def _retire(self, conn: _Pooled) -> None:
        """QUIT (when still connected) and close."""
        try:
            if conn.client.is_connected:
                with contextlib.suppress(SMTPException, OSError):
                    await conn.client.quit()
        finally:
            conn.client.close()
            self._connections.discard(conn)

    async def _checkin(self, conn: _Pooled, reusable: bool, *, retire: bool = False) -> None:
        """Return a connection: kept for reuse, retired with QUIT, or (state unknown)
        closed at once."""
        try:
            conn.last_used = asyncio.get_running_loop().time()
            if reusable and conn.client.is_connected and not self._closed and not retire:
                self._idle.append(conn)
            elif reusable:
                await self._retire(conn)
            else:
                conn.client.close()  # in an unknown state: no QUIT
                self._connections.discard(conn)
        finally:
            self._release_slot()

    # -- one message ----------------------------------------------------------------

    async def _attempt(self, job: _Job, recipients: list[str]) -> _Outcome:
        """One transaction on one connection; exceptions are returned, not raised."""
        if self._message_rate is not None:
            await self._message_rate.acquire()
        try:
            conn = await self._checkout()
        except Exception as exc:
            return _Outcome(None, "", exc, False, False)
        client = conn.client
        try:
            submission = await job.start(client, recipients)
        except Exception as exc:
            conn.messages += 1
            # After a refusal SMTP has sent RSET, and bad input is refused before
            # anything is written: the connection is fine. After anything else SMTP
            # has closed it (its state is unknown).
            reusable = client.is_connected and isinstance(
                exc, (SMTPResponseException, SMTPRecipientsRefused, ValueError, TypeError)
            )
            # A transient (4yz) reply will be retried, and on a fresh connection: this
            # one may be what the server is unhappy with (RFC 5321 section 4.5.4.1).
            transient = isinstance(exc, SMTPResponseException) and 400 <= exc.code < 500
            await self._checkin(conn, reusable, retire=transient)
            return _Outcome(None, "", exc, conn.enhanced, False)
        except BaseException:
            await self._checkin(conn, False)  # cancelled mid-transaction
            raise
        conn.messages += 1
        # RFC 2920 section 3.1: the message is out; the connection goes back to the
        # pool now, so the next transaction on it is pipelined behind this final reply
        # (the reply FIFO keeps the pairing exact).
        await self._checkin(conn, True)
        try:
            response = await submission.reply()
        except Exception as exc:
            # No RSET: the transaction has ended, and the connection may already carry
            # the next one.
            return _Outcome(None, "", exc, conn.enhanced, True)
        return _Outcome(submission.refused, response.message, None, conn.enhanced, True)

    async def _backoff(self, attempt: int) -> bool:
        """Wait before retry ``attempt`` + 1; False if the pool closed meanwhile."""
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        if self.jitter:
            delay *= random.uniform(0.5, 1.0)
        closing = self._closing_event()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(closing.wait(), delay)
        return not closing.is_set()

    async def _deliver(self, job: _Job) -> SendResult:
        """Send one message, retrying what may be retried; never raises an Exception."""
        result = SendResult(SendStatus.FAILED_TEMPORARILY)
        pending = job.recipients
        kind = _Kind.TRANSIENT
        while True:
            result.attempts += 1
            outcome = await self._attempt(job, pending)
            enhanced = outcome.enhanced
            exc = outcome.exception
            if exc is None:
                refused = outcome.refused or {}
                result.reply = SMTPResponse(250, outcome.text)
                result.exception = None
                retry: list[str] = []
                for recipient in pending:
                    response = refused.get(recipient)
                    if response is None:
                        result.accepted.append(recipient)
                        result.refused.pop(recipient, None)
                        continue
                    refusal = RecipientRefusal.from_response(response, enhanced=enhanced)
                    result.refused[recipient] = refusal
                    if not refusal.permanent:
                        retry.append(recipient)
                kind = _Kind.TRANSIENT if retry else _Kind.PERMANENT
                if not retry:
                    break
                pending = retry  # RFC 5321 section 4.2.5: never resend to the accepted
            else:
                result.exception = exc
                if isinstance(exc, _PoolClosedError):
                    result.attempts -= 1
                    kind = _Kind.TRANSIENT
                    break
                if isinstance(exc, SMTPResponseException):
                    result.reply = SMTPResponse(exc.code, exc.message)
                kind = _classify(exc, outcome.body_sent)
                if isinstance(exc, SMTPRecipientsRefused) and kind is not _Kind.UNKNOWN:
                    retry = []
                    for error in exc.recipients:
                        response = SMTPResponse(error.code, error.message)
                        refusal = RecipientRefusal.from_response(response, enhanced=enhanced)
                        result.refused[error.recipient] = refusal
                        if not refusal.permanent:
                            retry.append(error.recipient)
                    kind = _Kind.TRANSIENT if retry else _Kind.PERMANENT
                    pending = retry
                if kind is not _Kind.TRANSIENT:
                    break
            if result.attempts >= self.max_attempts or not job.replayable:
                break
            log.debug("pool: attempt %d failed transiently; retrying", result.attempts)
            if not await self._backoff(result.attempts):
                break
        result.status = self._status(result, kind)
        return result

    @staticmethod
    def _status(result: SendResult, kind: _Kind) -> SendStatus:
        if kind is _Kind.UNKNOWN:
            return SendStatus.OUTCOME_UNKNOWN
        if result.accepted:
            if result.refused or result.exception is not None:
                return SendStatus.PARTIALLY_SENT
            return SendStatus.SENT
        if kind is _Kind.PERMANENT:
            return SendStatus.FAILED_PERMANENTLY
        return SendStatus.FAILED_TEMPORARILY

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
        timeout: float | Default | None = _default,
        size: int | None = None,
        progress: ProgressCallback | None = None,
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
        }
        job = _Job(message, sender, _recipient_list(recipients), kwargs)
        return self._raise_or_return(await self._deliver(job))

    async def send_message(
        self,
        message: EmailMessage | Message,
        /,
        *,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
    ) -> tuple[dict[str, SMTPResponse], str]:
        """``SMTP.send_message`` through the pool: same arguments, result and exceptions."""
        job = self._message_job(message, sender, recipients, mail_options, rcpt_options, timeout)
        return self._raise_or_return(await self._deliver(job))

    @staticmethod
    def _message_job(
        message: Message,
        sender: str | None,
        recipients: str | Sequence[str] | None,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
    ) -> _Job:
        # The recipients are fixed once, so a retry can address a subset of them.
        recipient_list = (
            extract_recipients(message) if recipients is None else _recipient_list(recipients)
        )
        kwargs = {
            "mail_options": None if mail_options is None else list(mail_options),
            "rcpt_options": None if rcpt_options is None else list(rcpt_options),
            "timeout": timeout,
        }
        return _Job(message, sender, recipient_list, kwargs)

    def _bulk_job(self, item: BulkItem) -> _Job:
        if isinstance(item, Message):
            return self._message_job(item, None, None)
        if not isinstance(item, tuple) or len(item) != 3:
            raise TypeError(
                "send_many takes Message objects or (message, sender, recipients) tuples, "
                f"not {type(item).__name__}"
            )
        message, sender, recipients = item
        if isinstance(message, Message):
            return self._message_job(message, sender, recipients)
        if not isinstance(message, (bytes, str)):
            raise TypeError("a message in a send_many tuple must be a Message, bytes or str")
        if sender is None or recipients is None:
            raise ValueError("sender and recipients are required for a bytes or str message")
        return _Job(message, sender, _recipient_list(recipients), {})

    async def send_many(
        self,
        messages: Iterable[BulkItem] | AsyncIterable[BulkItem],
        *,
        concurrency: int | None = None,
        progress: BulkProgress | None = None,
    ) -> list[SendResult]:
        """Send every message; one ``SendResult`` per message, in input order.

        ``messages`` holds ``Message`` objects or ``(message, sender, recipients)``
        tuples (``message`` may then be bytes or str; ``sender``/``recipients`` None
        take a Message's headers). It is read lazily, at most ``concurrency`` (default
        ``max_connections``) messages ahead. A failing message is reported in its
        result, never raised. ``progress(done, result)`` is called as each finishes.
        """
        workers = self.max_connections if concurrency is None else concurrency
        if workers < 1:
            raise ValueError("concurrency must be at least 1")
        source: AsyncIterator[BulkItem] | _SyncSource
        lock: asyncio.Lock | None
        if isinstance(messages, AsyncIterable):
            source, lock = aiter(messages), asyncio.Lock()
        else:
            source, lock = _SyncSource(iter(messages)), None
        results: list[SendResult | None] = []
        done = 0

        async def take() -> BulkItem:
            if isinstance(source, _SyncSource):
                return await source.next()
            assert lock is not None
            async with lock:  # one reader of the async iterator at a time
                return await anext(source)

        async def worker() -> None:
            nonlocal done
            while True:
                try:
                    item = await take()
                except StopAsyncIteration:
                    return
                index = len(results)
                results.append(None)
                try:
                    job = self._bulk_job(item)
                except (TypeError, ValueError) as exc:
                    result = SendResult(SendStatus.FAILED_PERMANENTLY, exception=exc)
                else:
                    del item
                    result = await self._deliver(job)
                results[index] = result
                done += 1
                if progress is not None:
                    progress(done, result)

        tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [r for r in results if r is not None]
