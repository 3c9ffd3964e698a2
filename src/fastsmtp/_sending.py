"""Mail transfer for the SMTP client: one transaction from MAIL to the final reply.

``SMTPSending`` runs a :class:`fastsmtp._transaction.MailTransaction` over the protocol
shell: MAIL, RCPT and DATA one at a time or, with RFC 2920 PIPELINING, in one write;
the body as one encoded buffer or a stream of pieces with flow control (DATA), or as
BDAT chunks (RFC 3030). ``fastsmtp.smtp.SMTP`` builds ``sendmail`` and ``send_message``
on it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from email.message import EmailMessage, Message
from typing import Any, cast

from ._auth import SMTPAuth
from ._commands import mail_line, message_size, rcpt_line
from ._speedups import DataEncoder
from ._transaction import (
    CHUNK_SIZE,
    DATA,
    LineEndings,
    MailTransaction,
    MessageSource,
    message_chunks,
)
from .email import (
    check_header_block,
    check_message_headers,
    extract_recipients,
    extract_sender,
    flatten_message,
)
from .errors import (
    SMTPDataError,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from .protocol import SMTPProtocol, final_reply
from .response import SMTPResponse
from .typing import Default, _default

__all__ = ("ProgressCallback", "SMTPSending")

_SMTPUTF8_NOT_SUPPORTED = "SMTPUTF8 is not supported by this server"

#: ``progress(sent, total)``: message bytes sent so far, and the size if known.
ProgressCallback = Callable[[int, "int | None"], object]


async def _dot_stuffed(
    chunks: AsyncIterator[bytes], progress: ProgressCallback | None, total: int | None
) -> AsyncGenerator[bytes, None]:
    """Encode a message for DATA chunk by chunk (``DataEncoder``), reporting progress.

    The last chunk and the end-of-data line go out in one piece, so a small message
    is a single write.
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


