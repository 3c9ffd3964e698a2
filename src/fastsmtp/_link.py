"""A client's hold on its connection: the options, the current protocol shell, and the
server's state, with the plumbing every command and transaction shares.

:class:`fastsmtp.smtp.SMTP` is a facade over one :class:`Link`: the facade keeps
aiosmtplib's public methods (names, signatures, messages) and decides what each command
means; the link opens and forgets connections, sends one command in its own turn, holds
the turn for an exchange of several commands, and runs mail transactions
(:mod:`fastsmtp._sending`) for both the facade and :class:`fastsmtp.SMTPPool`.

The link sends every single command through its owner's ``execute_command`` (given to it
as ``execute``), so a subclass of ``SMTP`` that overrides that method sees each one; only
pipelined groups and BDAT chunks are written directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from email.message import EmailMessage, Message
from typing import Protocol

from . import _connector
from ._auth import (
    Mechanism,
    OAuthBearer,
    Scram,
    XOAuth2Token,
    authenticate,
    scram,
    token_rejected,
)
from ._commands import command_line, validate_local_hostname
from ._options import ConnectionOptions, Timeouts
from ._scram import tls_server_end_point
from ._sending import (
    Envelope,
    Execute,
    ProgressCallback,
    Submission,
    check_source,
    message_envelope,
    prepare_message,
    send_body,
    transact,
)
from ._session import Kind, ServerState
from ._transaction import MessageSource
from .dsn import DSN
from .errors import (
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from .protocol import SMTPProtocol
from .response import SMTPResponse
from .typing import Default, SMTPTokenGenerator, _default

__all__ = ("Client", "Link")

log = logging.getLogger("fastsmtp")


class Client(Protocol):
    """What a link needs of the client that owns it (``SMTP``) for the STARTTLS and AUTH
    that ``connect`` runs, and for ``login()``: its public methods, which a subclass
    may override."""

    @property
    def supported_auth_methods(self) -> list[str]: ...

    async def starttls(self) -> SMTPResponse: ...

    async def login(self, username: str | bytes, password: str | bytes, /) -> SMTPResponse: ...


class Link:
    """One client's connection: opened, used one turn at a time, and forgotten."""

    __slots__ = (
        "_connect_lock",
        "_locks_loop",
        "close_reason",
        "execute",
        "greet",
        "idle_server",
        "lmtp",
        "options",
        "protocol",
        "refusal",
        "sendmail_lock",
        "serial",
    )

    def __init__(
        self,
        options: ConnectionOptions,
        execute: Execute,
        greet: Callable[[], Awaitable[None]],
    ) -> None:
        self.options = options
        #: The owner's ``execute_command`` and its EHLO-or-HELO-if-needed.
        self.execute = execute
        self.greet = greet
        #: Open LMTP sessions (RFC 2033) rather than SMTP ones (the LMTP client's).
        self.lmtp = False
        self.protocol: SMTPProtocol | None = None
        #: What is known of the server while there is no connection (nothing).
        self.idle_server = ServerState()
        #: Why the last connection ended, kept as the cause of "Server not connected".
        self.close_reason: Exception | None = None
        #: Set when a SCRAM server failed to prove it knows the password: every later
        #: AUTH on this connection raises it again, so login() cannot fall through to a
        #: mechanism that hands the password to a possible impostor.
        self.refusal: SMTPAuthenticationError | None = None
        self._locks_loop: asyncio.AbstractEventLoop | None = None
        self._connect_lock = asyncio.Lock()
        #: EHLO-if-needed, planning and the commands of one sendmail, one caller at a
        #: time (the final reply of a pipelined message is awaited outside it).
        self.sendmail_lock = asyncio.Lock()
        #: A connection to this server was lost with a transaction pipelined behind an
        #: end of data (see ``fastsmtp._pool._pipelining``): from then on ``submit``
        #: waits for each final reply before the next transaction starts.
        self.serial = False

    # -- the connection ------------------------------------------------------------

    async def open(self, timeout: float | Timeouts | Default | None) -> SMTPResponse:
        """Connect and read the greeting; returns it. STARTTLS and AUTH are the owner's."""
        loop = asyncio.get_running_loop()
        if self._locks_loop is not loop:
            # asyncio locks bind to the loop that first waits on them; a client reused
            # across loops (sendmail_sync) gets fresh ones.
            if not self._connect_lock.locked():
                self._connect_lock = asyncio.Lock()
            self.sendmail_lock = asyncio.Lock()
            self._locks_loop = loop
        if self.is_connected:
            raise SMTPException("SMTP instance is already connected")
        self.close_reason = None
        self.refusal = None
        await self._connect_lock.acquire()
        try:
            await _connector.local_hostname(self.options)
            phases = self.options.phases(timeout)
            self.protocol, response = await _connector.open_channel(
                self.options,
                phases.connect,
                self.forget,
                greeting_timeout=phases.greeting,
                lmtp=self.lmtp,
            )
        except BaseException:
            self.close()
            raise
        return response

    def close(self) -> None:
        """Abort the connection (no QUIT) and forget the server's state. Idempotent."""
        protocol = self.protocol
        if protocol is not None:
            self.close_reason = protocol.error
            if protocol.is_connected:
                protocol.abort()
            if protocol.lost_behind_end and not self.serial:
                self.serial = True
                log.warning(
                    "fastsmtp: the server dropped the connection while the next "
                    "transaction was pipelined behind an end of data (RFC 2920 section "
                    "3.1); this client now waits for each final reply before the next "
                    "transaction"
                )
        if self._connect_lock.locked():
            self._connect_lock.release()
        self.protocol = None
        self.idle_server = ServerState()

    def forget(self, protocol: SMTPProtocol) -> None:
        """``protocol``'s connection has ended: close it, and if it is the current one,
        the client's state too (a late word from an earlier connection changes nothing)."""
        if protocol is self.protocol:
            self.close()
        elif protocol.is_connected:
            protocol.abort()

    @property
    def is_connected(self) -> bool:
        """True if the connection is open."""
        return self.protocol is not None and self.protocol.is_connected

    def live(self) -> SMTPProtocol:
        """The current connection's shell; SMTPServerDisconnected if there is none."""
        if self.protocol is None:
            raise SMTPServerDisconnected("Server not connected") from self.close_reason
        return self.protocol

    def server(self) -> ServerState:
        """What the server said about itself on this connection."""
        protocol = self.protocol
        return protocol.session.server if protocol is not None else self.idle_server

    async def hostname(self, hostname: str | None) -> str:
        """The name for EHLO/HELO: ``hostname`` checked, else the local host's name."""
        if hostname is None:
            return await _connector.local_hostname(self.options)
        return validate_local_hostname(hostname)

    def check_auth_channel(self) -> None:
        """Refuse credentials over plaintext to a remote host (security.md section 3)."""
        protocol = self.live()
        if self.options.allow_insecure_auth or protocol.is_tls or _connector.is_local(protocol):
            return
        raise SMTPException(
            "Refusing to send credentials over an unencrypted connection to a remote "
            "server. Use TLS (use_tls=True or start_tls=True), or pass "
            "allow_insecure_auth=True if this channel is trusted."
        )

    # -- commands ------------------------------------------------------------------

    async def command(self, args: tuple[bytes, ...], timeout: float | None) -> SMTPResponse:
        """One command line in its own turn (``execute_command``'s work).

        The session names what the reply answers from the verb (and knows an AUTH
        exchange is under way, so its lines are never logged). A connection that ends
        on the way is forgotten.
        """
        protocol = self.live()
        line = command_line(*args)
        kind = protocol.session.kind_of(args[0] if args else b"")
        try:
            return await protocol.execute(line, kind, timeout, redact=kind is Kind.AUTH)
        finally:
            if not protocol.is_connected:  # an error, or a 421 (RFC 5321 section 3.8)
                self.forget(protocol)

    @contextlib.asynccontextmanager
    async def exchange(self) -> AsyncIterator[SMTPProtocol]:
        """Hold the turn for several commands (AUTH, STARTTLS, DATA and its body); the
        commands inside go through ``execute`` and share it. A connection that ends on
        the way is forgotten."""
        protocol = self.live()
        try:
            async with protocol.turn:
                yield protocol
        finally:
            if not protocol.is_connected:
                self.forget(protocol)

    async def authenticate(
        self, mechanism: Mechanism, timeout: float | Timeouts | Default | None
    ) -> SMTPResponse:
        """Run a SASL mechanism in one turn, each line through ``execute``."""
        if self.refusal is not None:
            raise SMTPAuthenticationError(*self.refusal.args)
        self.check_auth_channel()
        async with self.exchange():
            try:
                response = await authenticate(
                    mechanism, lambda line: self.execute(*line.split(b" "), timeout=timeout)
                )
            except SMTPAuthenticationError as exc:
                if isinstance(mechanism, Scram) and mechanism.unproven:
                    self.refusal = exc
                raise
        if isinstance(mechanism, Scram) and not mechanism.verified:
            self.refusal = mechanism.unproven_success(response)
            raise self.refusal
        return response

    async def scram(
        self,
        hash_name: str,
        username: str | bytes,
        password: str | bytes,
        timeout: float | Timeouts | Default | None,
    ) -> SMTPResponse:
        """SCRAM-SHA-1 or -256 (RFC 5802, RFC 7677), -PLUS when the session is TLS and
        the server offers it (channel binding tls-server-end-point, RFC 5929)."""
        await self.greet()
        binding = self.channel_binding()
        family = "scram-sha-256" if hash_name == "sha256" else "scram-sha-1"
        offered = family + "-plus" in self.server().auth_methods
        return await self.authenticate(
            scram(hash_name, username, password, binding, offered), timeout
        )

    def channel_binding(self) -> bytes | None:
        """The session's tls-server-end-point data, or None (no TLS, or undefined for
        the server certificate's signature algorithm)."""
        protocol = self.live()
        transport = protocol.transport
        if not protocol.is_tls or transport is None:
            return None
        ssl_object = transport.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        return tls_server_end_point(certificate) if certificate else None

    def oauth_mechanism(
        self, username: str | bytes, access_token: str | bytes, bearer: bool
    ) -> Mechanism:
        """OAUTHBEARER (naming the host and port connected to) or XOAUTH2."""
        if not bearer:
            return XOAuth2Token(username, access_token)
        options = self.options
        host = options.hostname if options.socket_path is None else None
        port = options.port if options.port is not None else options.default_port()
        return OAuthBearer(username, access_token, host, port if host is not None else None)

    async def start(self, client: Client) -> None:
        """What ``connect`` does after the greeting, as configured (compat-api 3.3):
        STARTTLS (required, or when offered unless ``start_tls=False``), then AUTH."""
        options = self.options
        if options.start_tls:
            await client.starttls()
        elif options.start_tls is None and not options.use_tls and not self.live().is_tls:
            await self.greet()
            if self.server().supports("starttls"):
                await client.starttls()
        if options.oauth_token_generator is not None:
            if options.username is None:
                raise SMTPException("username is required when using oauth_token_generator")
            await self.oauth(options.username, options.oauth_token_generator)
        elif options.username is not None:
            await client.login(options.username, options.password or "")

    async def login(
        self,
        client: Client,
        username: str | bytes,
        password: str | bytes,
        timeout: float | Timeouts | Default | None,
    ) -> SMTPResponse:
        """``login()``: each of the client's ``supported_auth_methods`` in turn, through
        its ``auth_<name>`` handler (a subclass may add one); an SMTPAuthenticationError
        moves on to the next. Raises the last one, or SMTPException if none fits."""
        await self.greet()
        if not self.server().supports("auth"):
            message = "The SMTP AUTH extension is not supported by this server."
            if not self.live().is_tls:
                message += " Try connecting via TLS (or STARTTLS)."
            raise SMTPException(message)
        self.check_auth_channel()
        error: SMTPAuthenticationError | None = None
        for method in client.supported_auth_methods:
            handler = getattr(client, "auth_" + method.replace("-", ""), None)
            if handler is None:
                raise RuntimeError(f"Missing handler for auth method {method}")
            try:
                response: SMTPResponse = await handler(username, password, timeout=timeout)
            except SMTPAuthenticationError as exc:
                error = exc
            else:
                return response
        if error is not None:
            raise error
        raise SMTPException("No suitable authentication method found.")

    async def oauth(self, username: str | bytes, generator: SMTPTokenGenerator) -> SMTPResponse:
        """Log in with tokens from ``generator`` (connect's ``oauth_token_generator``):
        OAUTHBEARER if the server offers it, else XOAUTH2. A token the server rejects
        (an error challenge saying 401/invalid_token, or 535) is replaced by a fresh one
        from the generator, once."""
        await self.greet()
        methods = self.server().auth_methods
        bearer = "oauthbearer" in methods
        if not bearer and "xoauth2" not in methods:
            raise SMTPException(
                "oauth_token_generator provided but server does not support XOAUTH2"
            )
        self.check_auth_channel()  # before a token is fetched for nothing
        mechanism = self.oauth_mechanism(username, await generator(), bearer)
        try:
            return await self.authenticate(mechanism, _default)
        except SMTPAuthenticationError as exc:
            if not token_rejected(mechanism, exc) or not self.is_connected:
                raise
        mechanism = self.oauth_mechanism(username, await generator(), bearer)
        return await self.authenticate(mechanism, _default)

    async def starttls(
        self, server_hostname: str | None, timeout: float | Timeouts | Default | None
    ) -> SMTPResponse:
        """STARTTLS and the handshake in one turn (RFC 3207): no other caller writes
        in between. The session then forgets what the server said (section 4.2)."""
        if self.live().is_tls:
            raise SMTPException("Connection already using TLS")
        await self.greet()
        if not self.server().supports("starttls"):
            raise SMTPException("SMTP STARTTLS extension not supported by server.")
        context = await _connector.tls_context(self.options)
        if server_hostname is None:
            server_hostname = self.options.tls_hostname()
        async with self.exchange() as protocol:
            response = await self.execute(b"STARTTLS", timeout=timeout)
            if response.code != 220:
                raise SMTPResponseException(response.code, response.message)
            await protocol.start_tls(context, server_hostname, self.options.phases(timeout).connect)
        return response

    async def data(
        self,
        message: MessageSource,
        timeout: float | Timeouts | Default | None,
        progress: ProgressCallback | None,
        accepted: list[str] | None = None,
    ) -> Submission:
        """DATA, then the body after its 354, in one turn (RFC 5321 section 4.1.1.4).
        Returns the message with its final reply judged (``accepted``: over LMTP, the
        recipients the replies after it are for, RFC 2033 section 4.2)."""
        async with self.exchange() as protocol:
            start = await self.execute(b"DATA", timeout=timeout)
            if start.code != 354:
                raise SMTPDataError(start.code, start.message)
            phases = self.options.phases(timeout)
            return await send_body(protocol, message, phases, progress, accepted)

    async def quit(self, timeout: float | Timeouts | Default | None) -> SMTPResponse:
        """QUIT; on 221 the one clean close (RFC 5321 section 4.1.1.10). The connection
        is forgotten either way."""
        protocol = self.live()
        try:
            response = await self.execute(b"QUIT", timeout=timeout)
            if response.code != 221:
                raise SMTPResponseException(response.code, response.message)
            protocol.close()
        finally:
            self.forget(protocol)
        return response

    # -- mail transactions (also the pool's way in) --------------------------------

    async def finish(
        self, submission: Submission, timeout: float | Timeouts | Default | None
    ) -> tuple[dict[str, SMTPResponse], str]:
        """Wait for a submitted message's final reply: ``sendmail``'s result. A refusal
        is followed by RSET, as aiosmtplib does (errors ignored)."""
        try:
            response = await submission.reply()
        except SMTPResponseException:
            with contextlib.suppress(ConnectionError, SMTPResponseException):
                await self.execute(b"RSET", timeout=timeout)
            raise
        return submission.refused, response.message

    async def submit(
        self,
        sender: str,
        recipients: str | Sequence[str],
        message: MessageSource,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Timeouts | Default | None = _default,
        size: int | None = None,
        progress: ProgressCallback | None = None,
        *,
        dsn: DSN | None = None,
        require_tls: bool = False,
        smtputf8: bool | None = None,
        follows: Callable[[], bool] | None = None,
        awaited: bool = False,
    ) -> Submission:
        """``sendmail`` up to the end of the message; the final reply comes later.

        Raises what ``sendmail`` raises before the message is out (the refusal of the
        sender, of every recipient, of DATA; a lost connection). The turn is free again
        when this returns, so another transaction can be pipelined behind this one (RFC
        2920 section 3.1); :meth:`Submission.reply` waits for this one's final reply. No
        RSET follows a failed final reply: the connection may already carry the next
        transaction.

        ``follows()`` (the pool's) says whether another transaction is waiting for this
        connection; other ``submit`` calls waiting here are counted without it
        (``protocol.queued``). The end of this message then goes out in one write with
        the next one's commands. ``awaited``: the caller awaits the final reply right
        after (``sendmail``); this may then return with it in (see ``transact``).
        """
        # Every argument is checked before anything is written.
        envelope = Envelope(
            sender,
            recipients,
            mail_options,
            rcpt_options,
            dsn=dsn,
            require_tls=require_tls,
            smtputf8=smtputf8,
        )
        if type(message) is not bytes:
            check_source(message)
        options = self.options
        queued = self.protocol
        if queued is not None:
            queued.queued += 1
        try:
            async with self.sendmail_lock:
                protocol = self.protocol
                if protocol is None or not protocol.session.server.greeted:
                    await self.greet()
                    protocol = self.live()
                try:
                    submission = await transact(
                        protocol,
                        options,
                        envelope,
                        message,
                        phases=options.phases(timeout),
                        size=size,
                        progress=progress,
                        execute=self.execute,
                        follows=follows,
                        awaited=awaited,
                    )
                    if self.serial:
                        await submission.settled()
                    return submission
                finally:
                    if not protocol.is_connected:
                        self.forget(protocol)
        finally:
            if queued is not None:
                queued.queued -= 1

    async def submit_message(
        self,
        message: EmailMessage | Message,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: float | Timeouts | Default | None = _default,
        *,
        dsn: DSN | None = None,
        require_tls: bool = False,
        smtputf8: bool | None = None,
        follows: Callable[[], bool] | None = None,
        awaited: bool = False,
    ) -> Submission:
        """``send_message`` up to the end of the message (see :meth:`submit`)."""
        sender, recipient_list = message_envelope(message, sender, recipients)
        if dsn is not None or require_tls:
            # Checked before the greeting (a bad DSN, conflicting raw options), as
            # sendmail checks them; with the encoding prepare_message may choose.
            utf8 = smtputf8 is not False and not all(
                address.isascii() for address in (sender, *recipient_list)
            )
            Envelope(
                sender,
                recipient_list,
                [*(mail_options or ()), *(["SMTPUTF8"] if utf8 else [])],
                rcpt_options,
                dsn=dsn,
                require_tls=require_tls,
            )
        if not self.server().greeted:
            await self.greet()
        flat, mail_opts = prepare_message(
            message, sender, recipient_list, mail_options, self.server(), smtputf8
        )
        return await self.submit(
            sender,
            recipient_list,
            flat,
            mail_options=mail_opts,
            rcpt_options=rcpt_options,
            timeout=timeout,
            dsn=dsn,
            require_tls=require_tls,
            smtputf8=smtputf8,
            follows=follows,
            awaited=awaited,
        )
