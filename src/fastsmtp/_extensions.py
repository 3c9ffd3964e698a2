"""What the server's EHLO allows a transaction to ask for: DSN, REQUIRETLS, SIZE. No I/O.

Each check runs after EHLO and before MAIL is written, so a refusal leaves nothing on the
wire and the connection as it was:

- DSN (RFC 3461 section 4): the RET/ENVID/NOTIFY/ORCPT parameters only go to a server that
  advertises ``DSN``; otherwise ``SMTPNotSupported``, or (``DSN(required=False)``) the
  message goes without them;
- REQUIRETLS (RFC 8689 section 4.1): only over TLS with a certificate verified for the
  host name, to a server that advertises ``REQUIRETLS``; otherwise ``SMTPNotSupported``;
- SIZE (RFC 1870 section 4): a message larger than the advertised maximum is refused here
  (:class:`~fastsmtp.errors.SMTPSizeRefusedLocally`, 552 5.3.4), as the server would
  refuse its MAIL (or, for a size it was not told, the whole message after reading it).
  ``SIZE 0`` or ``SIZE`` with no number means no fixed maximum is declared.
"""

from __future__ import annotations

from ._session import ServerState
from .errors import REFUSED_LOCALLY, SMTPNotSupported, SMTPSizeRefusedLocally

__all__ = ("check_require_tls", "check_size", "dsn_supported", "size_limit")


def size_limit(server: ServerState) -> int | None:
    """The fixed maximum message size the server declared (RFC 1870 section 4), or None
    (no SIZE, ``SIZE`` without a number, ``SIZE 0``, or a number that is not one)."""
    value = server.extensions.get("size")
    if not value:
        return None
    value = value.split()[0]
    if not value.isdigit():
        return None
    limit = int(value)
    return limit or None


def check_size(server: ServerState, size: int | None, sender: str) -> None:
    """Raise SMTPSizeRefusedLocally when ``size`` (octets as RFC 1870 section 3 counts
    them: CRLF line ends, no dot-stuffing) exceeds the server's declared maximum."""
    if size is None:
        return
    limit = size_limit(server)
    if limit is not None and size > limit:
        # RFC 1870 section 6.1 / RFC 3463: 552 5.3.4, message too big for system.
        raise SMTPSizeRefusedLocally(
            552,
            f"5.3.4 Message size {size} exceeds the server's fixed maximum message size "
            f"{limit} (SIZE, RFC 1870) {REFUSED_LOCALLY}",
            sender,
        )


def dsn_supported(server: ServerState, required: bool) -> bool:
    """True if DSN parameters may go; False to send without them (not ``required``);
    SMTPNotSupported when ``required`` and the server does not advertise DSN."""
    if "dsn" in server.extensions:
        return True
    if required:
        raise SMTPNotSupported(
            "DSN is not supported by this server (RFC 3461); nothing was sent. Pass "
            "DSN(..., required=False) to send without delivery status notifications."
        )
    return False


def check_require_tls(server: ServerState, tls_verified: bool) -> None:
    """RFC 8689 section 4.1: REQUIRETLS only over a verified TLS session, to a server
    that advertises it; SMTPNotSupported (5.7.30) otherwise."""
    if not tls_verified:
        raise SMTPNotSupported(
            "5.7.30 REQUIRETLS needs a TLS session with a certificate verified for the "
            "server's host name (use_tls or start_tls, validate_certs=True); nothing was sent"
        )
    if "requiretls" not in server.extensions:
        raise SMTPNotSupported(
            "5.7.30 REQUIRETLS is not supported by this server (RFC 8689); nothing was sent"
        )