class SMTPSending(SMTPAuth):
    """Mail transactions (DATA, BDAT, pipelining) for :class:`fastsmtp.SMTP`."""

    async def data(
        self,
        message: MessageSource,
        /,
        *,
        timeout: float | Default | None = _default,
        progress: ProgressCallback | None = None,
    ) -> SMTPResponse:
        """Send DATA and the message (RFC 5321 section 4.1.1.4); raises SMTPDataError.

        ``message`` is bytes, str (ASCII), or a stream: an iterable or async iterable
        of bytes chunks, or a binary file object, read and sent chunk by chunk with
        flow control. Line ends are normalised to CRLF and lines starting with "."
        are stuffed; the body goes only after the server's 354. ``progress(sent,
        total)`` is called as the message goes out (``total`` is None for a stream).
        """
        if not self.is_connected:
            raise SMTPServerDisconnected("Connection lost")
        chunks, total = message_chunks(message)
        await self._ehlo_or_helo_if_needed()
        protocol = self._connected_protocol()
        timeout_value = self._timeout(timeout)
        await protocol.acquire()
        try:
            replies, error = await protocol.exchange(DATA, 1, timeout_value)
            if error is not None:
                self.close()
                raise error
            start = replies[0]
            if start.code == 421:
                self.close()
            if start.code != 354:
                raise SMTPDataError(start.code, start.message)
            future = await self._write_body(
                protocol, _dot_stuffed(chunks, progress, total), timeout_value
            )
            return await self._accepted(future)
        finally:
            protocol.release()

    async def _write_body(
        self,
        protocol: SMTPProtocol,
        body: bytes | AsyncGenerator[bytes, None],
        timeout: float | None,
    ) -> asyncio.Future[list[SMTPResponse]]:
        """Upload a DATA body; any failure mid-body leaves the server in DATA mode, so
        the connection is closed (it cannot be brought back to a known state)."""
        try:
            return await protocol.write_body(body, timeout, timeout)
        except BaseException:
            self.close()
            raise

    async def _start_sendmail(
        self,
        sender: str,
        recipients: str | Sequence[str],
        message: MessageSource,
        *,
        mail_options: Iterable[str] | None,
        rcpt_options: Iterable[str] | None,
        timeout: float | Default | None,
        size: int | None,
        progress: ProgressCallback | None,
    ) -> tuple[dict[str, SMTPResponse], SMTPResponse | Awaitable[SMTPResponse]]:
        """``sendmail`` up to the message's end: the refused recipients, and the final
        reply (or, when pipelining, an awaitable of it, which the caller must await)."""
        recipient_list = [recipients] if isinstance(recipients, str) else list(recipients)
        mail_opts = list(mail_options) if mail_options is not None else []
        rcpt_opts = tuple(rcpt_options) if rcpt_options is not None else ()
        encoding = "ascii"
        binary = False
        for option in mail_opts:
            if option.lower() == "smtputf8":
                encoding = "utf-8"
            elif option.upper() == "BODY=BINARYMIME":
                binary = True
        if type(message) is not bytes:
            if isinstance(message, str):
                message = message.encode("ascii")
            elif isinstance(message, (bytearray, memoryview)):
                message = bytes(message)
        # Every argument is checked before anything is written.
        mail = mail_line(sender, mail_opts, encoding)
        rcpt_lines = [rcpt_line(r, rcpt_opts, encoding) for r in recipient_list]
        # A stream is wrapped now, so what is not a message is a TypeError now.
        stream = None if isinstance(message, bytes) else message_chunks(message)

        async with self._sendmail_lock:
            if self.is_ehlo_or_helo_needed:  # (checked here: no coroutine when not)
                await self._ehlo_or_helo_if_needed()
            if encoding != "ascii" and not self.supports_extension("smtputf8"):
                raise SMTPNotSupported(_SMTPUTF8_NOT_SUPPORTED)
            pipelined = self._use_pipelining()
            chunked = self._use_chunking(binary)
            body: bytes | AsyncGenerator[Any, None]
            whole = progress is None and not chunked
            if whole and isinstance(message, bytes) and len(message) <= CHUNK_SIZE:
                # One pass of the core gives both the DATA body and its SIZE. A larger
                # message is encoded piece by piece as it is written (below): a second
                # whole copy of it would cost more in fresh memory than the encoding.
                encoder = DataEncoder()
                body = encoder.encode(message) + encoder.finish()
                if size is None:
                    size = encoder.size
            else:
                chunks, total = stream if stream is not None else message_chunks(message)
                if size is None and isinstance(message, bytes) and self.supports_extension("size"):
                    size = len(message) if binary else message_size(message)
                if chunked:
                    body = _bdat_chunks(chunks, None if binary else LineEndings(), progress, total)
                else:
                    body = _dot_stuffed(chunks, progress, total)
            if size is not None and self.supports_extension("size"):
                mail_opts.insert(0, f"size={size}")
                mail = mail_line(sender, mail_opts, encoding)
            transaction = MailTransaction(
                sender, recipient_list, mail, rcpt_lines, data=not chunked
            )
            try:
                final = await self._transact(transaction, body, pipelined, chunked, timeout)
            except (SMTPResponseException, SMTPRecipientsRefused):
                await self._reset_after_failure(timeout)
                raise
        return transaction.refused, final

    async def _reset_after_failure(self, timeout: float | Default | None) -> None:
        """RSET after a failed transaction, as aiosmtplib does; errors are ignored."""
        with contextlib.suppress(ConnectionError, SMTPResponseException):
            await self._execute(b"RSET\r\n", timeout)

    def _use_pipelining(self) -> bool:
        advertised = self.supports_extension("pipelining")
        if self.pipelining and not advertised:
            raise SMTPNotSupported("PIPELINING is not supported by this server")
        return advertised and self.pipelining is not False

    def _use_chunking(self, binary: bool) -> bool:
        advertised = self.supports_extension("chunking")
        if binary:
            # RFC 3030 section 3: a BINARYMIME body can only be sent with BDAT.
            if self.chunking is False:
                raise ValueError("BODY=BINARYMIME needs BDAT, but chunking=False")
            if not (advertised and self.supports_extension("binarymime")):
                raise SMTPNotSupported("BINARYMIME is not supported by this server")
            return True
        if self.chunking and not advertised:
            raise SMTPNotSupported("CHUNKING is not supported by this server")
        return advertised and self.chunking is not False

    async def _transact(
        self,
        transaction: MailTransaction,
        body: bytes | AsyncGenerator[Any, None],
        pipelined: bool,
        chunked: bool,
        timeout: float | Default | None,
    ) -> SMTPResponse | Awaitable[SMTPResponse]:
        """Run a transaction in the connection's turn: commands, then the body.

        ``body`` is the encoded DATA body (whole, or a stream of pieces), or with
        ``chunked`` the stream of BDAT chunks. Returns the final reply, or when
        pipelining an awaitable of it: the turn is released as soon as the body is
        written, so another transaction can start while this reply is on its way.
        """
        protocol = self._connected_protocol()
        timeout_value = self._timeout(timeout)
        await protocol.acquire()
        try:
            await self._send_commands(protocol, transaction, pipelined, timeout_value)
            if chunked:
                assert not isinstance(body, bytes)
                response = await self._send_bdat(
                    protocol,
                    cast(AsyncGenerator[tuple[bytes, bool], None], body),
                    pipelined,
                    timeout_value,
                )
                return await self._accepted(response)
            future = await self._write_body(protocol, body, timeout_value)
            if not pipelined:
                return await self._accepted(future)
            return self._accepted(future)
        finally:
            protocol.release()

    async def _accepted(
        self, reply: asyncio.Future[list[SMTPResponse]] | SMTPResponse
    ) -> SMTPResponse:
        """The final reply of a message: 250, or SMTPDataError (421 also closes)."""
        if isinstance(reply, SMTPResponse):
            response = reply
        else:
            try:
                response = (await final_reply(reply))[0]
            except (SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException):
                self.close()
                raise
        if response.code == 421:
            self.close()
        if response.code != 250:
            raise SMTPDataError(response.code, response.message)
        return response

    async def _send_commands(
        self,
        protocol: SMTPProtocol,
        transaction: MailTransaction,
        pipelined: bool,
        timeout: float | None,
    ) -> None:
        """MAIL, RCPT..., DATA: all in one batch when pipelined, else one at a time.

        Either way every reply goes through ``transaction.take`` in command order, so
        both modes raise the same exception at the same point.
        """
        commands = transaction.commands
        step = len(commands) if pipelined else 1
        try:
            for start in range(0, len(commands), step):
                transaction.check_open()
                batch = commands[start : start + step]
                replies, error = await protocol.exchange(b"".join(batch), len(batch), timeout)
                try:
                    for reply in replies:
                        transaction.take(reply)
                except BaseException:
                    if batch[-1] == DATA and len(replies) == len(batch) and (
                        replies[-1].code == 354
                    ):
                        # RFC 2920 section 3.1: the server took DATA although the
                        # transaction had failed; it now waits for a body that will
                        # never come, and RSET is no longer possible.
                        self.close()
                    raise
                if error is not None:
                    transaction.check_open()
                    self.close()
                    raise error
            transaction.check_open()
        finally:
            if transaction.server_closing:
                self.close()

    async def _send_bdat(
        self,
        protocol: SMTPProtocol,
        chunks: AsyncGenerator[tuple[bytes, bool], None],
        pipelined: bool,
        timeout: float | None,
    ) -> SMTPResponse:
        """Send the message as BDAT chunks (RFC 3030 section 2), the last with LAST.

        Each chunk is sent with its exact size and no dot-stuffing. When pipelined,
        chunks go out without waiting for each 250; the replies are still checked in
        order, and the first refusal ends the transfer (after the replies already owed
        have been read, so the connection stays in step).
        """
        outstanding: collections.deque[asyncio.Future[list[SMTPResponse]]] = collections.deque()
        last_future: asyncio.Future[list[SMTPResponse]] | None = None
        failure: SMTPResponse | None = None
        final: SMTPResponse | None = None

        async def collect(wait: bool) -> None:
            """Judge the replies owed: all of them, or (``wait`` False) those in."""
            nonlocal failure, final
            while outstanding and (wait or outstanding[0].done()):
                future = outstanding.popleft()
                # The reply to LAST decides the message: a failure waiting for it
                # leaves the outcome unknown.
                reply = (await (final_reply(future) if future is last_future else future))[0]
                final = reply
                if reply.code != 250 and failure is None:
                    failure = reply

        try:
            async with contextlib.aclosing(chunks):
                async for data, last in chunks:
                    command = b"BDAT %d LAST\r\n" if last else b"BDAT %d\r\n"
                    future = protocol.post((command % len(data), data), timeout)
                    outstanding.append(future)
                    if last:
                        last_future = future
                    await protocol.drain(timeout)
                    await collect(last or not pipelined)
                    if failure is not None:
                        break
            await collect(True)
        except BaseException:
            self.close()
            raise
        if failure is not None:
            raise SMTPDataError(failure.code, failure.message)
        assert final is not None
        if final.code == 421:
            self.close()
        return final

    async def _prepare_message(
        self,
        message: EmailMessage | Message,
        sender: str | None,
        recipients: str | Sequence[str] | None,
        mail_options: Iterable[str] | None,
    ) -> tuple[str, list[str], bytes, list[str]]:
        """Envelope, flattened bytes and MAIL options for ``send_message``."""
        # Header injection (security.md section 9): refuse before anything is sent.
        check_message_headers(message)
        mail_opts = list(mail_options) if mail_options is not None else []
        if sender is None:
            sender = extract_sender(message)
        if sender is None:
            raise ValueError("No From header provided in message")
        if isinstance(recipients, str):
            recipient_list = [recipients]
        elif recipients is None:
            recipient_list = extract_recipients(message)
        else:
            recipient_list = list(recipients)
        if not recipient_list:
            raise ValueError("No recipient headers provided in message")

        await self._ehlo_or_helo_if_needed()
        utf8 = not sender.isascii() or any(not r.isascii() for r in recipient_list)
        upper = [option.upper() for option in mail_opts]
        if utf8:
            if not self.supports_extension("smtputf8"):
                raise SMTPNotSupported(
                    "An address containing non-ASCII characters was provided, but "
                    "SMTPUTF8 is not supported by this server"
                )
            if "SMTPUTF8" not in upper:
                mail_opts.append("SMTPUTF8")
        if self.supports_extension("8bitmime"):
            if "BODY=8BITMIME" not in upper:
                mail_opts.append("BODY=8BITMIME")
            cte_type = "8bit"
        else:
            cte_type = "7bit"
        flat = flatten_message(message, utf8=utf8, cte_type=cte_type)
        check_header_block(flat)
        return sender, recipient_list, flat, mail_opts
