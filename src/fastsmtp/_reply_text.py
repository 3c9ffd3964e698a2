"""What a reply's text says beyond its code, sans I/O: the RFC 3463 enhanced status code
and the queue id a server gives a message it accepted.

Neither is part of SMTP's grammar for the text (RFC 5321 section 4.2: the text is for
humans), so both are read leniently and never trusted for anything but reporting:

- an enhanced status code (RFC 3463 section 2; RFC 2034 section 4 puts it first in the
  text of every line, followed by a space)::

      status-code = class "." subject "." detail
      class       = "2" / "4" / "5"
      subject     = 1*3digit
      detail      = 1*3digit

- a queue id, from the final-reply shapes of the common servers (the queue id is what a
  server's logs and queue files are named by, and what its operators ask for)::

      Postfix      250 2.0.0 Ok: queued as 4Xyz12
      SendGrid     250 Ok: queued as AbC123
      Exim         250 OK id=1abcDe-000Abc-Xy
      Sendmail     250 2.0.0 x9ABC123456 Message accepted for delivery
      Exchange     250 2.6.0 <msgid@host> [InternalId=123, Hostname=...] Queued mail ...
      Gmail        250 2.0.0 OK  1700000000 x1si123abc.12 - gsmtp
      Amazon SES   250 Ok 0100018abc...-000000
      Dovecot LMTP 250 2.0.0 <user@host> IOj6Ld5hdWcZAQAA Saved

  aiosmtpd's ``250 OK`` (and any other text) has none.
"""

from __future__ import annotations

import re

__all__ = ("parse_enhanced_status", "parse_queue_id")

_ENHANCED = re.compile(r"([245])\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})(?=[ \t\n]|$)")

# Each shape, tried in this order on the whole text (a multiline reply's lines joined by
# "\n"; ``^``/``$`` match at each line). The enhanced code, when there, comes first.
_CODE = r"(?:[245]\.[0-9]{1,3}\.[0-9]{1,3} +)?"
_QUEUE_ID_SHAPES = tuple(
    re.compile(pattern, re.IGNORECASE | re.MULTILINE)
    for pattern in (
        # Postfix, SendGrid and other "queued as" servers.
        r"\bqueued as ([A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])",
        # Exim: "OK id=<message id>".
        r"(?:^|\s)id=([A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])",
        # Exchange / Office 365: the InternalId of the queued message.
        r"\[InternalId=([0-9]+)\b",
        # Gmail: "OK <timestamp> <id> - gsmtp".
        r"^" + _CODE + r"OK +[0-9]+ +(\S+) +- +gsmtp\s*$",
        # Sendmail: "<queue id> Message accepted for delivery".
        r"^" + _CODE + r"([A-Za-z0-9]{6,}) +Message accepted for delivery",
        # Amazon SES: "Ok <hex>-<hex>-...-<digits>".
        r"^" + _CODE + r"Ok +([0-9a-f]{8,}(?:-[0-9a-f]+)+)\s*$",
        # Dovecot LMTP: "<recipient> <session id> Saved".
        r"^" + _CODE + r"<[^>\s]*> +([A-Za-z0-9+/:._-]+) +Saved\b",
    )
)


def parse_enhanced_status(text: str) -> str | None:
    """The enhanced status code at the start of a reply text (``"4.7.0"``), or None."""
    match = _ENHANCED.match(text)
    return match.group(0) if match is not None else None


def parse_queue_id(text: str) -> str | None:
    """The queue id in the text of a final reply (see the module docstring), or None."""
    for shape in _QUEUE_ID_SHAPES:
        match = shape.search(text)
        if match is not None:
            return match.group(1)
    return None
