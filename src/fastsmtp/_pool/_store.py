"""The pool's connections: opened lazily, reused, health-checked, retired.

``async with store.checkout() as conn:`` takes a slot and a connection that should work
(an idle one if it passes the checks, else a new one) and, however the block ends, gives
both back: the connection is kept for reuse only when its state is known good and the
block left ``conn.fate`` at ``Fate.REUSE``; otherwise it is retired with QUIT (state
known) or closed at once (state unknown). There is no other way to check a connection
in, so no exit path can forget one.

Check-in never suspends: a cancellation cannot land between the end of the block and
what the holder does next (the delivery awaits the final reply there, RFC 2920 section
3.1). QUIT for a retired connection runs in a task of the store's, which keeps the slot
until the connection is closed, so ``max_connections`` also counts connections being
retired.

New connections go to the relay :mod:`._relays` picks (the one server of a pool made
without ``relays``); a connection to a relay of a worse priority than the best one
usable now is not reused but retired, so the pool moves back to a preferred relay once
its backoff is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from types import TracebackType

from ..errors import SMTPException
from ..smtp import SMTP
from ._rate import RateLimit
from ._relays import Relays, RelayState
from ._slots import Slots

__all__ = ("ConnectionStore", "Fate", "Pooled")

log = logging.getLogger("fastsmtp")


class Fate(enum.Enum):
    """What check-in does with a connection."""

    #: Known good state: back to the idle list (unless a limit says retire).
    REUSE = 1
    #: Known state, but not to be reused (a 4yz may be about this connection): QUIT.
    RETIRE = 2
    #: Unknown state (replies owed, or mid-transaction): close at once, no QUIT.
    ABORT = 3


class Pooled:
    """A pooled client and its bookkeeping (times from the event loop's clock)."""

    __slots__ = ("client", "created", "enhanced", "fate", "last_used", "messages", "relay")

    def __init__(self, client: SMTP, now: float, relay: RelayState) -> None:
        self.client = client
        self.relay = relay
        self.created = now
        self.last_used = now
        self.messages = 0
        #: Set by the holder of a checkout: what check-in should do.
        self.fate = Fate.REUSE
        # RFC 2034: parse RFC 3463 codes only if advertised (known after EHLO; kept
        # here because a closed client forgets the server's extensions).
        self.enhanced = client.supports_extension("enhancedstatuscodes")


class ConnectionStore:
    """Up to ``max_connections`` connections to the ``relays``.

    Each relay's options are ``SMTP``'s keyword options; the store fills in
    ``local_hostname`` after the first connection so the host name is looked up once only.
    """

    def __init__(
        self,
        relays: Relays,
        *,
        max_connections: int,
        max_messages_per_connection: int | None,
        max_connection_age: float | None,
        idle_timeout: float | None,
        idle_check_after: float | None,
        login_rate: RateLimit | None,
    ) -> None:
        self.relays = relays
        self.slots = Slots(max_connections)
        self.max_messages_per_connection = max_messages_per_connection
        self.max_connection_age = max_connection_age
        self.idle_timeout = idle_timeout
        self.idle_check_after = idle_check_after
        self._login_rate = login_rate
        self._idle: list[Pooled] = []  # most recently used last
        self._connections: set[Pooled] = set()
        self._retiring: set[asyncio.Task[None]] = set()  # QUITs after check-in
        self._closing: asyncio.Event | None = None

    @property
    def connection_count(self) -> int:
        """Connections open now (idle, in use or being retired)."""
        return len(self._connections)

    @property
    def closed(self) -> bool:
        return self.slots.closed

    def closing(self) -> asyncio.Event:
        """Set once :meth:`close` has begun (backoffs end early on it)."""
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    def checkout(self) -> Checkout:
        """``async with store.checkout() as conn:`` - a slot and a connection."""
        return Checkout(self)

    # -- taking a connection --------------------------------------------------------

    async def _take(self) -> Pooled:
        """A slot, and a connection that should work: reused if possible, else new."""
        await self.slots.acquire()
        try:
            now = asyncio.get_running_loop().time()
            while self._idle:
                conn = self._idle.pop()  # in no list now: this frame owns it
                try:
                    usable = await self._usable(conn, now)
                except BaseException:
                    # Cancelled while the NOOP (RFC 5321 section 4.1.1.9) awaited its
                    # reply: the reply is owed and may never come - the check ran
                    # because the server may be gone - so the state is unknown.
                    self._abort(conn)
                    raise
                if usable:
                    conn.fate = Fate.REUSE
                    return conn
                await self._retire(conn)  # (closes it even if cancelled)
            return await self._open()
        except BaseException:
            self.slots.release()
            raise

    def _worn_out(self, conn: Pooled, now: float) -> bool:
        """True once the connection has carried its messages or lived its time."""
        limit = self.max_messages_per_connection
        if limit is not None and conn.messages >= limit:
            return True
        age = self.max_connection_age
        return age is not None and now - conn.created >= age

    async def _usable(self, conn: Pooled, now: float) -> bool:
        client = conn.client
        if not client.is_connected or self._worn_out(conn, now):
            return False
        if conn.relay.priority > self.relays.best_priority():
            return False  # a preferred relay is usable again
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

    async def _open(self) -> Pooled:
        """A new connection: to the first relay that works, in the order of
        :meth:`Relays.candidates` (failover at once, as Postfix does with MX hosts)."""
        relays = self.relays
        tried: dict[str, BaseException] = {}
        last: BaseException | None = None
        for relay in relays.candidates():
            try:
                conn = await self._open_to(relay)
            except Exception as exc:
                relays.failed(relay, exc)
                if not relays.failover:
                    raise
                log.info("fastsmtp pool: relay %s failed (%s); backed off", relay.name, exc)
                tried[relay.name] = last = exc
                continue
            relays.succeeded(relay)
            return conn
        raise relays.unavailable(tried) from last

    async def _open_to(self, relay: RelayState) -> Pooled:
        if self._login_rate is not None:
            await self._login_rate.acquire()
        options = relay.options
        relay.load += 1  # counted while it opens, so concurrent openings spread
        try:
            client = SMTP._from_options(options)
            await client.connect()  # STARTTLS and AUTH as configured; closes itself on error
            try:
                await client._link.greet()
            except BaseException:
                client.close()
                raise
        except BaseException:
            relay.load -= 1
            raise
        if options.local_hostname is None:
            options.local_hostname = client.local_hostname  # one getfqdn only
        conn = Pooled(client, asyncio.get_running_loop().time(), relay)
        self._connections.add(conn)
        return conn

    # -- giving it back ---------------------------------------------------------------

    def _checkin(self, conn: Pooled, failed: bool) -> None:
        """Keep, retire or close ``conn`` (``failed``: the block raised: the state is
        unknown), and pass its slot on. Never suspends."""
        now = asyncio.get_running_loop().time()
        conn.last_used = now
        fate = Fate.ABORT if failed or not conn.client.is_connected else conn.fate
        if fate is Fate.REUSE and (self.closed or self._worn_out(conn, now)):
            fate = Fate.RETIRE
        if fate is Fate.RETIRE:
            # The slot goes with the connection to the task that QUITs it.
            task = asyncio.ensure_future(self._retire_then_release(conn))
            self._retiring.add(task)
            task.add_done_callback(self._retired)
            return
        if fate is Fate.REUSE:
            self._idle.append(conn)
        else:
            self._abort(conn)
        self.slots.release()

    async def _retire_then_release(self, conn: Pooled) -> None:
        try:
            await self._retire(conn)
        finally:
            self.slots.release()

    def _retired(self, task: asyncio.Task[None]) -> None:
        self._retiring.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("fastsmtp pool: retiring a connection failed", exc_info=task.exception())

    async def _retire(self, conn: Pooled) -> None:
        """QUIT (when still connected) and close."""
        try:
            if conn.client.is_connected:
                with contextlib.suppress(SMTPException, OSError):
                    await conn.client.quit()
        finally:
            self._abort(conn)

    def _abort(self, conn: Pooled) -> None:
        """Close at once, without QUIT."""
        conn.client.close()
        if conn in self._connections:
            self._connections.discard(conn)
            conn.relay.load -= 1

    # -- closing ----------------------------------------------------------------------

    async def close(self) -> None:
        """Fail the waiters, let the holders finish, QUIT every connection. If this is
        cancelled, every connection is closed at once without QUIT."""
        self.slots.close()
        self.closing().set()
        try:
            await self.slots.drained()
            idle, self._idle = self._idle, []
            await asyncio.gather(*(self._retire(conn) for conn in idle))
        except BaseException:
            for conn in list(self._connections):
                self._abort(conn)
            for task in list(self._retiring):
                task.cancel()
            raise


class Checkout:
    """The ``async with`` of :meth:`ConnectionStore.checkout`."""

    __slots__ = ("_conn", "_store")

    def __init__(self, store: ConnectionStore) -> None:
        self._store = store
        self._conn: Pooled | None = None

    async def __aenter__(self) -> Pooled:
        self._conn = await self._store._take()
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        assert conn is not None
        self._store._checkin(conn, failed=exc_type is not None)
