"""Delivery status notifications, typed: the RFC 3461 MAIL and RCPT parameters. No I/O.

RFC 3461 section 4 (with RFC 6533 section 3 for internationalised ORCPT)::

    ret-parameter    = "RET=" ("FULL" / "HDRS")                       ; on MAIL (4.3)
    envid-parameter  = "ENVID=" xtext                                 ; on MAIL (4.4)
    notify-parameter = "NOTIFY=" ("NEVER" / notify-list-element       ; on RCPT (4.1)
                                  *("," notify-list-element))
    notify-list-element = "SUCCESS" / "FAILURE" / "DELAY"
    orcpt-parameter  = "ORCPT=" addr-type ";" xtext                   ; on RCPT (4.2)
    xtext            = *( xchar / hexchar )   ; "+XX" for "+", "=" and non-printables
    utf-8-addr-xtext = 1*(QCHAR / EmbeddedUnicodeChar)                ; RFC 6533
    EmbeddedUnicodeChar = "\\x{" HEXPOINT "}"

:class:`DSN` says what to ask for, per message (``ret``, ``envid``) and for every
recipient (``notify``, ``orcpt``), with :class:`DSNRecipient` overriding those two for
named recipients. fastsmtp encodes every value (xtext, addr-type); callers never do.
Values are checked when the object is made: a :class:`DSN` that exists is one that can
be sent.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Mapping
from typing import Literal

from ._address import envelope_address, idna_domain, xtext_encode

__all__ = ("DSN", "DSNRecipient")

#: RFC 3461 section 4.4: the ENVID value is at most 100 characters.
MAX_ENVID = 100
#: RFC 3461 section 4.2: the ORCPT value is at most 500 characters.
MAX_ORCPT = 500

_NOTIFY_EVENTS = frozenset(("SUCCESS", "FAILURE", "DELAY"))
_NEVER = frozenset(("NEVER",))
_NOTIFY_ORDER = ("NEVER", "SUCCESS", "FAILURE", "DELAY")


def _notify(value: str | Iterable[str] | None) -> frozenset[str] | None:
    """``notify`` as a frozenset of upper-case names; ValueError outside RFC 3461 4.1."""
    if value is None:
        return None
    names = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(name, str) for name in names):
        raise TypeError("notify must be 'NEVER' or a set of 'SUCCESS', 'FAILURE', 'DELAY'")
    events = frozenset(name.upper() for name in names)
    if events == _NEVER:
        return _NEVER
    if not events or not events <= _NOTIFY_EVENTS:
        raise ValueError(
            f"Invalid DSN notify {value!r}: 'NEVER' alone, or one or more of "
            "'SUCCESS', 'FAILURE', 'DELAY' (RFC 3461 section 4.1)"
        )
    return events


def _printable(name: str, value: str) -> None:
    # RFC 3461 sections 4.2 and 4.4: the value before encoding is printable US-ASCII.
    if not isinstance(value, str):
        raise TypeError(f"DSN {name} must be str, not {type(value).__name__}")
    if not value or any(not " " < char <= "~" for char in value):
        raise ValueError(
            f"Invalid DSN {name} {value!r}: 1 or more printable ASCII characters, no "
            "spaces (RFC 3461 section 4.4)"
        )


@dataclasses.dataclass(frozen=True)
class DSNRecipient:
    """DSN settings for one recipient, overriding :class:`DSN`'s ``notify``/``orcpt``.

    ``orcpt`` is the original recipient address (RFC 3461 section 4.2), as plain text:
    fastsmtp encodes it. None keeps the :class:`DSN`'s setting.
    """

    notify: frozenset[str] | str | Iterable[str] | None = None
    orcpt: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "notify", _notify(self.notify))
        if self.orcpt is not None:
            orcpt_value(self.orcpt, utf8=True)  # checked now, encoded when sent


@dataclasses.dataclass(frozen=True)
class DSN:
    """What delivery status notifications to ask for (RFC 3461), for ``dsn=``.

    - ``ret``: ``"FULL"`` or ``"HDRS"``, how much of the message a bounce returns;
    - ``envid``: an envelope identifier the notifications carry back (printable ASCII,
      at most 100 characters once encoded);
    - ``notify``: for every recipient, ``"NEVER"`` or a set of ``"SUCCESS"``,
      ``"FAILURE"``, ``"DELAY"``;
    - ``orcpt``: True to send each recipient's own address as its original recipient;
    - ``recipients``: ``{address: DSNRecipient(...)}`` overriding ``notify`` and
      ``orcpt`` for the recipients named (keys as the recipients are given);
    - ``required``: when the server does not advertise DSN, True (the default) raises
      ``SMTPNotSupported`` before anything is written; False sends without DSN.

    Example: ``DSN(ret="HDRS", notify={"FAILURE", "DELAY"}, envid="order-1234")``.
    """

    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    notify: frozenset[str] | str | Iterable[str] | None = None
    orcpt: bool = False
    recipients: Mapping[str, DSNRecipient] = dataclasses.field(default_factory=dict, hash=False)
    required: bool = True

    def __post_init__(self) -> None:
        ret = self.ret
        if ret is not None:
            if not isinstance(ret, str) or ret.upper() not in ("FULL", "HDRS"):
                raise ValueError(f"Invalid DSN ret {ret!r}: 'FULL' or 'HDRS' (RFC 3461 4.3)")
            object.__setattr__(self, "ret", ret.upper())
        if self.envid is not None:
            _printable("envid", self.envid)
            if len(xtext_encode(self.envid)) > MAX_ENVID:
                raise ValueError(
                    f"DSN envid too long: at most {MAX_ENVID} characters once "
                    "xtext-encoded (RFC 3461 section 4.4)"
                )
        object.__setattr__(self, "notify", _notify(self.notify))
        if not isinstance(self.orcpt, bool):
            raise TypeError(
                "DSN orcpt is True or False; give original addresses per recipient "
                "with recipients={address: DSNRecipient(orcpt=...)}"
            )
        recipients = dict(self.recipients)
        for address, settings in recipients.items():
            if not isinstance(address, str) or not isinstance(settings, DSNRecipient):
                raise TypeError("DSN recipients maps an address (str) to a DSNRecipient")
        object.__setattr__(self, "recipients", types.MappingProxyType(recipients))

    def mail_parameters(self) -> list[str]:
        """``RET=``/``ENVID=`` for MAIL FROM (RFC 3461 sections 4.3, 4.4)."""
        params = []
        if self.ret is not None:
            params.append(f"RET={self.ret}")
        if self.envid is not None:
            params.append(f"ENVID={xtext_encode(self.envid)}")
        return params

    def rcpt_parameters(self, recipient: str, utf8: bool) -> list[str]:
        """``NOTIFY=``/``ORCPT=`` for RCPT TO ``recipient`` (RFC 3461 4.1, 4.2); ``utf8``
        when the transaction uses SMTPUTF8. ValueError for an ORCPT too long to send."""
        settings = self.recipients.get(recipient)
        notify = self.notify
        orcpt = recipient if self.orcpt else None
        if settings is not None:
            if settings.notify is not None:
                notify = settings.notify
            if settings.orcpt is not None:
                orcpt = settings.orcpt
        params = []
        if notify is not None:
            assert isinstance(notify, frozenset)
            params.append("NOTIFY=" + ",".join(e for e in _NOTIFY_ORDER if e in notify))
        if orcpt is not None:
            params.append("ORCPT=" + orcpt_value(orcpt, utf8))
        return params


def orcpt_value(address: str, utf8: bool) -> str:
    """The ORCPT value for ``address``: ``rfc822;`` + xtext for an ASCII mailbox (its
    domain in IDNA when only the domain is not ASCII and ``utf8`` is False, as RCPT TO
    sends it), else ``utf-8;`` + utf-8-addr-xtext (RFC 6533 section 3), which is ASCII
    and valid with or without SMTPUTF8. ValueError for a bad address or one too long."""
    mailbox = envelope_address(address, utf8=True, allow_postmaster=True)
    if not mailbox.isascii() and not utf8:
        local, _, domain = mailbox.rpartition("@")
        if local.isascii():
            mailbox = f"{local}@{idna_domain(domain)}"
    if mailbox.isascii():
        value = "rfc822;" + xtext_encode(mailbox)
    else:
        value = "utf-8;" + utf8_addr_xtext(mailbox)
    if len(value) > MAX_ORCPT:
        raise ValueError(
            f"DSN ORCPT for {address!r} too long: at most {MAX_ORCPT} characters once "
            "encoded (RFC 3461 section 4.2)"
        )
    return value


def utf8_addr_xtext(address: str) -> str:
    """RFC 6533 section 3 utf-8-addr-xtext: QCHARs as they are, everything else
    (``+``, ``=``, ``\\``, controls, non-ASCII) as ``\\x{HEX}``."""
    return "".join(
        char if "!" <= char <= "~" and char not in "+=\\" else f"\\x{{{ord(char):X}}}"
        for char in address
    )


#: The DSN parameters a caller may also give raw, and where.
MAIL_KEYWORDS = ("RET", "ENVID")
RCPT_KEYWORDS = ("NOTIFY", "ORCPT")


def check_raw_parameters(options: Iterable[str], keywords: tuple[str, ...]) -> bool:
    """True if ``options`` hold one of the DSN ``keywords``; ValueError for a raw
    ``RET``/``NOTIFY`` value outside RFC 3461's grammar (ENVID and ORCPT are xtext,
    which the esmtp-value grammar already bounds)."""
    found = False
    for option in options:
        keyword, _, value = option.partition("=")
        keyword = keyword.upper()
        if keyword not in keywords:
            continue
        found = True
        if keyword == "RET" and value.upper() not in ("FULL", "HDRS"):
            raise ValueError(f"Invalid MAIL parameter {option!r}: RET=FULL or RET=HDRS")
        if keyword == "NOTIFY":
            _notify(value.split(","))
    return found
