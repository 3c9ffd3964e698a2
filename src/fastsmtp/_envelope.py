"""The envelope of one message: MAIL FROM and RCPT TO lines, checked before anything is
written, with the parameters of the extensions asked for. No I/O.

RFC 5321 section 3.3 (MAIL, RCPT), with RFC 6531 (SMTPUTF8: a non-ASCII mailbox; without
it a non-ASCII domain goes as IDNA A-labels, see :mod:`fastsmtp._address`), RFC 3461 (DSN:
RET, ENVID, NOTIFY, ORCPT, see :mod:`fastsmtp.dsn`) and RFC 8689 (REQUIRETLS). What the
server allows is decided after EHLO (:meth:`Envelope.for_server`,
:mod:`fastsmtp._extensions`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from email.headerregistry import Address, AddressHeader, Group
from email.message import EmailMessage, Message

from ._address import envelope_address, idna_domain
from ._commands import mail_line, rcpt_line, refused_text
from ._extensions import check_require_tls, dsn_supported
from ._session import ServerState
from .dsn import DSN, MAIL_KEYWORDS, RCPT_KEYWORDS
from .email import (
    _address_fields,
    _recipients_of,
    _sender_of,
    check_header_block,
    check_message_headers,
    extract_recipients,
    extract_sender,
    flatten_message,
)
from .errors import (
    SMTPNotSupported,
    SMTPRecipientRefused,
    SMTPRecipientRefusedLocally,
    SMTPRecipientsRefusedLocally,
)

__all__ = ("Envelope", "message_envelope", "prepare_message")


class Envelope:
    """MAIL and RCPT lines of one message, checked before anything is written.

    A bad sender raises (``SMTPSenderRefusedLocally``, or ``UnicodeEncodeError`` for a
    non-ASCII one without SMTPUTF8). A bad recipient is refused locally, as a server
    refuses one: it goes to ``refused_locally`` and is not sent, the others are
    (``recipients`` and ``rcpt_lines`` hold only those). When every recipient is bad,
    ``SMTPRecipientsRefusedLocally`` is raised here, so nothing at all is written.

    ``dsn`` adds the RFC 3461 parameters (its values encoded here), ``require_tls`` the
    RFC 8689 ``REQUIRETLS`` parameter; whether the server allows them is decided later,
    after EHLO (:meth:`for_server`). ``smtputf8=False`` refuses a raw ``SMTPUTF8``.
    """

    __slots__ = (
        "_given",
        "binary",
        "dsn",
        "encoding",
        "mail_options",
        "plain_mail",
        "rcpt_lines",
        "recipients",
        "refused_locally",
        "require_tls",
        "sender",
    )

    def __init__(
        self,
        sender: str,
        recipients: str | Sequence[str],
        mail_options: Iterable[str] | None,
        rcpt_options: Iterable[str] | None,
        *,
        dsn: DSN | None = None,
        require_tls: bool = False,
        smtputf8: bool | None = None,
    ) -> None:
        self.sender = sender
        self.recipients = [recipients] if isinstance(recipients, str) else list(recipients)
        self.encoding = encoding = "ascii"
        self.binary = False
        self.dsn = dsn
        self.require_tls = require_tls
        if mail_options:
            self.mail_options = options = list(mail_options)
            for option in options:
                if option.lower() == "smtputf8":
                    self.encoding = encoding = "utf-8"
                elif option.upper() == "BODY=BINARYMIME":
                    self.binary = True
        else:
            self.mail_options = options = []
        rcpt_opts = tuple(rcpt_options) if rcpt_options else ()
        # What for_server() rebuilds from when the DSN parameters must go.
        self._given = (recipients, options, rcpt_opts, smtputf8) if dsn is not None else None
        if dsn is not None or require_tls or smtputf8 is False:
            self.mail_options = options = self._extension_options(options, rcpt_opts, smtputf8)
        #: MAIL FROM with the caller's options; built (and so checked) now, before a
        #: byte is written.
        self.plain_mail = mail_line(sender, options, encoding)
        recipients = self.recipients
        self.refused_locally: list[SMTPRecipientRefused] = []
        try:
            if dsn is not None:
                self.rcpt_lines = [self._dsn_rcpt_line(r, rcpt_opts) for r in recipients]
            elif len(recipients) == 1:  # (most messages: no comprehension frame)
                self.rcpt_lines = [rcpt_line(recipients[0], rcpt_opts, encoding)]
            else:
                self.rcpt_lines = [rcpt_line(r, rcpt_opts, encoding) for r in recipients]
        except SMTPRecipientRefusedLocally:
            self._refuse_locally(rcpt_opts)

    def _extension_options(
        self, options: list[str], rcpt_opts: tuple[str, ...], smtputf8: bool | None
    ) -> list[str]:
        """The caller's MAIL options with the DSN and REQUIRETLS parameters added;
        ValueError for raw options that say the same thing differently."""
        if smtputf8 is False and self.encoding != "ascii":
            raise ValueError("mail_options holds SMTPUTF8, but smtputf8=False")
        upper = [option.partition("=")[0].upper() for option in options]
        dsn = self.dsn
        if dsn is not None:
            if not isinstance(dsn, DSN):
                raise TypeError(f"dsn must be a fastsmtp.DSN, not {type(dsn).__name__}")
            rcpt_upper = [option.partition("=")[0].upper() for option in rcpt_opts]
            if any(k in MAIL_KEYWORDS for k in upper) or any(
                k in RCPT_KEYWORDS for k in rcpt_upper
            ):
                raise ValueError(
                    "Give DSN parameters either as dsn=DSN(...) or raw in mail_options/"
                    "rcpt_options (RET, ENVID, NOTIFY, ORCPT), not both"
                )
            options = [*options, *dsn.mail_parameters()]
        if self.require_tls and "REQUIRETLS" not in upper:
            options = [*options, "REQUIRETLS"]  # RFC 8689 section 4.1
        return options

    def _dsn_rcpt_line(self, recipient: str, rcpt_opts: tuple[str, ...]) -> bytes:
        """RCPT TO with the DSN parameters for ``recipient`` (RFC 3461 4.1, 4.2)."""
        assert self.dsn is not None
        try:
            params = self.dsn.rcpt_parameters(recipient, self.encoding != "ascii")
        except ValueError as exc:
            rcpt_line(recipient, rcpt_opts, self.encoding)  # a bad address says so first
            raise SMTPRecipientRefusedLocally(501, refused_text("5.5.4", exc), recipient) from None
        return rcpt_line(recipient, [*rcpt_opts, *params], self.encoding)

    def rcpt_line(self, recipient: str, rcpt_opts: tuple[str, ...]) -> bytes:
        """RCPT TO for ``recipient`` with the options (and DSN parameters)."""
        if self.dsn is not None:
            return self._dsn_rcpt_line(recipient, rcpt_opts)
        return rcpt_line(recipient, rcpt_opts, self.encoding)

    def for_server(self, server: ServerState, tls_verified: bool) -> Envelope:
        """This envelope as the server allows it (after EHLO, before MAIL): raises
        SMTPNotSupported for REQUIRETLS or a required DSN the session cannot carry;
        returns a copy without DSN parameters when DSN is not required and not offered."""
        if self.require_tls:
            check_require_tls(server, tls_verified)
        dsn = self.dsn
        if dsn is None or dsn_supported(server, dsn.required):
            return self
        assert self._given is not None  # kept whenever there is a DSN
        recipients, mail_options, rcpt_opts, smtputf8 = self._given
        return Envelope(
            self.sender,
            recipients,
            mail_options,
            rcpt_opts,
            require_tls=self.require_tls,
            smtputf8=smtputf8,
        )

    def _refuse_locally(self, rcpt_opts: tuple[str, ...]) -> None:
        """Split the recipients into those to send and those refused here."""
        sent: list[str] = []
        lines: list[bytes] = []
        refused = self.refused_locally
        for recipient in self.recipients:
            try:
                lines.append(self.rcpt_line(recipient, rcpt_opts))
            except SMTPRecipientRefusedLocally as exc:
                refused.append(exc)
            else:
                sent.append(recipient)
        if not sent:
            raise SMTPRecipientsRefusedLocally(list(refused))
        self.recipients = sent
        self.rcpt_lines = lines

    def mail_line(self, size: int | None) -> bytes:
        """MAIL FROM with the options, and SIZE (RFC 1870) unless the caller gave one."""
        options = self.mail_options
        if not options and type(size) is int:
            # (most messages: no options) plain_mail is the checked path and CRLF, and
            # "size=" and a number is a valid esmtp-param (RFC 1870 section 6).
            return self.plain_mail[:-2] + b" size=%d\r\n" % size
        if size is None or any(o[:5].lower() == "size=" for o in options):
            return self.plain_mail
        return mail_line(self.sender, [f"size={size}", *options], self.encoding)


def message_envelope(
    message: EmailMessage | Message,
    sender: str | None,
    recipients: str | Sequence[str] | None,
) -> tuple[str, list[str]]:
    """Sender and recipients for ``send_message``: as given, else from the headers.
    Checked before anything is written (header injection: security.md section 9)."""
    check_message_headers(message)
    # One read of the header list for both (extract_sender/extract_recipients each read it).
    fields = _address_fields(message) if sender is None or recipients is None else None
    if sender is None:
        sender = extract_sender(message) if fields is None else _sender_of(*fields)
    if sender is None:
        raise ValueError("No From header provided in message")
    if isinstance(recipients, str):
        recipient_list = [recipients]
    elif recipients is None:
        recipient_list = extract_recipients(message) if fields is None else _recipients_of(*fields)
    else:
        recipient_list = list(recipients)
    if not recipient_list:
        raise ValueError("No recipient headers provided in message")
    # A bad sender is refused before the greeting too (SMTPSenderRefusedLocally), with
    # the encoding prepare_message will choose: SMTPUTF8 for any non-ASCII address.
    utf8 = not sender.isascii() or any(not r.isascii() for r in recipient_list)
    mail_line(sender, None, "utf-8" if utf8 else "ascii")
    return sender, recipient_list


def prepare_message(
    message: EmailMessage | Message,
    sender: str,
    recipients: list[str],
    mail_options: Iterable[str] | None,
    server: ServerState,
    smtputf8: bool | None = None,
) -> tuple[bytes, list[str]]:
    """The flattened message and its MAIL options, as the server's EHLO (SMTPUTF8,
    8BITMIME) allows.

    A non-ASCII address uses SMTPUTF8 when the server advertises it (and ``smtputf8``
    is not False); otherwise a non-ASCII domain goes in IDNA and a non-ASCII local part
    raises SMTPNotSupported.
    """
    mail_opts = list(mail_options) if mail_options is not None else []
    non_ascii = [r for r in recipients if not r.isascii()]
    if not sender.isascii():
        non_ascii.append(sender)
    upper = [option.upper() for option in mail_opts]
    utf8 = False
    if non_ascii:
        if smtputf8 is not False and server.supports("smtputf8"):
            utf8 = True
        elif not all(_local_part_ascii(address) for address in non_ascii):
            raise SMTPNotSupported(
                "An address containing non-ASCII characters was provided, but "
                + (
                    "smtputf8=False"
                    if smtputf8 is False
                    else "SMTPUTF8 is not supported by this server"
                )
            )
    if utf8 and "SMTPUTF8" not in upper:
        mail_opts.append("SMTPUTF8")
    if server.supports("8bitmime"):
        if "BODY=8BITMIME" not in upper:
            mail_opts.append("BODY=8BITMIME")
        cte_type = "8bit"
    else:
        cte_type = "7bit"
    if non_ascii and not utf8:
        message = _idna_headers(message)
    flat = flatten_message(message, utf8=utf8, cte_type=cte_type)
    check_header_block(flat)
    return flat, mail_opts


#: The address headers whose domains go as A-labels with the envelope's (RFC 5322 3.6).
_ADDRESS_HEADERS = frozenset(
    (
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "resent-from",
        "resent-sender",
        "resent-to",
        "resent-cc",
    )
)


def _idna_headers(message: EmailMessage | Message) -> EmailMessage | Message:
    """A copy of ``message`` whose address headers have their non-ASCII domains as IDNA
    A-labels, as the envelope has them (without SMTPUTF8 the email package would write
    such a domain as an RFC 2047 encoded-word, which no reader decodes in a domain).

    Only ``EmailMessage`` headers parsed into addresses, each appearing once, with an
    ASCII local part are changed; anything else is left as the email package writes it.
    The caller's message is not modified.
    """
    if not isinstance(message, EmailMessage):
        return message
    replaced: dict[str, list[Address | Group]] = {}
    for name in {key.lower() for key in message} & _ADDRESS_HEADERS:
        values = message.get_all(name) or []
        if len(values) != 1 or not isinstance(values[0], AddressHeader):
            continue
        items: list[Address | Group] = []
        changed = False
        for group in values[0].groups:
            addresses = []
            for address in group.addresses:
                domain = address.domain
                if not domain.isascii() and address.username.isascii():
                    try:
                        domain = idna_domain(domain)
                    except ValueError:
                        pass  # the envelope refuses it, if it is there
                    else:
                        address = Address(address.display_name, address.username, domain)
                        changed = True
                addresses.append(address)
            if group.display_name is None:
                items.extend(addresses)
            else:
                items.append(Group(group.display_name, addresses))
        if changed:
            replaced[name] = items
    if not replaced:
        return message
    # A copy with every header set again, in order: deleting rebinds the copy's header
    # list (the caller's message is untouched), and the other headers are set back as
    # the parsed objects they are.
    copied = copy.copy(message)
    fields = message.items()
    for name in {key for key, _ in fields}:
        del copied[name]
    for name, value in fields:
        copied[name] = replaced.get(name.lower(), value)
    return copied


def _local_part_ascii(address: str) -> bool:
    """True unless ``address``'s local part is not ASCII (an address outside the grammar
    is refused later, as the envelope is built)."""
    try:
        mailbox = envelope_address(address, utf8=True, allow_null=True, allow_postmaster=True)
    except ValueError:
        return True
    return mailbox.rpartition("@")[0].isascii()
