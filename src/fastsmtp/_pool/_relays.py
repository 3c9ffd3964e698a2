"""Relays: the servers a pool may hand its mail to, which to use next, and backoff.

A pool made with ``relays=[...]`` opens each new connection to a relay chosen here:

* **Priority first**, as MX preference (RFC 5321 section 5.1): the lowest ``priority``
  value among the relays not backed off wins; a higher one is used only while every
  relay of the lower ones is backed off.
* **Least loaded within a priority**: the relay with the fewest connections open or
  being opened; ties go round robin.
* **Failover at once**, as Postfix's smtp client does with MX hosts: when opening a
  connection fails - refused, a timeout, a TLS failure, a 4yz/5yz greeting, a failed
  EHLO/STARTTLS/AUTH - the relay is backed off and the next candidate is tried in the
  same checkout. A message is not at fault for that, so a 5yz there (a 554 greeting, a
  535 to AUTH) backs the relay off like a 4yz does.
* **Backoff** per relay, remembered by the pool: ``base * 2**(failures-1)`` seconds,
  capped at ``max``, no jitter; the first connection that works clears it.
* **All backed off: fail fast.** :class:`RelaysUnavailableError` (a transient
  ``SMTPConnectError``) says why each relay is out and when the first comes back; the
  pool's retry policy then decides whether the message is tried again.

A pool without ``relays`` has one implicit relay (its ``hostname``/``port``), never
backed off, whose errors are raised as they are: as before relays existed.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from .._options import OPTION_NAMES, ConnectionOptions
from ..errors import SMTPConnectError

__all__ = ("Relay", "RelaySpec", "RelayState", "Relays", "RelaysUnavailableError")

#: Options a relay may set for itself; ``sock`` is not one (a pool opens its own sockets).
_RELAY_OPTIONS = frozenset(OPTION_NAMES) - {"hostname", "port", "sock"}


class Relay:
    """One relay of a pool: where to connect, its ``priority`` and its own options.

    ``Relay("smtp1.example.com", 587, priority=0, username=..., password=...)``: any of
    ``SMTP``'s connection options (except ``sock``) may be given; those left out are the
    pool's. ``priority`` works as MX preference: lower is preferred.
    """

    __slots__ = ("hostname", "options", "port", "priority")

    def __init__(
        self,
        hostname: str | None = None,
        port: int | None = None,
        *,
        priority: int = 0,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - _RELAY_OPTIONS)
        if unknown:
            raise TypeError(f"Relay() got unknown connection options: {', '.join(unknown)}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError("a relay's priority must be an int")
        if hostname is None and options.get("socket_path") is None:
            raise ValueError("a relay needs a hostname or a socket_path")
        if port is not None and (isinstance(port, bool) or not 0 < port < 65536):
            raise ValueError(f"a relay's port must be 1-65535, not {port!r}")
        self.hostname = hostname
        self.port = port
        self.priority = priority
        self.options = options

    def __repr__(self) -> str:
        return f"Relay({self.hostname!r}, {self.port!r}, priority={self.priority!r})"


#: What ``relays=`` takes: ``"host"``, ``"host:port"``, ``"[v6addr]:port"``,
#: ``(host, port)``, or a :class:`Relay`.
RelaySpec: TypeAlias = "str | tuple[str, int] | Relay"


def as_relay(spec: RelaySpec) -> Relay:
    """A :class:`Relay` for one item of ``relays=``; ValueError/TypeError if malformed."""
    if isinstance(spec, Relay):
        return spec
    if isinstance(spec, tuple):
        if len(spec) != 2 or not isinstance(spec[0], str) or not isinstance(spec[1], int):
            raise TypeError("a relay tuple must be (hostname, port)")
        return Relay(spec[0], spec[1])
    if not isinstance(spec, str):
        raise TypeError(f"a relay must be a str, a (host, port) tuple or a Relay, not {spec!r}")
    host, port = spec, None
    if spec.startswith("["):  # an IPv6 literal, as in RFC 3986 section 3.2.2
        close = spec.find("]")
        rest = spec[close + 1 :]
        if close < 0 or (rest and not rest.startswith(":")):
            raise ValueError(f"malformed relay {spec!r}: expected [address] or [address]:port")
        host, port = spec[1:close], rest[1:] or None
    elif spec.count(":") == 1:
        host, port = spec.split(":")
    if not host:
        raise ValueError(f"malformed relay {spec!r}: no host name")
    if port is not None and not port.isdigit():
        raise ValueError(f"malformed relay {spec!r}: the port must be a number")
    return Relay(host, None if port is None else int(port))


class RelayState:
    """A relay as the pool knows it: its connection options, load and backoff."""

    __slots__ = (
        "failures",
        "index",
        "last_error",
        "load",
        "name",
        "options",
        "priority",
        "retry_at",
    )

    def __init__(self, options: ConnectionOptions, priority: int, index: int) -> None:
        self.options = options
        self.priority = priority
        self.index = index  # the order given, for round robin
        #: ``host:port`` (``[v6]:port``), or the socket path: what ``SendResult.relay`` says.
        self.name = relay_name(options)
        #: Connections open or being opened to this relay.
        self.load = 0
        #: Failed openings since the last that worked.
        self.failures = 0
        #: Clock time before which no new connection is opened to it.
        self.retry_at = -math.inf
        self.last_error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<relay {self.name} priority={self.priority} load={self.load}>"


def relay_name(options: ConnectionOptions) -> str:
    """How results name the relay these options connect to."""
    if options.socket_path is not None:
        return str(options.socket_path)
    host = options.hostname or "localhost"
    port = options.port if options.port is not None else options.default_port()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class RelaysUnavailableError(SMTPConnectError):
    """No relay could be used: each was backed off, or failed when tried just now.

    ``errors`` maps each relay's name to the error that put it out; ``retry_in`` is the
    seconds until the first comes back (None if unknown). Transient: the pool's retry
    policy may try the message again.
    """

    def __init__(self, message: str, errors: dict[str, BaseException], retry_in: float | None):
        super().__init__(message)
        self.errors = errors
        self.retry_in = retry_in

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.errors, self.retry_in))


class Relays:
    """Every relay of a pool, and the choice of the next one to connect to.

    ``clock`` gives the time backoffs are measured in (the running loop's by default).
    """

    def __init__(
        self,
        states: Sequence[RelayState],
        *,
        failover: bool,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if backoff_base < 0 or backoff_max < 0:
            raise ValueError("relay_backoff_base and relay_backoff_max must not be negative")
        self.states = list(states)
        self.failover = failover
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.clock = clock
        self._turn = 0  # round robin among equally loaded relays of one priority

    @classmethod
    def single(cls, options: ConnectionOptions) -> Relays:
        """The one implicit relay of a pool made without ``relays``."""
        return cls([RelayState(options, 0, 0)], failover=False)

    @classmethod
    def from_specs(
        cls,
        specs: Sequence[RelaySpec],
        pool: ConnectionOptions,
        *,
        backoff_base: float,
        backoff_max: float,
    ) -> Relays:
        """Relays from ``relays=``: each relay's own options over a copy of ``pool``'s."""
        if isinstance(specs, (str, bytes)) or not specs:
            raise ValueError("relays must be a non-empty list")
        if pool.hostname is not None or pool.port is not None or pool.socket_path is not None:
            raise ValueError("give relays, or hostname/port/socket_path, not both")
        states = []
        for index, spec in enumerate(specs):
            relay = as_relay(spec)
            given = {**pool.as_dict(), **relay.options, "hostname": relay.hostname}
            given["port"] = relay.port
            options = ConnectionOptions(given)  # checked together, per relay
            states.append(RelayState(options, relay.priority, index))
        return cls(states, failover=True, backoff_base=backoff_base, backoff_max=backoff_max)

    def now(self) -> float:
        if self.clock is not None:
            return self.clock()
        return asyncio.get_running_loop().time()

    def available(self, state: RelayState, now: float) -> bool:
        return not self.failover or state.retry_at <= now

    def best_priority(self) -> float:
        """The preferred priority now: the lowest of the relays not backed off (inf if none)."""
        now = self.now()
        return min((s.priority for s in self.states if self.available(s, now)), default=math.inf)

    def candidates(self) -> list[RelayState]:
        """The relays to try for a new connection, best first: by priority, then least
        loaded, ties round robin. Backed-off relays are left out."""
        now = self.now()
        count = len(self.states)
        turn = self._turn % count
        self._turn += 1
        usable = [s for s in self.states if self.available(s, now)]
        return sorted(usable, key=lambda s: (s.priority, s.load, (s.index - turn) % count))

    def failed(self, state: RelayState, exc: BaseException) -> None:
        """Opening a connection to ``state`` failed: back it off (``failover`` only)."""
        if not self.failover:
            return  # the error is raised as it is; nothing to remember
        state.last_error = exc
        state.failures += 1
        delay = min(self.backoff_max, self.backoff_base * 2.0 ** (state.failures - 1))
        state.retry_at = self.now() + delay

    def succeeded(self, state: RelayState) -> None:
        """A connection to ``state`` works: its backoff is over."""
        state.failures = 0
        state.retry_at = -math.inf
        state.last_error = None

    def unavailable(self, tried: dict[str, BaseException]) -> RelaysUnavailableError:
        """The error for a checkout that found no relay to use (``tried``: the relays
        that failed in it)."""
        now = self.now()
        errors: dict[str, BaseException] = {}
        reasons = []
        for state in self.states:
            exc = tried.get(state.name, state.last_error)
            if exc is not None:
                errors[state.name] = exc
            wait = state.retry_at - now
            when = f"backed off for {wait:.1f} s" if wait > 0 else "failed just now"
            reasons.append(f"{state.name} ({when}: {_reason(exc)})")
        waits = [s.retry_at - now for s in self.states if s.retry_at > now]
        retry_in = min(waits) if waits else None
        message = "No relay is available: " + "; ".join(reasons)
        return RelaysUnavailableError(message, errors, retry_in)


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
