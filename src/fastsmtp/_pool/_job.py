"""What the pool sends: one message, its envelope, and how to submit it on a client.

A :class:`Job` runs one mail transaction for some of its recipients through the
package-internal submission API (``Link.submit``/``submit_message`` of the client), so a retry can
address only the recipients still owed the message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from email.message import Message
from typing import Any, TypeAlias

from .._options import Timeouts
from .._transaction import MessageSource
from ..email import extract_recipients
from ..smtp import SMTP, Submission
from ..typing import Default, _default

__all__ = ("BulkItem", "Job", "bulk_job", "message_job", "recipient_list")

#: One item of ``send_many``: a message object, or ``(message, sender, recipients)``.
BulkItem: TypeAlias = (
    "Message | tuple[Message | bytes | str, str | None, str | Sequence[str] | None]"
)


class Job:
    """One message to send: how to run a transaction for some of its recipients."""

    __slots__ = ("before_attempt", "kwargs", "message", "recipients", "replayable", "sender")

    def __init__(
        self,
        message: Message | MessageSource,
        sender: str | None,
        recipients: list[str],
        kwargs: dict[str, Any],
    ) -> None:
        self.message = message
        self.sender = sender
        self.recipients = recipients
        self.kwargs = kwargs
        # A stream can be read once only: no second attempt.
        self.replayable = isinstance(message, (bytes, str, Message))
        #: Awaited before each attempt, on the checked-out connection just before MAIL;
        #: an exception it raises ends the attempt (a permanent failure unless it is an
        #: OSError), nothing having been written.
        self.before_attempt: Callable[[], Awaitable[None]] | None = None

    async def start(
        self,
        client: SMTP,
        recipients: list[str],
        follows: Callable[[], bool] | None = None,
    ) -> Submission:
        """Run the transaction up to the end of the message (``Link.submit``);
        ``follows()`` says whether another send waits to pipeline behind it."""
        kwargs = self.kwargs
        if isinstance(self.message, Message):
            return await client._link.submit_message(
                self.message,
                sender=self.sender,
                recipients=recipients,
                mail_options=kwargs.get("mail_options"),
                rcpt_options=kwargs.get("rcpt_options"),
                timeout=kwargs.get("timeout", _default),
                dsn=kwargs.get("dsn"),
                require_tls=kwargs.get("require_tls", False),
                smtputf8=kwargs.get("smtputf8"),
                follows=follows,
            )
        assert self.sender is not None
        return await client._link.submit(
            self.sender,
            recipients,
            self.message,
            mail_options=kwargs.get("mail_options"),
            rcpt_options=kwargs.get("rcpt_options"),
            timeout=kwargs.get("timeout", _default),
            size=kwargs.get("size"),
            progress=kwargs.get("progress"),
            dsn=kwargs.get("dsn"),
            require_tls=kwargs.get("require_tls", False),
            smtputf8=kwargs.get("smtputf8"),
            follows=follows,
        )


def recipient_list(recipients: str | Sequence[str]) -> list[str]:
    return [recipients] if isinstance(recipients, str) else list(recipients)


def message_job(
    message: Message,
    sender: str | None,
    recipients: str | Sequence[str] | None,
    mail_options: Iterable[str] | None = None,
    rcpt_options: Iterable[str] | None = None,
    timeout: float | Timeouts | Default | None = _default,
    extensions: dict[str, Any] | None = None,
) -> Job:
    """A job for ``send_message``'s arguments (``extensions``: dsn, require_tls,
    smtputf8)."""
    # The recipients are fixed once, so a retry can address a subset of them.
    recipients_ = extract_recipients(message) if recipients is None else recipient_list(recipients)
    kwargs = {
        "mail_options": None if mail_options is None else list(mail_options),
        "rcpt_options": None if rcpt_options is None else list(rcpt_options),
        "timeout": timeout,
        **(extensions or {}),
    }
    return Job(message, sender, recipients_, kwargs)


def bulk_job(item: BulkItem, extensions: dict[str, Any] | None = None) -> Job:
    """A job for one ``send_many`` item; TypeError/ValueError for a bad item."""
    if isinstance(item, Message):
        return message_job(item, None, None, extensions=extensions)
    if not isinstance(item, tuple) or len(item) != 3:
        raise TypeError(
            "send_many takes Message objects or (message, sender, recipients) tuples, "
            f"not {type(item).__name__}"
        )
    message, sender, recipients = item
    if isinstance(message, Message):
        return message_job(message, sender, recipients, extensions=extensions)
    if not isinstance(message, (bytes, str)):
        raise TypeError("a message in a send_many tuple must be a Message, bytes or str")
    if sender is None or recipients is None:
        raise ValueError("sender and recipients are required for a bytes or str message")
    return Job(message, sender, recipient_list(recipients), dict(extensions or {}))
