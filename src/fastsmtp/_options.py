"""Every connection option, declared, defaulted and validated once.

``SMTP(...)``, ``SMTP.connect(...)``, ``fastsmtp.send(...)`` and ``SMTPPool(...)`` spell the
options out in their signatures (they are aiosmtplib's public API, and typed signatures are
what users read), then hand them here as a mapping: :class:`ConnectionOptions` holds them,
applies the "given or not" rules of ``connect()``/``starttls()`` and checks them together.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from typing import Any, Generic, TypeVar, overload

from ._commands import validate_local_hostname
from ._proxy import ProxyURL, require_backend
from .typing import Default, SMTPTokenGenerator, SocketPathType, _default

__all__ = (
    "DEFAULT_TIMEOUT",
    "LMTP_PORT",
    "OPTION_NAMES",
    "SMTP_PORT",
    "SMTP_STARTTLS_PORT",
    "SMTP_TLS_PORT",
    "Timeouts",
    "ConnectionOptions",
    "OptionAttribute",
    "ServerAttribute",
)

_T = TypeVar("_T")

SMTP_PORT = 25
SMTP_TLS_PORT = 465
SMTP_STARTTLS_PORT = 587
#: LMTP's usual TCP port (RFC 2033 section 5 forbids 25; IANA's "private mail system").
LMTP_PORT = 24
DEFAULT_TIMEOUT = 60

#: The options and their defaults, in aiosmtplib's order.
_DEFAULTS: dict[str, Any] = {
    "hostname": None,
    "port": None,
    "username": None,
    "password": None,
    "oauth_token_generator": None,
    "local_hostname": None,
    "source_address": None,
    "timeout": DEFAULT_TIMEOUT,
    "use_tls": False,
    "start_tls": None,
    "validate_certs": True,
    "client_cert": None,
    "client_key": None,
    "tls_context": None,
    "cert_bundle": None,
    "socket_path": None,
    "sock": None,
    "allow_insecure_auth": False,
    "pipelining": None,
    "chunking": False,
    "proxy": None,
}
OPTION_NAMES: tuple[str, ...] = tuple(_DEFAULTS)

_PHASES = ("connect", "greeting", "command", "upload_idle", "final_reply")


class Timeouts:
    """Separate limits, in seconds (None: wait for ever), for each phase of a connection.

    Accepted wherever ``timeout`` is (``SMTP()``, ``connect()``, ``send()``, ``SMTPPool``,
    every command); a number there is the same limit for every phase, as in aiosmtplib. A
    phase left out takes ``default``:

    - ``connect``: opening the connection, including a proxy's handshake and the TLS
      handshake (implicit TLS, and the one after STARTTLS);
    - ``greeting``: the server's 220 (RFC 5321 section 4.5.3.2.1 suggests 5 minutes);
    - ``command``: each command's reply;
    - ``upload_idle``: while a message body uploads, how long the socket may take no data
      (a no-progress timer: a large message on a slow link is not cut off);
    - ``final_reply``: the reply after the end of the message, which a server may spend
      scanning it (RFC 5321 section 4.5.3.2.6 suggests 10 minutes).
    """

    __slots__ = ("command", "connect", "default", "final_reply", "greeting", "upload_idle")

    default: float | None
    connect: float | None
    greeting: float | None
    command: float | None
    upload_idle: float | None
    final_reply: float | None

    def __init__(
        self,
        default: float | None = DEFAULT_TIMEOUT,
        *,
        connect: float | Default | None = _default,
        greeting: float | Default | None = _default,
        command: float | Default | None = _default,
        upload_idle: float | Default | None = _default,
        final_reply: float | Default | None = _default,
    ) -> None:
        given = {
            "connect": connect,
            "greeting": greeting,
            "command": command,
            "upload_idle": upload_idle,
            "final_reply": final_reply,
        }
        object.__setattr__(self, "default", _seconds("default", default))
        for name, value in given.items():
            value = default if isinstance(value, Default) else _seconds(name, value)
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Timeouts is immutable; make a new one")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Timeouts):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self.__slots__))

    def __repr__(self) -> str:
        phases = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in _PHASES
            if getattr(self, name) != self.default
        )
        return f"Timeouts({self.default!r}{', ' + phases if phases else ''})"


def _seconds(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"The {name} timeout must be a number of seconds >= 0, or None")
    return value


# In connect()/starttls() these three mean "not given" by None (aiosmtplib's signature);
# every other option uses the ``_default`` sentinel, since None is a real value for them.
_NONE_MEANS_NOT_GIVEN = frozenset(("use_tls", "validate_certs", "allow_insecure_auth"))


class ConnectionOptions:
    """The connection options of one client (or of every connection of a pool)."""

    __slots__ = (*OPTION_NAMES, "_phases")

    hostname: str | None
    port: int | None
    username: str | bytes | None
    password: str | bytes | None
    oauth_token_generator: SMTPTokenGenerator | None
    local_hostname: str | None
    source_address: tuple[str, int] | None
    timeout: float | Timeouts | None
    use_tls: bool
    start_tls: bool | None
    validate_certs: bool
    client_cert: str | None
    client_key: str | None
    tls_context: ssl.SSLContext | None
    cert_bundle: str | None
    socket_path: SocketPathType | None
    sock: socket.socket | None
    allow_insecure_auth: bool
    #: RFC 2920 / RFC 3030: None = use when advertised, False = never, True = required.
    pipelining: bool | None
    chunking: bool | None
    #: Given as a URL string (``socks5://user:pass@host:1080``...); kept parsed, as a
    #: :class:`~fastsmtp._proxy.ProxyURL` whose repr hides the credentials.
    proxy: ProxyURL | None

    def __init__(self, given: Mapping[str, Any] | None = None) -> None:
        for name, value in _DEFAULTS.items():
            setattr(self, name, value)
        self._phases = Timeouts(DEFAULT_TIMEOUT)
        if given:
            for name in OPTION_NAMES:
                if name in given:
                    setattr(self, name, given[name])
        self.validate()

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, Any]) -> ConnectionOptions:
        """The options among a function's arguments (``locals()`` of a signature that
        spells them out)."""
        return cls({name: arguments[name] for name in OPTION_NAMES if name in arguments})

    def update(self, arguments: Mapping[str, Any]) -> None:
        """Overwrite the options given in ``arguments``, as ``connect()`` does: an
        argument left at ``_default`` (None for use_tls, validate_certs and
        allow_insecure_auth) keeps the stored value. Then check them together."""
        for name in OPTION_NAMES:
            if name == "timeout" or name not in arguments:
                continue  # connect(timeout=...) is for that call only
            value = arguments[name]
            if isinstance(value, Default):
                continue
            if value is None and name in _NONE_MEANS_NOT_GIVEN:
                continue
            setattr(self, name, value)
        self.validate()

    def as_dict(self) -> dict[str, Any]:
        """Every option by name (what ``SMTP(**...)`` takes)."""
        return {name: getattr(self, name) for name in OPTION_NAMES}

    def copy(self) -> ConnectionOptions:
        """An independent copy (a pool's template for each new connection)."""
        new = ConnectionOptions.__new__(ConnectionOptions)
        for name in self.__slots__:
            setattr(new, name, getattr(self, name))
        return new

    def validate(self) -> None:
        """Raise ValueError for options that cannot go together (aiosmtplib's messages)."""
        if self.password is not None and self.oauth_token_generator is not None:
            raise ValueError("password and oauth_token_generator are mutually exclusive")
        if self.start_tls and self.use_tls:
            raise ValueError("The start_tls and use_tls options are not compatible.")
        if self.tls_context is not None and self.client_cert is not None:
            raise ValueError("Either a TLS context or a certificate/key must be provided")
        socket_given = self.sock is not None or self.socket_path is not None
        if self.sock is not None and self.socket_path is not None:
            raise ValueError("Either a socket or a socket path must be provided, not both")
        if socket_given and self.port is not None:
            raise ValueError("If using a socket, port is not required")
        if socket_given and self.use_tls and self.hostname is None:
            raise ValueError("If using a socket with TLS, hostname is required")
        if self.hostname is not None and ("\r" in self.hostname or "\n" in self.hostname):
            raise ValueError("The hostname param contains prohibited newline characters")
        if self.local_hostname is not None:
            self.local_hostname = validate_local_hostname(self.local_hostname)
        proxy: object = self.proxy
        if proxy is not None:
            if socket_given:
                raise ValueError("The proxy option cannot be combined with sock or socket_path")
            if isinstance(proxy, str):
                self.proxy = proxy = ProxyURL(proxy)
            elif not isinstance(proxy, ProxyURL):
                raise TypeError(f"proxy must be a URL string, not {type(proxy).__name__}")
            require_backend(proxy)

    # -- derived values -----------------------------------------------------------------

    def default_port(self) -> int:
        """465 with implicit TLS, 587 with STARTTLS required, else 25."""
        if self.use_tls:
            return SMTP_TLS_PORT
        if self.start_tls:
            return SMTP_STARTTLS_PORT
        return SMTP_PORT

    def tls_hostname(self) -> str | None:
        """The name TLS verifies: the host actually connected to (never skipped)."""
        if self.hostname is not None:
            return self.hostname
        if self.sock is None and self.socket_path is None:
            return "localhost"
        return None

    def phases(self, timeout: float | Timeouts | Default | None) -> Timeouts:
        """The limit for each phase: ``timeout`` as given to a call, else this client's."""
        if isinstance(timeout, Default):
            timeout = self.timeout
        if isinstance(timeout, Timeouts):
            return timeout
        phases = self._phases  # one object per plain number, made when it changes
        if phases.default != timeout or phases.command != timeout:
            self._phases = phases = Timeouts(timeout)
        return phases


class OptionAttribute(Generic[_T]):
    """A public attribute (``smtp.hostname``...) that is one of the client's options:
    stored once, in its :class:`ConnectionOptions`."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type) -> OptionAttribute[_T]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> _T: ...
    def __get__(self, instance: object, owner: type) -> OptionAttribute[_T] | _T:
        if instance is None:
            return self
        value: _T = getattr(instance._options, self._name)  # type: ignore[attr-defined]
        return value

    def __set__(self, instance: object, value: _T) -> None:
        setattr(instance._options, self._name, value)  # type: ignore[attr-defined]


class ServerAttribute:
    """A public attribute that is part of what the server said (``esmtp_extensions``...):
    read from, and written to, the current connection's session (``instance._server()``)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, instance: object, owner: type) -> Any:
        if instance is None:
            return self
        return getattr(instance._server(), self._name)  # type: ignore[attr-defined]

    def __set__(self, instance: object, value: Any) -> None:
        setattr(instance._server(), self._name, value)  # type: ignore[attr-defined]
