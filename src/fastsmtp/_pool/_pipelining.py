"""Pipelining across transactions, and the servers that break on it.

RFC 2920 section 3.1 lets a client send the next transaction's MAIL, RCPT and DATA right
behind the end of the previous message's data, before its final reply: the pool hands a
connection back as soon as a message is out, so a connection carries about one round
trip per message. Some servers break on it: Debian 12's Dovecot submission service
(2.3.19) ends its session when the next transaction's commands arrive before it has
answered the end of data. A connection that is lost (or times out) while a final reply is
owed and more was written behind it is the sign; then the pool stops doing it for that
host, for as long as the pool lives, and says so in the log (``fastsmtp`` logger). The
message whose commands went out behind the end of data had none of them answered, so
nothing of it was accepted: the delivery sends it again at once (``_delivery``). The
message whose end of data went unanswered keeps its unknown outcome (security.md
section 10): only the server's reply could have said.
"""

from __future__ import annotations

import logging

from ..errors import SMTPServerDisconnected, SMTPTimeoutError
from ..protocol import SMTPProtocol
from ..smtp import SMTP

__all__ = ("Host", "Pipelining", "host_of", "unanswered")

log = logging.getLogger("fastsmtp")

#: A server as the pool connects to it: (host name, port, Unix socket path).
Host = tuple[str | None, int | None, str | None]


def host_of(client: SMTP) -> Host:
    """The server ``client`` connects to."""
    options = client._link.options
    path = options.socket_path
    return options.hostname, options.port, None if path is None else str(path)


def unanswered(protocol: SMTPProtocol | None, exc: Exception) -> bool:
    """True if ``exc``, raised before a message was out on ``protocol``, is its
    connection lost behind another message's end of data: this transaction's commands
    were written behind that end and none of them was answered."""
    return (
        protocol is not None
        and protocol.lost_behind_end
        and isinstance(exc, (SMTPServerDisconnected, SMTPTimeoutError))
    )


class Pipelining:
    """Which hosts the pool pipelines consecutive transactions to (all, at first)."""

    __slots__ = ("_serial",)

    def __init__(self) -> None:
        self._serial: set[Host] = set()

    def across(self, client: SMTP) -> bool:
        """True if the next transaction may go out before this one's final reply."""
        return not self._serial or host_of(client) not in self._serial

    def broke(self, client: SMTP) -> None:
        """``client``'s connection was lost behind an end of data: stop pipelining
        across transactions to its host (logged once per host)."""
        host = host_of(client)
        if host in self._serial:
            return
        self._serial.add(host)
        name = host[2] if host[2] is not None else f"{host[0]}:{host[1]}"
        log.warning(
            "fastsmtp pool: %s dropped the connection while the next transaction was "
            "pipelined behind an end of data (RFC 2920 section 3.1); each message now "
            "waits for its final reply before the next one starts on a connection",
            name,
        )
