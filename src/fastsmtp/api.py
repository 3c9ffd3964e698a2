"""The one-call API: ``send()`` connects, sends one message and QUITs."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage, Message

from ._options import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT  # public in aiosmtplib.api
from ._options import ConnectionOptions, Timeouts
from ._transaction import MessageSource
from .dsn import DSN
from .response import SMTPResponse
from .smtp import SMTP, ProgressCallback
from .typing import SMTPTokenGenerator, SocketPathType

__all__ = ("send",)


async def send(
    message: EmailMessage | Message | MessageSource,
    /,
    *,
    sender: str | None = None,
    recipients: str | Sequence[str] | None = None,
    mail_options: Sequence[str] | None = None,
    rcpt_options: Sequence[str] | None = None,
    hostname: str | None = "localhost",
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
    sock: socket.socket | None = None,
    allow_insecure_auth: bool = False,
    pipelining: bool | None = None,
    chunking: bool | None = False,
    proxy: str | None = None,
    size: int | None = None,
    progress: ProgressCallback | None = None,
    dsn: DSN | None = None,
    require_tls: bool = False,
    smtputf8: bool | None = None,
) -> tuple[dict[str, SMTPResponse], str]:
    """Send one message: connect, (STARTTLS), (log in), send, QUIT.

    ``message`` is an ``email.message`` object (sender and recipients default to
    its headers) or a raw message -- ``str``, ``bytes``, or a stream of bytes chunks
    (see ``SMTP.data``) -- for which both are required. Returns the
    refused recipients and the final reply text, as ``SMTP.sendmail`` does.
    ``dsn``, ``require_tls`` and ``smtputf8`` are ``SMTP.sendmail``'s.
    """
    if not isinstance(message, Message):
        if not recipients:
            raise ValueError("Recipients must be provided with raw messages.")
        if not sender:
            raise ValueError("Sender must be provided with raw messages.")
    client = SMTP._from_options(ConnectionOptions.from_arguments(locals()))
    async with client:
        if not isinstance(message, Message):
            assert sender is not None and recipients is not None
            return await client.sendmail(
                sender,
                recipients,
                message,
                mail_options=mail_options,
                rcpt_options=rcpt_options,
                size=size,
                progress=progress,
                dsn=dsn,
                require_tls=require_tls,
                smtputf8=smtputf8,
            )
        return await client.send_message(
            message,
            sender=sender,
            recipients=recipients,
            mail_options=mail_options,
            rcpt_options=rcpt_options,
            dsn=dsn,
            require_tls=require_tls,
            smtputf8=smtputf8,
        )
