"""The SMTP client: aiosmtplib's ``SMTP`` class, name for name, on the fastsmtp core.

Options, connecting and the server state are in :mod:`fastsmtp._connection`, AUTH in
:mod:`fastsmtp._auth`, mail transactions (DATA, BDAT, pipelining) in
:mod:`fastsmtp._sending`; this module adds the commands, STARTTLS, ``sendmail`` and
``send_message``. Command lines are built and checked by :mod:`fastsmtp._commands`; bytes
move through :mod:`fastsmtp.protocol`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Iterable, Sequence
from email.message import EmailMessage, Message
from types import TracebackType
from typing import Any

from ._commands import mail_line, rcpt_line, vrfy_line
from ._connection import (  # DEFAULT_TIMEOUT: public in aiosmtplib.smtp, not in __all__
    DEFAULT_TIMEOUT as DEFAULT_TIMEOUT,
)
from ._connection import SMTP_PORT, SMTP_STARTTLS_PORT, SMTP_TLS_PORT
from ._sending import _SMTPUTF8_NOT_SUPPORTED, SMTPSending
from ._sending import ProgressCallback as ProgressCallback
from ._transaction import MessageSource
from .errors import (
    SMTPException,
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)
from .response import SMTPResponse
from .typing import Default, SMTPTokenGenerator, SocketPathType, _default

__all__ = ("SMTP", "SMTP_PORT", "SMTP_STARTTLS_PORT", "SMTP_TLS_PORT")

class Submission:
    """A message handed to the server: the refused recipients now, the final reply later.

    Returned by the package-internal ``SMTP._submit``/``_submit_message``. Awaiting
    :meth:`reply` is how the caller learns the message's fate; not awaiting it loses
    nothing on the connection (the reply is still read in order), only the verdict.
    """

    __slots__ = ("_final", "refused")

    def __init__(
        self, refused: dict[str, SMTPResponse], final: SMTPResponse | Awaitable[SMTPResponse]
    ) -> None:
        self.refused = refused
        self._final = final

    async def reply(self) -> SMTPResponse:
        """The 250 final reply; raises SMTPDataError (and friends) as ``sendmail`` does,
        with ``outcome_unknown`` set when the message was out and no reply came."""
        final = self._final
        if isinstance(final, SMTPResponse):
            return final
        response = await final
        self._final = response
        return response


class SMTP(SMTPSending):
    """An SMTP client connection (RFC 5321), compatible with ``aiosmtplib.SMTP``.

    Construct it with connection options (no I/O happens), then ``await connect()``
    or use it as an async context manager. Every command method takes a
    keyword-only ``timeout`` (seconds; ``None`` waits forever) that defaults to the
    instance's ``timeout``.
    """

    # -- context manager ------------------------------------------------------------

    async def __aenter__(self) -> SMTP:
        if not self.is_connected:
            await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # asyncio.TimeoutError is the builtin TimeoutError from 3.11 on; on 3.10 the
        # SMTPTimeoutErrors derive from asyncio's own class.
        if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
            self.close()
            return
        try:
            await self.quit()
        except (SMTPServerDisconnected, SMTPResponseException, SMTPTimeoutError):
            pass
        finally:
            self.close()

    # -- connection -----------------------------------------------------------------

    async def connect(
        self,
        *,
        hostname: str | Default | None = _default,
        port: int | Default | None = _default,
        username: str | bytes | Default | None = _default,
        password: str | bytes | Default | None = _default,
        oauth_token_generator: SMTPTokenGenerator | Default | None = _default,
        local_hostname: str | Default | None = _default,
        source_address: tuple[str, int] | Default | None = _default,
        timeout: float | Default | None = _default,
        use_tls: bool | None = None,
        start_tls: bool | Default | None = _default,
        validate_certs: bool | None = None,
        client_cert: str | Default | None = _default,
        client_key: str | Default | None = _default,
        tls_context: ssl.SSLContext | Default | None = _default,
        cert_bundle: str | Default | None = _default,
        socket_path: SocketPathType | Default | None = _default,
        sock: socket.socket | Default | None = _default,
        allow_insecure_auth: bool | None = None,
        pipelining: bool | Default | None = _default,
        chunking: bool | Default | None = _default,
    ) -> SMTPResponse:
        """Connect, read the greeting, then STARTTLS and log in as configured.

        Options given here replace the stored ones (``timeout`` applies to this
        connect only). Returns the server's 220 greeting.
        """
        self._update_settings_from_kwargs(
            hostname=hostname,
            port=port,
            username=username,
            password=password,
            oauth_token_generator=oauth_token_generator,
            local_hostname=local_hostname,
            source_address=source_address,
            use_tls=use_tls,
            start_tls=start_tls,
            validate_certs=validate_certs,
            client_cert=client_cert,
            client_key=client_key,
            tls_context=tls_context,
            cert_bundle=cert_bundle,
            socket_path=socket_path,
            sock=sock,
            allow_insecure_auth=allow_insecure_auth,
            pipelining=pipelining,
            chunking=chunking,
        )
        self._validate_config()
        loop = asyncio.get_running_loop()
        self.loop = loop
        if self._locks_loop is not loop:
            # asyncio locks bind to the loop that first waits on them; a client reused
            # across loops (sendmail_sync) gets fresh ones.
            if not self._connect_lock.locked():
                self._connect_lock = asyncio.Lock()
            self._sendmail_lock = asyncio.Lock()
            self._locks_loop = loop
        if self.is_connected:
            raise SMTPException("SMTP instance is already connected")
        self._close_reason = None
        connect_timeout = self._timeout(timeout)
        await self._connect_lock.acquire()
        try:
            await self._get_default_local_hostname()
            response = await self._create_connection(connect_timeout)
            await self._maybe_start_tls_on_connect()
            await self._maybe_login_on_connect()
        except BaseException:
            self.close()
            raise
        return response

    async def _maybe_start_tls_on_connect(self) -> None:
        if self._start_tls_on_connect:
            await self.starttls()
        elif self._start_tls_on_connect is None and not self.use_tls:
            assert self.protocol is not None
            if self.protocol.is_tls:
                return
            await self._ehlo_or_helo_if_needed()
            if self.supports_extension("starttls"):
                await self.starttls()

    async def _maybe_login_on_connect(self) -> None:
        if self._oauth_token_generator is not None:
            if self._username is None:
                raise SMTPException("username is required when using oauth_token_generator")
            await self._ehlo_or_helo_if_needed()
            if "xoauth2" not in self.server_auth_methods:
                raise SMTPException(
                    "oauth_token_generator provided but server does not support XOAUTH2"
                )
            access_token = await self._oauth_token_generator()
            await self.auth_xoauth2(self._username, access_token)
        elif self._username is not None:
            await self.login(self._username, self._password or "")

    # -- commands -------------------------------------------------------------------

    async def help(self, *, timeout: float | Default | None = _default) -> str:
        """Send HELP; returns the help text."""
        await self._ehlo_or_helo_if_needed()
        response = await self._execute(b"HELP\r\n", timeout)
        if response.code not in (211, 214, 250):
            raise SMTPResponseException(response.code, response.message)
        return response.message

    async def rset(self, *, timeout: float | Default | None = _default) -> SMTPResponse:
        """Send RSET: abort the current mail transaction."""
        return await self._simple(b"RSET\r\n", timeout)

    async def noop(self, *, timeout: float | Default | None = _default) -> SMTPResponse:
        """Send NOOP."""
        return await self._simple(b"NOOP\r\n", timeout)

    async def _simple(self, line: bytes, timeout: float | Default | None) -> SMTPResponse:
        await self._ehlo_or_helo_if_needed()
        response = await self._execute(line, timeout)
        if response.code != 250:
            raise SMTPResponseException(response.code, response.message)
        return response

    async def _verify(
        self,
        verb: bytes,
        address: str,
        options: Iterable[str] | None,
        codes: tuple[int, ...],
        timeout: float | Default | None,
    ) -> SMTPResponse:
        options = list(options) if options is not None else []
        utf8 = any(option.upper() == "SMTPUTF8" for option in options)
        line = vrfy_line(verb, address, options, utf8)
        await self._ehlo_or_helo_if_needed()
        if utf8 and not self.supports_extension("smtputf8"):
            raise SMTPNotSupported(_SMTPUTF8_NOT_SUPPORTED)
        response = await self._execute(line, timeout)
        if response.code not in codes:
            raise SMTPResponseException(response.code, response.message)
        return response

    async def vrfy(
        self,
        address: str,
        /,
        *,
        options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """Send VRFY: ask the server to verify a mailbox."""
        return await self._verify(b"VRFY", address, options, (250, 251, 252), timeout)

    async def expn(
        self,
        address: str,
        /,
        *,
        options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """Send EXPN: ask the server to expand a mailing list."""
        return await self._verify(b"EXPN", address, options, (250,), timeout)

    async def mail(
        self,
        sender: str,
        /,
        *,
        options: Iterable[str] | None = None,
        encoding: str = "ascii",
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """Send MAIL FROM (RFC 5321 section 4.1.1.2); raises SMTPSenderRefused."""
        line = mail_line(sender, options, encoding)
        await self._ehlo_or_helo_if_needed()
        response = await self._execute(line, timeout)
        if response.code != 250:
            raise SMTPSenderRefused(response.code, response.message, sender)
        return response

    async def rcpt(
        self,
        recipient: str,
        /,
        *,
        options: Iterable[str] | None = None,
        encoding: str = "ascii",
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """Send RCPT TO (RFC 5321 section 4.1.1.3); raises SMTPRecipientRefused."""
        line = rcpt_line(recipient, options, encoding)
        await self._ehlo_or_helo_if_needed()
        response = await self._execute(line, timeout)
        if response.code not in (250, 251):
            raise SMTPRecipientRefused(response.code, response.message, recipient)
        return response

    async def quit(self, *, timeout: float | Default | None = _default) -> SMTPResponse:
        """Send QUIT and close the connection."""
        protocol = self._connected_protocol()
        protocol.mark_quit()
        try:
            response = await self._execute(b"QUIT\r\n", timeout)
            if response.code != 221:
                raise SMTPResponseException(response.code, response.message)
        finally:
            self.close()
        return response

    async def starttls(
        self,
        *,
        server_hostname: str | None = None,
        validate_certs: bool | None = None,
        client_cert: str | Default | None = _default,
        client_key: str | Default | None = _default,
        cert_bundle: str | Default | None = _default,
        tls_context: ssl.SSLContext | Default | None = _default,
        timeout: float | Default | None = _default,
    ) -> SMTPResponse:
        """Upgrade the connection with STARTTLS (RFC 3207), then forget the server state.

        The certificate is verified against ``server_hostname``, or else the host
        this client connected to (also when that host was the default).
        """
        self._update_settings_from_kwargs(
            validate_certs=validate_certs,
            client_cert=client_cert,
            client_key=client_key,
            cert_bundle=cert_bundle,
            tls_context=tls_context,
        )
        self._validate_config()
        protocol = self._connected_protocol()
        if protocol.is_tls:
            raise SMTPException("Connection already using TLS")
        await self._ehlo_or_helo_if_needed()
        if not self.supports_extension("starttls"):
            raise SMTPException("SMTP STARTTLS extension not supported by server.")
        context = await self._get_tls_context()
        if server_hostname is None:
            server_hostname = self._effective_hostname()
        response = await self._execute(b"STARTTLS\r\n", timeout)
        if response.code != 220:
            raise SMTPResponseException(response.code, response.message)
        try:
            transport = await protocol.start_tls(context, server_hostname, self._timeout(timeout))
        except BaseException:
            self.close()
            raise
        self.transport = transport
        # RFC 3207 section 4.2: discard everything learnt before the handshake.
        self._reset_server_state()
        return response

    # -- sending mail -----------------------------------------------------------------

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
        """Send one message to ``recipients`` (MAIL, RCPT each, DATA or BDAT).

        Returns ``(refused, reply)``: the refused recipients with the server's reply
        for each, and the text of the final reply. Raises if the sender or every
        recipient is refused, or the message is refused.

        When the server advertises PIPELINING (RFC 2920), MAIL, every RCPT and DATA
        go in one write (``pipelining=False`` turns this off); the results are the
        same as sending them one by one. ``message`` may be bytes, str, or a stream
        (see :meth:`data`); for a stream, give ``size`` to announce it with SIZE.
        """
        refused, final = await self._start_sendmail(
            sender,
            recipients,
            message,
            mail_options=mail_options,
            rcpt_options=rcpt_options,
            timeout=timeout,
            size=size,
            progress=progress,
        )
        # RFC 2920 section 3.1: with pipelining, the next transaction's commands may
        # go out while this message's final reply is on its way, so the final reply
        # is awaited outside the lock (the reply FIFO keeps the pairing exact).
        try:
            response = final if isinstance(final, SMTPResponse) else await final
        except SMTPResponseException:
            await self._reset_after_failure(timeout)
            raise
        return refused, response.message

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
        """Send an ``email.message`` object; sender and recipients default to its headers.

        Bcc and Resent-Bcc headers are removed from what is sent. SMTPUTF8 and
        8BITMIME are used when the addresses or the server call for them.
        """
        sender, recipient_list, flat, mail_opts = await self._prepare_message(
            message, sender, recipients, mail_options
        )
        return await self.sendmail(
            sender,
            recipient_list,
            flat,
            mail_options=mail_opts,
            rcpt_options=rcpt_options,
            timeout=timeout,
        )

    # -- the submission API (package-internal; SMTPPool is built on it) --------------

    async def _greet_if_needed(self, timeout: float | Default | None = _default) -> None:
        """EHLO (or HELO) unless this connection has already greeted the server."""
        if self.is_ehlo_or_helo_needed:
            await self._ehlo_or_helo_if_needed()

    async def _submit(
        self,
        sender: str,
        recipients: str | Sequence[str],
        message: MessageSource,
        *,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
        size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> Submission:
        """``sendmail`` up to the end of the message; the final reply comes later.

        Raises what ``sendmail`` raises before the message is out (the refusal of the
        sender, of every recipient, of DATA; a lost connection). The connection's turn
        is free again when this returns, so another transaction can be pipelined behind
        this one (RFC 2920 section 3.1); :meth:`Submission.reply` waits for this one's
        final reply. No RSET follows a failed final reply: the connection may already
        carry the next transaction.
        """
        refused, final = await self._start_sendmail(
            sender,
            recipients,
            message,
            mail_options=mail_options,
            rcpt_options=rcpt_options,
            timeout=timeout,
            size=size,
            progress=progress,
        )
        return Submission(refused, final)

    async def _submit_message(
        self,
        message: EmailMessage | Message,
        *,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Default | None = _default,
    ) -> Submission:
        """``send_message`` up to the end of the message (see :meth:`_submit`)."""
        sender, recipient_list, flat, mail_opts = await self._prepare_message(
            message, sender, recipients, mail_options
        )
        return await self._submit(
            sender,
            recipient_list,
            flat,
            mail_options=mail_opts,
            rcpt_options=rcpt_options,
            timeout=timeout,
        )

    def sendmail_sync(self, *args: Any, **kwargs: Any) -> tuple[dict[str, SMTPResponse], str]:
        """Connect, ``sendmail``, QUIT, in a new event loop (not from inside one)."""

        async def run() -> tuple[dict[str, SMTPResponse], str]:
            async with self:
                return await self.sendmail(*args, **kwargs)

        return asyncio.run(run())

    def send_message_sync(
        self, *args: Any, **kwargs: Any
    ) -> tuple[dict[str, SMTPResponse], str]:
        """Connect, ``send_message``, QUIT, in a new event loop (not from inside one)."""

        async def run() -> tuple[dict[str, SMTPResponse], str]:
            async with self:
                return await self.send_message(*args, **kwargs)

        return asyncio.run(run())
