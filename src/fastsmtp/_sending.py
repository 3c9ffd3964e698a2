"""The transaction runner: one message from MAIL to its final reply, over the shell.

RFC 5321 section 3.3: MAIL, one RCPT per recipient, then DATA and the body (or, with RFC
3030 CHUNKING, BDAT chunks). The session decides how (:meth:`SMTPSession.plan`) and
:class:`fastsmtp._transaction.MailTransaction` judges the replies in command order, the
same way whether they came from one pipelined write (RFC 2920) or one command at a time
(which goes through the client's ``execute_command``, so subclasses see it). Everything runs
in one turn of the connection; when pipelining, the turn is free again once the body is
written, and the final reply is awaited through :class:`Submission` (RFC 2920 section 3.1).

A failure always ends the connection it happened on (``protocol.abort()``), never the
one the client holds by then.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import io
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from typing import Any

from ._commands import command_args, message_size
from ._connector import certificate_verified
from ._envelope import Envelope, message_envelope, prepare_message
from ._extensions import check_size
from ._go_ahead import GoAhead
from ._lmtp import judge_deliveries
from ._options import ConnectionOptions, Timeouts
from ._session import Phase
from ._speedups import DataEncoder
from ._transaction import CHUNK_SIZE, LineEndings, MailTransaction, MessageSource
from .errors import (
    SMTPDataError,
    SMTPException,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from .protocol import SMTPProtocol
from .response import SMTPResponse

__all__ = (
    "Envelope",
    "Execute",
    "ProgressCallback",
    "Submission",
    "check_source",
    "message_chunks",
    "message_envelope",
    "prepare_message",
    "reset_quietly",
    "send_body",
    "transact",
)

#: ``progress(sent, total)``: message bytes sent so far, and the size if known.
ProgressCallback = Callable[[int, "int | None"], object]

#: The client's ``execute_command``: each command sent on its own goes through it, so a
#: subclass that overrides it sees (and may answer) them.
Execute = Callable[..., Awaitable[SMTPResponse]]

_RSET = b"RSET\r\n"
_COMMAND_MODE = (Phase.READY, Phase.TRANSACTION)
_BDAT = b"BDAT %d\r\n"
_BDAT_LAST = b"BDAT %d LAST\r\n"


class Submission:
    """A message handed to the server: the refused recipients now, the final reply later.

    Awaiting :meth:`reply` is how the caller learns the message's fate; not awaiting it
    loses nothing on the connection (the reply is still read in order), only the verdict.

    Over LMTP (``accepted`` given: the recipients whose RCPT succeeded, in order) the
    final reply is one reply per recipient (RFC 2033 section 4.2): :meth:`reply` moves
    those refused after the message into ``refused``, fills ``replies`` (recipient to its
    own final reply) and returns the first 250; it raises ``LMTPDataError`` only when
    every recipient was refused.
    """

    __slots__ = ("_accepted", "_final", "_future", "_protocol", "_response", "refused", "replies")

    def __init__(
        self,
        refused: dict[str, SMTPResponse],
        protocol: SMTPProtocol,
        future: asyncio.Future[list[SMTPResponse]] | None,
        final: list[SMTPResponse] | None = None,
        *,
        accepted: list[str] | None = None,
    ) -> None:
        self.refused = refused
        #: The final reply for each recipient that got the message (LMTP only).
        self.replies: dict[str, SMTPResponse] = {}
        self._protocol = protocol
        self._future = future
        self._final = final
        self._accepted = accepted
        self._response: SMTPResponse | None = None

    async def settled(self) -> None:
        """Wait until the final reply has come (or failed to); raises nothing (the
        verdict is :meth:`reply`'s)."""
        future = self._future
        if future is not None and not future.done():
            await asyncio.wait((future,))

    async def reply(self) -> SMTPResponse:
        """The 250 final reply; raises SMTPDataError (and friends) as ``sendmail`` does,
        with ``outcome_unknown`` set when the message was out and no reply came."""
        response = self._response
        if response is not None:
            return response
        protocol = self._protocol
        final = self._final
        if final is None:
            future = self._future
            assert future is not None
            try:
                final = await future
            except (SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException) as exc:
                _final_failure(exc)
                protocol.abort()
                raise
        if self._accepted is not None:
            # LMTPDataError if no recipient got it.
            deliveries = judge_deliveries(self._accepted, final, self.refused)
            self.refused.update(deliveries.refused)
            self.replies = deliveries.delivered
            response = deliveries.reply
        else:
            response = final[0]
            if response.code != 250:
                protocol.session.judge_final(response)  # raises SMTPDataError
        self._response = response
        return response


def _final_failure(exc: SMTPException) -> None:
    """Mark an error met waiting for the reply to a complete message.

    security.md section 10: once the end of the message is on its way, the server may
    have accepted it even if its reply never arrives, so such an error says so (a reply
    that could not be parsed, code -1, says nothing either). Each waiter has its own
    exception object, so the mark stays on this message.
    """
    if not isinstance(exc, SMTPResponseException) or exc.code == -1:
        exc.outcome_unknown = True


async def transact(
    protocol: SMTPProtocol,
    options: ConnectionOptions,
    envelope: Envelope,
    message: MessageSource,
    *,
    phases: Timeouts,
    size: int | None,
    progress: ProgressCallback | None,
    execute: Execute,
    follows: Callable[[], bool] | None = None,
    awaited: bool = False,
) -> Submission:
    """Run one transaction up to the end of the message (see the module docstring).

    Lockstep commands and the RSET after a refusal go through ``execute``; a pipelined
    group and BDAT chunks are written directly (one write for many commands, or a
    command with its chunk, is not something ``execute_command`` can carry).
    When the body is written, ``protocol.queued`` (more than this one) or ``follows()``
    say whether another transaction is waiting to be pipelined behind this one (its
    commands then share the write of this message's end: :meth:`SMTPProtocol.write_body`).
    ``awaited``: the caller awaits the final reply at once (``SMTP.sendmail``), so a
    whole pipelined body may go out from the read that brings its 354, and this may
    return with the final reply in (:mod:`fastsmtp._go_ahead`). Otherwise (the pool, and
    anyone who hands the message over and asks later) this returns once it is out.
    """
    session = protocol.session
    if type(message) is not bytes:
        if isinstance(message, str):
            message = message.encode("ascii")
        elif isinstance(message, (bytearray, memoryview)):
            message = bytes(message)
    if envelope.dsn is not None or envelope.require_tls:
        envelope = envelope.for_server(session.server, certificate_verified(protocol))
    binary = envelope.binary
    plan = session.plan(envelope.encoding != "ascii", binary, options.pipelining, options.chunking)
    chunked = plan.chunked
    body: bytes | AsyncGenerator[bytes, None] = b""
    bdat: AsyncGenerator[tuple[bytes, bool], None] | None = None
    if progress is None and not chunked and type(message) is bytes and len(message) <= CHUNK_SIZE:
        # One pass of the core gives both the DATA body and its SIZE. A larger message
        # is encoded piece by piece as it is written: a second whole copy of it would
        # cost more in fresh memory than the encoding.
        encoder = DataEncoder()
        body = encoder.encode(message) + encoder.finish()
        if size is None:
            size = encoder.size
    else:
        chunks, total = message_chunks(message)
        if total is None:
            total = size  # a stream announced with size=: progress reports against it
        if size is None and plan.announce_size and type(message) is bytes:
            # SIZE counts what goes on the wire before stuffing: DATA adds a final CRLF
            # if missing, BDAT sends the (normalised) bytes as they are.
            size = len(message) if binary else message_size(message, terminated=not chunked)
        if chunked:
            bdat = _bdat_chunks(chunks, None if binary else LineEndings(), progress, total)
        else:
            body = _dot_stuffed(chunks, progress, total)
    if plan.announce_size:
        # RFC 1870 section 4: a message over the server's limit would be refused after
        # it was all sent; refuse it now, before MAIL. (A stream without size= cannot be
        # checked: its size is unknown until it has been sent.)
        check_size(session.server, size, envelope.sender)
    mail = envelope.mail_line(size) if plan.announce_size else envelope.plain_mail
    transaction = MailTransaction(
        envelope.sender,
        envelope.recipients,
        mail,
        envelope.rcpt_lines,
        data=not chunked,
        local=envelope.refused_locally,
    )
    pipelined = plan.pipelined
    timeout = phases.command
    refused = transaction.refused
    async with protocol.turn:
        try:
            if awaited and pipelined and bdat is None and type(body) is bytes:
                return await _on_go_ahead(protocol, transaction, body, phases)
            await _send_commands(protocol, transaction, pipelined, timeout, execute)
            # LMTP (RFC 2033 section 4.2): the final reply is one per accepted RCPT.
            accepted = transaction.accepted if session.lmtp else None
            if bdat is not None:
                final = await _send_bdat(protocol, bdat, pipelined, timeout, phases.final_reply)
                submission = Submission(refused, protocol, None, final, accepted=accepted)
                await submission.reply()
                return submission
            if pipelined:
                future = await protocol.write_body(
                    body,
                    phases.final_reply,
                    phases.upload_idle,
                    followed=protocol.queued > 1 or (follows is not None and follows()),
                )
                return Submission(refused, protocol, future, accepted=accepted)
            future = await protocol.write_body(body, phases.final_reply, phases.upload_idle)
            submission = Submission(refused, protocol, future, accepted=accepted)
            await submission.reply()  # lockstep: the final reply comes within the turn
            return submission
        except (SMTPResponseException, SMTPRecipientsRefused):
            # aiosmtplib's sendmail sends RSET after a refusal; here it is sent in the
            # same turn, so no other caller's command can come first.
            await reset_quietly(protocol, timeout, execute)
            raise


async def _on_go_ahead(
    protocol: SMTPProtocol,
    transaction: MailTransaction,
    body: bytes,
    phases: Timeouts,
) -> Submission:
    """A whole body, pipelined: written from the read that brings DATA's 354
    (:mod:`fastsmtp._go_ahead`). The caller holds the turn."""
    go_ahead = GoAhead(protocol, transaction, body, phases.final_reply, phases.upload_idle)
    batch = protocol.post_batch(
        b"".join(transaction.commands), transaction.kinds, phases.command, go_ahead
    )
    refused = transaction.refused
    try:
        replies = await batch.future
    except (SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException):
        if go_ahead.sent:
            # The message is out and its final reply failed: the submission says so
            # (outcome unknown) when its reply is asked for.
            return Submission(refused, protocol, batch.future, accepted=go_ahead.accepted)
        if not go_ahead.judged:  # part of the replies came: judged as lockstep would
            for reply in batch.replies:
                transaction.take(reply)
        transaction.check_open()
        raise
    if go_ahead.sent:
        return Submission(refused, protocol, None, replies, accepted=go_ahead.accepted)
    if go_ahead.error is not None:
        raise go_ahead.error
    # Someone waits to pipeline behind this message: its end waits for their commands.
    future = await protocol.write_body(body, phases.final_reply, phases.upload_idle, followed=True)
    return Submission(refused, protocol, future, accepted=go_ahead.accepted)


async def send_body(
    protocol: SMTPProtocol,
    message: MessageSource,
    phases: Timeouts,
    progress: ProgressCallback | None,
    accepted: list[str] | None = None,
) -> Submission:
    """The body after DATA's 354 (RFC 5321 section 4.1.1.4), for ``SMTP.data``; the
    caller holds the turn. Returns the message, its final reply judged (SMTPDataError
    unless 250; over LMTP, ``accepted`` names the recipients the replies are for)."""
    chunks, total = message_chunks(message)
    future = await protocol.write_body(
        _dot_stuffed(chunks, progress, total), phases.final_reply, phases.upload_idle
    )
    submission = Submission({}, protocol, future, accepted=accepted)
    await submission.reply()
    return submission


async def reset_quietly(protocol: SMTPProtocol, timeout: float | None, execute: Execute) -> None:
    """RSET after a failed transaction when the server reads commands; errors ignored.

    The caller holds the turn. After a 354 that answered a failed transaction (or in
    the middle of a body) nothing is sent: leaving the turn aborts the connection.
    """
    if not protocol.is_connected or protocol.session.phase not in _COMMAND_MODE:
        return
    with contextlib.suppress(SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException):
        await _single(protocol, execute, _RSET, timeout)


async def _single(
    protocol: SMTPProtocol, execute: Execute, line: bytes, timeout: float | None
) -> SMTPResponse:
    """``line`` (checked, CRLF-terminated) through the client's ``execute_command``.

    It sends on the client's current connection; the turn held is ``protocol``'s, which
    is that connection for as long as it is open (the client replaces a connection only
    after closing it), so a closed ``protocol`` stops here.
    """
    protocol.ensure_open()
    return await execute(*command_args(line), timeout=timeout)


async def _send_commands(
    protocol: SMTPProtocol,
    transaction: MailTransaction,
    pipelined: bool,
    timeout: float | None,
    execute: Execute,
) -> None:
    """MAIL, RCPT..., DATA: all in one batch when pipelined, else one at a time through
    ``execute``.

    Either way every reply goes through ``transaction.take`` in command order, so both
    modes raise the same exception at the same point.
    """
    commands = transaction.commands
    kinds = transaction.kinds
    if pipelined:  # RFC 2920 section 3.1: the whole group in one write
        replies, error = await protocol.exchange(b"".join(commands), kinds, timeout)
        for reply in replies:
            transaction.take(reply)
        if error is not None:
            transaction.check_open()
            raise error
        transaction.check_open()
        return
    for command in commands:
        transaction.check_open()
        try:
            reply = await _single(protocol, execute, command, timeout)
        except (SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException):
            transaction.check_open()
            raise
        transaction.take(reply)
    transaction.check_open()


async def _send_bdat(
    protocol: SMTPProtocol,
    chunks: AsyncGenerator[tuple[bytes, bool], None],
    pipelined: bool,
    timeout: float | None,
    final_timeout: float | None,
) -> list[SMTPResponse]:
    """Send the message as BDAT chunks (RFC 3030 section 2), the last with LAST.

    Each chunk is sent with its exact size and no dot-stuffing. When pipelined, chunks
    go out without waiting for each 250; the replies are still checked in order, and the
    first refusal ends the transfer (after the replies already owed have been read, so
    the connection stays in step). Returns the replies to LAST: one over SMTP, one per
    accepted recipient over LMTP (RFC 2033 section 4.2), judged by the caller.
    """
    outstanding: collections.deque[asyncio.Future[list[SMTPResponse]]] = collections.deque()
    last_future: asyncio.Future[list[SMTPResponse]] | None = None
    failure: SMTPResponse | None = None
    final: list[SMTPResponse] | None = None
    lmtp = protocol.session.lmtp

    async def collect(wait: bool) -> None:
        """Judge the replies owed: all of them, or (``wait`` False) those in."""
        nonlocal failure, final
        while outstanding and (wait or outstanding[0].done()):
            future = outstanding.popleft()
            try:
                replies = await future
            except (SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException) as exc:
                if future is last_future:  # the reply to LAST decides the message
                    _final_failure(exc)
                raise
            if future is last_future:
                final = replies
                if lmtp:
                    return  # each reply is one recipient's fate, judged by the caller
            reply = replies[0]
            if reply.code != 250 and failure is None:
                failure = reply

    async with contextlib.aclosing(chunks):
        async for data, last in chunks:
            line = (_BDAT_LAST if last else _BDAT) % len(data)
            future = protocol.post_bdat(line, data, last, final_timeout if last else timeout)
            outstanding.append(future)
            if last:
                last_future = future
            await protocol.drain(timeout)
            await collect(last or not pipelined)
            if failure is not None:
                break
    await collect(True)
    if failure is not None:
        protocol.session.bdat_stopped()
        raise SMTPDataError(failure.code, failure.message)
    assert final is not None
    return final


async def _dot_stuffed(
    chunks: AsyncIterator[bytes], progress: ProgressCallback | None, total: int | None
) -> AsyncGenerator[bytes, None]:
    """Encode a message for DATA chunk by chunk (``DataEncoder``), reporting progress.

    The last chunk and the end-of-data line go out in one piece, so a small message is a
    single write.
    """
    encoder = DataEncoder()
    sent = 0
    previous: bytes | None = None
    previous_length = 0
    async for piece in chunks:
        encoded = encoder.encode(piece)
        if previous is not None:
            yield previous
            sent += previous_length
            if progress is not None:
                progress(sent, total)
        previous, previous_length = encoded, len(piece)
    tail = encoder.finish()
    yield tail if previous is None else previous + tail
    if progress is not None:
        progress(sent + previous_length, total)


async def _bdat_chunks(
    chunks: AsyncIterator[bytes],
    line_endings: LineEndings | None,
    progress: ProgressCallback | None,
    total: int | None,
) -> AsyncGenerator[tuple[bytes, bool], None]:
    """The message as ``(chunk, last)`` pairs for BDAT, one chunk of look-ahead so the
    last one can carry LAST; line ends normalised unless ``line_endings`` is None."""
    sent = 0
    previous: bytes | None = None
    previous_length = 0
    async for piece in chunks:
        data = bytes(piece)
        if line_endings is not None:
            data = line_endings.normalise(data)
        if previous is not None:
            yield previous, False
            sent += previous_length
            if progress is not None:
                progress(sent, total)
        previous, previous_length = data, len(piece)
    yield (previous if previous is not None else b""), True
    if progress is not None:
        progress(sent + previous_length, total)


# -- message sources ----------------------------------------------------------------------


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    if len(data) <= CHUNK_SIZE:
        yield data
        return
    view = memoryview(data)
    for start in range(0, len(data), CHUNK_SIZE):
        yield bytes(view[start : start + CHUNK_SIZE])


async def _stream(source: Any) -> AsyncIterator[bytes]:
    if isinstance(source, AsyncIterable):
        async for chunk in source:
            yield _checked(chunk)
    elif hasattr(source, "read"):
        read = source.read
        # A file's read() may block (a disk, a pipe): it runs off the event loop. An
        # in-memory buffer and an async read() need no thread.
        direct = type(source) is io.BytesIO or inspect.iscoroutinefunction(read)
        while True:
            chunk = read(CHUNK_SIZE) if direct else await asyncio.to_thread(read, CHUNK_SIZE)
            if inspect.isawaitable(chunk):
                chunk = await chunk
            if not chunk:
                return
            yield _checked(chunk)
    else:
        for chunk in source:
            yield _checked(chunk)


def _checked(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(
        f"message chunks must be bytes, bytearray or memoryview, not {type(chunk).__name__}"
    )


def check_source(message: object) -> None:
    """Raise TypeError now for what cannot be a message (before anything is written)."""
    if isinstance(message, (str, bytes, bytearray, memoryview, AsyncIterable, Iterable)):
        return
    if hasattr(message, "read"):
        return
    raise TypeError(
        "message must be str, bytes, an iterable or async iterable of bytes, or a binary "
        f"file object, not {type(message).__name__}"
    )


def message_chunks(message: MessageSource) -> tuple[AsyncIterator[bytes], int | None]:
    """The message as an async stream of chunks, and its size when known up front.

    ``str`` is ASCII-encoded (as aiosmtplib does; ``UnicodeEncodeError`` otherwise),
    ``bytes`` are split into pieces of :data:`CHUNK_SIZE`; anything else is read as a
    stream: an async iterable or an iterable of bytes chunks, or a binary file object
    (its ``read`` may be a coroutine function). A stream is read only while it is being
    sent, so its size is unknown (``None``).
    """
    if isinstance(message, str):
        message = message.encode("ascii")
    if isinstance(message, (bytes, bytearray, memoryview)):
        data = bytes(message)
        return _pieces(data), len(data)
    if isinstance(message, (AsyncIterable, Iterable)) or hasattr(message, "read"):
        return _stream(message), None
    raise TypeError(
        "message must be str, bytes, an iterable or async iterable of bytes, or a binary "
        f"file object, not {type(message).__name__}"
    )
