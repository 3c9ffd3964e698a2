"""The LMTP client (RFC 2033): ``SMTP``'s sessions and transactions, spoken as LMTP.

LMTP is how mail is handed to a mailbox store (Dovecot, Cyrus, a spam filter's back end)
over TCP or a Unix socket. It differs from SMTP where the client can see it in two ways,
both decided in the sans-I/O core (``fastsmtp._lmtp``, ``SMTPSession(lmtp=True)``):

- LHLO instead of EHLO, and no HELO to fall back to (section 4.1);
- after the final dot, one reply per recipient whose RCPT succeeded, in RCPT order
  (section 4.2): the message may be delivered to some and refused for others.

``sendmail``/``send_message`` keep aiosmtplib's shape: ``(refused, reply text)``, where
``refused`` now also holds the recipients refused after the message, and the reply is the
first 250; they raise ``LMTPDataError`` (an ``SMTPDataError``) only when no recipient got
the message. :meth:`~fastsmtp.LMTP.deliver` returns a :class:`~fastsmtp.SendResult` with every
recipient's own final reply instead of raising for refusals.

PIPELINING is what RFC 2033 section 5 requires of a server, and it is used as over SMTP
(one write for MAIL, every RCPT and DATA); BDAT is used only when the server advertises
CHUNKING and ``chunking`` allows it, the per-recipient replies then answering BDAT LAST.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from email.message import EmailMessage, Message

from ._lmtp import LHLO
from ._options import LMTP_PORT, Timeouts
from ._sending import ProgressCallback, Submission, check_source, message_envelope
from ._transaction import MessageSource
from .dsn import DSN
from .errors import (
    LMTPDataError,
    SMTPHeloError,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from .response import SMTPResponse
from .results import RecipientRefusal, SendResult, SendStatus
from .smtp import SMTP
from .typing import Default, _default

__all__ = ("LMTP", "LMTP_PORT")

_Timeout = float | Timeouts | Default | None


class LMTP(SMTP):
    """An LMTP client connection (RFC 2033), over TCP (port 24 unless ``port`` is given;
    never 25, section 5) or a Unix socket (``socket_path``).

    It takes ``SMTP``'s options and has its methods; what differs is said on each one
    here and in the module docstring.
    """

    _lmtp = True
    #: Recipients accepted by :meth:`rcpt` since the last :meth:`mail`, for :meth:`data`.
    _accepted: tuple[str, ...] = ()

    # -- greeting (RFC 2033 section 4.1) ------------------------------------------------

    async def _ehlo_or_helo_if_needed(self) -> None:
        if self.is_ehlo_or_helo_needed:
            await self.lhlo()

    async def lhlo(
        self, *, hostname: str | None = None, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """Send LHLO and record the server's extensions; SMTPHeloError unless 250."""
        name = await self._link.hostname(hostname)
        response = await self.execute_command(LHLO, name.encode("ascii"), timeout=timeout)
        if response.code != 250:
            raise SMTPHeloError(response.code, response.message)
        self.last_ehlo_response = response
        return response

    async def ehlo(
        self, *, hostname: str | None = None, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """LMTP's EHLO is LHLO (RFC 2033 section 4.1): sends LHLO."""
        return await self.lhlo(hostname=hostname, timeout=timeout)

    async def helo(
        self, *, hostname: str | None = None, timeout: _Timeout = _default
    ) -> SMTPResponse:
        """LMTP has no HELO (RFC 2033 section 4.1): SMTPNotSupported, nothing sent."""
        raise SMTPNotSupported("LMTP has no HELO (RFC 2033 section 4.1); use lhlo()")

    # -- one command at a time ------------------------------------------------------------

    async def mail(
        self,
        sender: str,
        /,
        *,
        options: Iterable[str] | None = None,
        encoding: str = "ascii",
        timeout: _Timeout = _default,
    ) -> SMTPResponse:
        """MAIL FROM, as ``SMTP.mail``; starts a new list of accepted recipients."""
        self._accepted = ()
        return await super().mail(sender, options=options, encoding=encoding, timeout=timeout)

    async def rcpt(
        self,
        recipient: str,
        /,
        *,
        options: Iterable[str] | None = None,
        encoding: str = "ascii",
        timeout: _Timeout = _default,
    ) -> SMTPResponse:
        """RCPT TO, as ``SMTP.rcpt``; an accepted recipient is owed a reply after DATA."""
        response = await super().rcpt(
            recipient, options=options, encoding=encoding, timeout=timeout
        )
        self._accepted = (*self._accepted, recipient)
        return response

    async def data(
        self,
        message: MessageSource,
        /,
        *,
        timeout: _Timeout = _default,
        progress: ProgressCallback | None = None,
    ) -> SMTPResponse:
        """DATA and the message, as ``SMTP.data``; then one reply per recipient accepted
        since :meth:`mail` (RFC 2033 section 4.2). Returns the first 250; raises
        ``LMTPDataError`` if the message was refused for any recipient (its ``refused``
        says for which; the others got it)."""
        if not self.is_connected:
            raise SMTPServerDisconnected("Connection lost")
        check_source(message)
        await self._ehlo_or_helo_if_needed()
        accepted = list(self._accepted)
        owed = self._server_owed()
        if len(accepted) != owed:
            # RCPTs sent some other way (execute_command): name the replies by place.
            accepted = [f"recipient {index}" for index in range(1, owed + 1)]
        submission = await self._link.data(message, timeout, progress, accepted)
        response = await submission.reply()
        if submission.refused:
            refused = submission.refused
            first = next(iter(refused.values()))
            raise LMTPDataError(first.code, first.message, refused)
        return response

    def _server_owed(self) -> int:
        protocol = self._link.live()
        return protocol.session.final_replies

    # -- whole messages, with a typed result ----------------------------------------------

    async def deliver(
        self,
        sender: str,
        recipients: str | Sequence[str],
        message: MessageSource,
        /,
        *,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: _Timeout = _default,
        size: int | None = None,
        progress: ProgressCallback | None = None,
        dsn: DSN | None = None,
        require_tls: bool = False,
        smtputf8: bool | None = None,
    ) -> SendResult:
        """``sendmail``, with a :class:`~fastsmtp.SendResult` for the refusals: who got
        the message (``accepted``, and ``replies``: each one's own final reply, with its
        queue id), who did not and why (``refused``), and a status. Raises what is no
        recipient's fate: a lost connection, a timeout, bad input. ``dsn``,
        ``require_tls`` and ``smtputf8`` as for :meth:`~fastsmtp.SMTP.sendmail`."""
        names = [recipients] if isinstance(recipients, str) else list(recipients)
        try:
            submission = await self._link.submit(
                sender,
                recipients,
                message,
                mail_options,
                rcpt_options,
                timeout,
                size,
                progress,
                dsn=dsn,
                require_tls=require_tls,
                smtputf8=smtputf8,
            )
            await self._link.finish(submission, timeout)
        except (SMTPResponseException, SMTPRecipientsRefused) as exc:
            return self._refused(exc, names)
        return self._delivered(submission)

    async def deliver_message(
        self,
        message: EmailMessage | Message,
        /,
        *,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
        mail_options: Iterable[str] | None = None,
        rcpt_options: Iterable[str] | None = None,
        timeout: _Timeout = _default,
        dsn: DSN | None = None,
        require_tls: bool = False,
        smtputf8: bool | None = None,
    ) -> SendResult:
        """``send_message`` with a :class:`~fastsmtp.SendResult` (see :meth:`deliver`)."""
        sender, names = message_envelope(message, sender, recipients)
        try:
            submission = await self._link.submit_message(
                message,
                sender,
                names,
                mail_options,
                rcpt_options,
                timeout,
                dsn=dsn,
                require_tls=require_tls,
                smtputf8=smtputf8,
            )
            await self._link.finish(submission, timeout)
        except (SMTPResponseException, SMTPRecipientsRefused) as exc:
            return self._refused(exc, names)
        return self._delivered(submission)

    def _enhanced(self) -> bool:
        return self.supports_extension("enhancedstatuscodes")

    def _delivered(self, submission: Submission) -> SendResult:
        enhanced = self._enhanced()
        refused = {
            recipient: RecipientRefusal.from_response(reply, enhanced=enhanced)
            for recipient, reply in submission.refused.items()
        }
        return SendResult(
            SendStatus.PARTIALLY_SENT if refused else SendStatus.SENT,
            accepted=list(submission.replies),
            refused=refused,
            reply=next(iter(submission.replies.values()), None),
            attempts=1,
            replies=dict(submission.replies),
        )

    def _refused(
        self, exc: SMTPResponseException | SMTPRecipientsRefused, recipients: list[str]
    ) -> SendResult:
        """A message no recipient got, as a result; an error whose outcome is unknown
        (the message was out and no reply came) is raised again."""
        if exc.outcome_unknown:
            raise exc
        replies: dict[str, SMTPResponse]
        final: SMTPResponse | None = None
        if isinstance(exc, SMTPRecipientsRefused):
            replies = {e.recipient: SMTPResponse(e.code, e.message) for e in exc.recipients}
        elif isinstance(exc, LMTPDataError):
            replies, final = exc.refused, SMTPResponse(exc.code, exc.message)
        else:  # MAIL or DATA refused: for every recipient alike
            if not 400 <= exc.code < 600:
                raise exc
            final = SMTPResponse(exc.code, exc.message)
            replies = dict.fromkeys(recipients, final)
        enhanced = self._enhanced()
        refused = {
            recipient: RecipientRefusal.from_response(reply, enhanced=enhanced)
            for recipient, reply in replies.items()
        }
        permanent = all(refusal.permanent for refusal in refused.values())
        return SendResult(
            SendStatus.FAILED_PERMANENTLY if permanent else SendStatus.FAILED_TEMPORARILY,
            refused=refused,
            reply=final,
            attempts=1,
            exception=exc,
        )
