"""The asyncio shell: moves bytes between a transport and the protocol core.

``SMTPProtocol`` owns the reply parser and a FIFO of outstanding *batches*. A batch is
one write of one or more commands together with the number of replies it expects
(RFC 2920 section 3.1: replies come back in the order the commands were sent). Lockstep
sending is simply a batch of one. Each batch has one future and a whole-reply deadline (so
a server dripping a byte at a time cannot stretch it), and every reply that arrives in one
``data_received`` is matched before any waiter wakes. One event-loop timer per connection
watches the deadlines (:class:`fastsmtp._pacing.Deadlines`), and write flow control is
:class:`fastsmtp._pacing.WriteFlow`.

Every write and every reply also goes through the connection's
:class:`fastsmtp._session.SMTPSession`, which keeps the protocol state (phase, replies owed,
what EHLO said) and makes every protocol decision; this module only moves bytes, keeps
timers and flow control, and is the one edge where OS, SSL and asyncio errors become
fastsmtp exceptions. Each waiter gets its own exception object.

The turn (``async with protocol.turn:``) gives one caller at a time the right to write;
a caller that leaves it early (an exception, a timeout, a cancellation) is handled by the
session's one rule (:meth:`~fastsmtp._session.SMTPSession.abandon`): keep the connection,
RSET it, or abort the transport. Error paths abort; only a clean QUIT closes.

Bytes that arrive while no batch is outstanding were not asked for: an injected or
duplicated reply, idle chatter, or an unsolicited 421 (RFC 5321 section 3.8). Any of them
closes the connection, so nothing the server sent unasked can ever be taken as the answer
to a later command.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
from collections.abc import AsyncGenerator, Callable
from typing import cast

# aiosmtplib.protocol's public names, for code that imports them from here.
from ._flow import COMMAND_INJECTION_REGEX as COMMAND_INJECTION_REGEX
from ._flow import LINE_ENDINGS_REGEX as LINE_ENDINGS_REGEX
from ._flow import MAX_LINE_LENGTH as MAX_LINE_LENGTH
from ._flow import MAX_RESPONSE_LENGTH as MAX_RESPONSE_LENGTH
from ._flow import PERIOD_REGEX as PERIOD_REGEX
from ._flow import FlowControlMixin as FlowControlMixin
from ._flow import normalize_message_line_endings as normalize_message_line_endings
from ._pacing import Batch, Deadlines, WriteFlow, fresh
from ._session import Kind, Phase, SMTPSession, Verdict
from ._speedups import NEED_DATA, ReplyParser
from ._turn import Turn
from .errors import SMTPDataError as SMTPDataError  # as in aiosmtplib.protocol
from .errors import SMTPReadTimeoutError as SMTPReadTimeoutError  # as in aiosmtplib.protocol
from .errors import (
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from .response import SMTPResponse
from .typing import SMTPStatus as SMTPStatus  # as in aiosmtplib.protocol

__all__ = ("SMTPProtocol",)

log = logging.getLogger("fastsmtp")

_QUIT_REPLY = SMTPResponse(221, "")
_RSET = b"RSET\r\n"
# aiosmtplib's words for a connection lost during the STARTTLS handshake.
_UPGRADE_LOST = "Connection reset while upgrading transport"
_RSET_KINDS = (Kind.RSET,)
_QUIT = Kind.QUIT
_CLOSED = Phase.CLOSED


#: The buffer replies are read into (``asyncio.BufferedProtocol``): else asyncio's socket
#: transport calls ``recv(262144)``, a fresh 256 KiB each read (page faults, measured).
READ_BUFFER_SIZE = 64 * 1024


class SMTPProtocol(asyncio.BufferedProtocol, asyncio.Protocol):
    """Reply reader and command writer for one SMTP connection.

    Transports read into its buffer (``get_buffer``/``buffer_updated``); it is an
    ``asyncio.Protocol`` too, and ``data_received`` works as well (as aiosmtplib's).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        connection_lost_callback: Callable[[SMTPProtocol], None] | None = None,
        session: SMTPSession | None = None,
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self.session = session if session is not None else SMTPSession()
        self.turn = Turn(self._loop, self.session, self._abandon_turn)
        self._connection_lost_callback = connection_lost_callback
        self.transport: asyncio.BaseTransport | None = None
        self._parser = ReplyParser()
        self._outstanding: collections.deque[Batch] = collections.deque()
        self._closed = False
        # Why the connection is no longer usable, raised by the next operation.
        self._error: Exception | None = None
        self._flow = WriteFlow(self._loop, self._abort)
        self._greeting: Batch | None = None
        self._read_view = memoryview(bytearray(READ_BUFFER_SIZE))
        self._deadlines = Deadlines(self._loop, self._outstanding, self._timed_out)
        self._arm = self._deadlines.arm
        # The end of a message body held back for the next write (see write_body).
        self._held: bytes | None = None
        #: The connection ended on the server's side (or timed out) while the final
        #: reply to a message was owed and more commands were written behind it: a
        #: server that breaks on pipelining across transactions looks like this.
        self.lost_behind_end = False
        #: Transactions submitted on this connection and not yet out (the one writing
        #: and those waiting behind it): ``fastsmtp._link.Link.submit`` counts them.
        self.queued = 0

    # -- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        # The greeting is the first reply the server owes us (RFC 5321 section 3.1); it
        # may arrive before anyone waits for it.
        self._greeting = Batch(self._loop.create_future(), 1)
        self._outstanding.append(self._greeting)

    def data_received(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            return
        parser = self._parser
        parser.feed(data)
        outstanding = self._outstanding
        took = self.session.took
        debug = log.isEnabledFor(logging.DEBUG)
        # The session takes each batch's replies in order: when the batch is complete,
        # and what arrived of the first unfinished one before returning (``taken``).
        batch: Batch | None = None
        while True:
            try:
                reply = parser.next_reply()
            except SMTPResponseException as exc:
                if batch is not None:
                    took(batch.replies, batch.taken)
                self._abort(exc)
                return
            if reply is NEED_DATA:
                break
            assert isinstance(reply, SMTPResponse)
            if not outstanding:
                self._unsolicited(reply)
                return
            batch = outstanding[0]
            if debug:
                log.debug("<< %s", "[redacted]" if batch.redact else reply)
            replies = batch.replies
            replies.append(reply)
            if len(replies) == batch.expected:
                outstanding.popleft()
                took(replies, batch.taken)
                batch.taken = len(replies)
                self._finish(batch)
                batch = None
                if self._closed:  # a 421: nothing after it is read
                    return
        if batch is not None:
            took(batch.replies, batch.taken)
            batch.taken = len(batch.replies)
        if parser.pending and not outstanding:
            self._unsolicited(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the transport reads the next bytes into: the same buffer each time
        (``buffer_updated`` hands every byte to the parser, which keeps what it needs)."""
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._read_view[:nbytes])

    def eof_received(self) -> bool:
        self._lost(SMTPServerDisconnected("Unexpected EOF received"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        lost = SMTPServerDisconnected("Connection lost")
        if exc is not None:
            lost.__cause__ = exc
        self._lost(lost)
        transport, self.transport = self.transport, None
        if isinstance(transport, asyncio.Transport) and not transport.is_closing():
            # Python 3.10's TLS transport is not marked closed when the connection under
            # it is lost (3.11's is): abort it, or it warns "unclosed transport" when
            # collected. Nothing is written; the socket is already gone.
            transport.abort()
        self._flow.lost()
        if self._connection_lost_callback is not None:
            self._connection_lost_callback(self)

    def pause_writing(self) -> None:
        self._flow.pause()

    def resume_writing(self) -> None:
        self._flow.resume()

    # -- state ----------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """True while the transport is open and usable."""
        transport = self.transport
        return transport is not None and not transport.is_closing() and not self._closed

    @property
    def error(self) -> Exception | None:
        """Why the connection stopped being usable, if it did."""
        return self._error

    @property
    def is_tls(self) -> bool:
        """True if the transport is encrypted."""
        return self.transport is not None and self.is_tls_transport(self.transport)

    # -- I/O for the client ------------------------------------------------------------

    async def read_greeting(self, timeout: float | None) -> SMTPResponse:
        """Wait for the greeting registered at ``connection_made``."""
        batch = self._greeting
        assert batch is not None, "read_greeting() before connection_made()"
        if not batch.future.done():
            self._arm(batch, timeout)
        return (await batch.future)[0]

    async def execute(
        self, line: bytes, kind: Kind, timeout: float | None, *, redact: bool = False
    ) -> SMTPResponse:
        """Write one command line and return its reply (a batch of one).

        Takes the connection's turn for the exchange, so commands from concurrent
        callers never interleave.
        """
        async with self.turn:
            replies, error = await self.exchange(line, (kind,), timeout, redact=redact)
        if error is not None:
            raise error
        return replies[0]

    async def exchange(
        self,
        data: bytes,
        kinds: tuple[Kind, ...],
        timeout: float | None,
        *,
        redact: bool = False,
    ) -> tuple[list[SMTPResponse], Exception | None]:
        """Write ``data`` (the command lines ``kinds``) and collect their replies.

        The caller holds the turn. Returns the replies that arrived and, if the batch
        failed part-way (disconnect, timeout, malformed reply), the error; replies that
        arrived before a failure are never lost, so a pipelined batch can be judged
        reply by reply exactly as lockstep sending would.
        """
        batch = self._write_batch(data, kinds, timeout, redact)
        try:
            replies = await batch.future
        except (SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException) as exc:
            return batch.replies, exc
        return replies, None

    async def write_body(
        self,
        body: bytes | AsyncGenerator[bytes, None],
        reply_timeout: float | None,
        idle_timeout: float | None,
        *,
        followed: bool = False,
    ) -> asyncio.Future[list[SMTPResponse]]:
        """Write a message body (after its 354); returns the future of its final reply.

        ``body`` is the encoded body: whole when small, else an async stream of pieces. The
        caller holds the turn. While the body is uploading, ``idle_timeout`` is a
        no-progress timer: each piece the transport takes within it counts as
        progress, a stalled socket does not. The whole-reply deadline starts after
        the last byte. A reply that arrives before the upload is finished (the server
        gave up on the message) stops the upload and is returned.

        ``followed``: another writer is waiting for this connection (or for the turn),
        so a whole body is held back briefly and goes out in one write with what that
        writer sends next (RFC 2920 section 3.1: the next transaction's commands may
        follow the end of data). Two small writes in a row meet delayed ACKs: the
        server answers the end of data on its own, and its next replies wait for an
        ACK (about 40 ms on Linux). Nothing is held longer than two turns of the
        event loop.
        """
        self._raise_if_unusable()
        session = self.session
        # One final reply; over LMTP one per accepted recipient (RFC 2033 section 4.2).
        batch = Batch(self._loop.create_future(), session.final_replies)
        sent = 0
        if isinstance(body, bytes):
            # A whole body is small (a larger message comes as a stream of pieces, so
            # the no-progress timer and the write buffer stay bounded): one write.
            session.body_sent()
            self._outstanding.append(batch)
            sent = len(body)
            if followed or self.turn.waiters:
                self._hold(body)
            else:
                self._transport_write(body)
                if self._flow.paused:
                    await self.drain(idle_timeout)
        else:
            session.body_started()
            # Registered before the first byte: an early reply always finds its batch.
            self._outstanding.append(batch)
            async with contextlib.aclosing(body):
                async for chunk in body:
                    if batch.future.done() or session.early_reply:
                        break
                    self._raise_if_unusable()
                    self._transport_write(chunk)
                    sent += len(chunk)
                    await self.drain(idle_timeout)
                else:
                    session.body_ended()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(">> <message data, %d bytes>", sent)
        if session.early_reply:
            # The server answered before the end of the body (it gave up on the
            # message). It may still be reading body bytes or already reading
            # commands: nothing written next can be trusted to land right, so the
            # connection ends here; the caller still gets the server's reply.
            self._abort(SMTPServerDisconnected("Connection lost"))
        elif not batch.future.done():
            self._arm(batch, reply_timeout)
        return batch.future

    def body_now(
        self,
        body: bytes,
        future: asyncio.Future[list[SMTPResponse]],
        reply_timeout: float | None,
        idle_timeout: float | None,
    ) -> None:
        """Write a whole body from the read that brought its 354 (``fastsmtp._go_ahead``);
        its final reply resolves ``future``. Nobody waits for the turn (the caller
        checked), so nothing is held back; a full write buffer starts the same
        no-progress timer as :meth:`write_body`'s drain."""
        session = self.session
        session.body_sent()
        batch = Batch(future, session.final_replies)
        self._outstanding.append(batch)
        self._transport_write(body)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(">> <message data, %d bytes>", len(body))
        self._arm(batch, reply_timeout)
        if self._flow.paused:
            self._flow.watch(idle_timeout)

    def _transport_write(self, data: bytes | memoryview) -> None:
        # uvloop's transports implement the interface without subclassing it (and
        # typing.cast would be a function call on every write).
        transport: asyncio.WriteTransport = self.transport  # type: ignore[assignment]
        held = self._held
        if held is not None:
            # The end of the previous message and this write go out together.
            self._held = None
            data = held + data
        transport.write(data)

    def _hold(self, data: bytes) -> None:
        """Keep ``data`` (the end of a body) for the next write, or write it two turns
        of the loop from now: the writer waiting next is woken after this caller
        leaves the turn, so its first step comes before the second turn."""
        held = self._held
        self._held = data if held is None else held + data
        self._loop.call_soon(self._loop.call_soon, self._flush)

    def _flush(self) -> None:
        """Write what is held, if nobody has since (and the connection is usable)."""
        held = self._held
        if held is None:
            return
        self._held = None
        if self.is_connected:
            self._transport_write(held)

    def post_bdat(
        self, line: bytes, chunk: bytes, last: bool, timeout: float | None
    ) -> asyncio.Future[list[SMTPResponse]]:
        """Write one BDAT command and its chunk (RFC 3030 section 2) without waiting.

        The caller holds the turn and awaits the returned future for the reply.
        """
        self._raise_if_unusable()
        session = self.session
        # The replies to LAST: over LMTP one per accepted recipient (RFC 2033 section 4.2).
        batch = Batch(self._loop.create_future(), session.final_replies if last else 1)
        session.bdat_sent(last)
        self._outstanding.append(batch)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(">> %r <%d bytes>", line, len(chunk))
        self._transport_write(line)
        self._transport_write(chunk)
        self.session.chunk_written(last)
        self._arm(batch, timeout)
        return batch.future

    async def start_tls(
        self,
        context: ssl.SSLContext,
        server_hostname: str | None,
        timeout: float | None,
    ) -> asyncio.BaseTransport:
        """Upgrade the connection to TLS in place (after a 220 reply to STARTTLS).

        RFC 3207 section 4.2: anything the server sent after its 220 and before the
        handshake is plaintext a man in the middle may have injected; it is never
        carried into the TLS session. The connection is closed instead.
        """
        self._raise_if_unusable()
        if self._parser.pending or self._outstanding:
            self._abort(
                SMTPResponseException(
                    -1, "Server sent data after its STARTTLS reply; connection closed"
                )
            )
            self._raise_if_unusable()
        transport = cast(asyncio.WriteTransport, self.transport)
        try:
            tls_transport = await self._loop.start_tls(
                transport,
                self,
                context,
                server_side=False,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except (asyncio.TimeoutError, TimeoutError) as exc:
            self._close_transport()
            raise SMTPTimeoutError("Timed out while upgrading transport") from exc
        except ConnectionAbortedError as exc:
            # asyncio reports a handshake timeout this way on some versions.
            self._close_transport()
            if "taking longer" in str(exc):
                raise SMTPTimeoutError("Timed out while upgrading transport") from exc
            raise SMTPServerDisconnected(_UPGRADE_LOST) from exc
        except ssl.SSLError:
            # Certificate and handshake errors reach the caller as they are (the
            # aiosmtplib contract), after the connection is gone.
            self._close_transport()
            raise
        except OSError as exc:
            # ConnectionResetError (asyncio's and uvloop's report of a peer that closed
            # or reset the socket before or during the handshake) and any other socket
            # error: SMTPServerDisconnected (an OSError too), in aiosmtplib's words.
            self._close_transport()
            raise SMTPServerDisconnected(_UPGRADE_LOST) from exc
        except BaseException:
            self._close_transport()
            raise
        if tls_transport is None or self._closed:
            self._close_transport()
            raise SMTPServerDisconnected("Connection lost")
        self.transport = tls_transport
        self._parser = ReplyParser()
        self.session.tls_established()
        return tls_transport

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until the transport's write buffer is below its high-water mark.

        With ``timeout``, a buffer that does not drain within it (the peer stopped
        reading) closes the connection and raises SMTPTimeoutError.
        """
        self._raise_if_unusable()
        await self._flow.drain(timeout)

    def close(self) -> None:
        """Close the transport after a clean QUIT (its write buffer is flushed first)."""
        self._close_transport(graceful=True)

    def abort(self) -> None:
        """End the connection now: error paths, and a close the caller asked for. The
        socket is released at once, whatever is still buffered; outstanding replies
        fail with SMTPServerDisconnected."""
        self._close_transport()

    def _abandon_turn(self, turn_start: int, exc: BaseException | None) -> None:
        """The turn's holder is leaving early: apply the session's verdict."""
        # A refusal raised from a reply the caller judged leaves a state it knows
        # (aiosmtplib's rcpt() refusal keeps the transaction); a cancellation, even
        # one that lands after the reply arrived, leaves a state nobody knows.
        informed = isinstance(exc, (SMTPResponseException, SMTPRecipientsRefused))
        verdict = self.session.abandon(turn_start, informed=informed)
        if verdict is Verdict.KEEP:
            return
        if verdict is Verdict.RESET and self.is_connected:
            # Written now, in order behind the replies still owed; nobody waits for
            # its reply, which is consumed like the others (a failure shows on the
            # next command).
            batch = self._write_batch(_RSET, _RSET_KINDS, None, False)
            batch.future.add_done_callback(_retrieve)
            return
        log.debug("fastsmtp: connection aborted (left during %s)", self.session.phase.value)
        self._abort(SMTPServerDisconnected("Connection lost"))

    # -- internals --------------------------------------------------------------------

    def post_batch(
        self,
        data: bytes,
        kinds: tuple[Kind, ...],
        timeout: float | None,
        then: Callable[[Batch], bool],
    ) -> Batch:
        """Write ``data`` (the command lines ``kinds``) without waiting; ``then(batch)``
        runs from the read that completes its replies (see :class:`Batch`). The
        caller holds the turn and awaits ``batch.future``."""
        return self._write_batch(data, kinds, timeout, False, then)

    def _write_batch(
        self,
        data: bytes,
        kinds: tuple[Kind, ...],
        timeout: float | None,
        redact: bool,
        then: Callable[[Batch], bool] | None = None,
    ) -> Batch:
        self._raise_if_unusable()
        self.session.sent(kinds)
        batch = Batch(self._loop.create_future(), len(kinds))
        batch.redact = redact
        batch.then = then
        if kinds[0] is _QUIT:
            batch.quit = True
        # Registered before the write, so a fast reply always finds its batch.
        self._outstanding.append(batch)
        self._arm(batch, timeout)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(">> %r", b"[redacted]" if redact else data)
        self._transport_write(data)
        return batch

    def _finish(self, batch: Batch) -> None:
        future = batch.future
        if not future.done():
            then = batch.then
            if then is None or not then(batch):
                future.set_result(batch.replies)
        if self.session.early_reply:
            # The server answered a body still being uploaded: an upload waiting for
            # the write buffer to drain (the server may have stopped reading) stops now.
            self._flow.wake()
        if self.session.phase is _CLOSED and not batch.quit:
            # A 421 anywhere in the batch (RFC 5321 section 3.8): the server is closing
            # the channel. (After QUIT, quit() closes it cleanly.)
            self._close_transport()

    def _unsolicited(self, reply: SMTPResponse | None) -> None:
        error = self.session.unsolicited(reply)
        if isinstance(error, SMTPServerDisconnected):
            log.debug("<< %s (unsolicited; server is closing)", reply)
        else:
            log.warning("fastsmtp: unsolicited data from server; closing the connection")
        self._abort(error)

    def _abort(self, exc: Exception) -> None:
        """Fail every outstanding batch with ``exc`` and close the connection."""
        if self._error is None:
            self._error = exc
        self._fail_outstanding(exc)
        self._close_transport()

    def _lost(self, exc: SMTPServerDisconnected) -> None:
        if self.session.end_followed():
            self.lost_behind_end = True
        if self._error is None:
            self._error = exc
        self._deadlines.stop()
        outstanding = self._outstanding
        while outstanding:
            batch = outstanding.popleft()
            if batch.future.done():
                continue
            if batch.quit:
                # RFC 5321 section 4.1.1.10: after QUIT, a closed channel is the answer
                # to QUIT, and to QUIT alone: a message whose final reply was still owed
                # has an unknown outcome, not a 221.
                batch.future.set_result([_QUIT_REPLY])
            else:
                batch.future.set_exception(fresh(exc))
                batch.future.exception()  # retrieved: a batch nobody awaits must not warn
        self.session.closed()
        self._closed = True

    def _timed_out(self, exc: Exception) -> None:
        """A reply did not come in time (its deadline passed): the connection ends."""
        if self.session.end_followed():
            self.lost_behind_end = True
        self._abort(exc)

    def _fail_outstanding(self, exc: Exception) -> None:
        self._deadlines.stop()
        outstanding = self._outstanding
        while outstanding:
            batch = outstanding.popleft()
            if not batch.future.done():
                batch.future.set_exception(fresh(exc))
                # Mark retrieved: a batch nobody awaits (the greeting) must not warn.
                batch.future.exception()

    def _close_transport(self, *, graceful: bool = False) -> None:
        # Held bytes count as written, as those in the transport's buffer do: an abort
        # drops both (a clean close comes after QUIT, which took them along).
        self._held = None
        self._closed = True
        self.session.closed()
        transport = self.transport
        if transport is None:
            return
        if graceful and not self.is_tls_transport(transport):
            if not transport.is_closing():
                transport.close()
            return
        # Error paths abort: close() would keep the socket open until a stalled
        # write buffer drains, which may be never. A TLS close would wait for the
        # peer's close_notify (up to 30 s); SMTP has its own end marker (the 221 to
        # QUIT, or an error that ends the session), so there is nothing a truncation
        # attack could cut short: release the socket now.
        transport.abort()  # type: ignore[attr-defined]

    @staticmethod
    def is_tls_transport(transport: asyncio.BaseTransport) -> bool:
        """True if ``transport`` is encrypted."""
        return transport.get_extra_info("sslcontext") is not None

    def ensure_open(self) -> None:
        """Raise SMTPServerDisconnected (saying why, where known) if the connection ended."""
        self._raise_if_unusable()

    def _raise_if_unusable(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self._closed:
            error = self._error
            if isinstance(error, SMTPResponseException) and error.code == -1:
                raise SMTPServerDisconnected(f"Connection closed: {error.message}")
            raise SMTPServerDisconnected("Connection lost")


def _retrieve(future: asyncio.Future[list[SMTPResponse]]) -> None:
    """Mark a future nobody awaits as retrieved, so its exception is not logged."""
    if not future.cancelled():
        future.exception()
