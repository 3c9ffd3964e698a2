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
from .typing import Default, SMTPTokenGenerator, SocketPathType

__all__ = (
    "DEFAULT_TIMEOUT",
    "OPTION_NAMES",
    "SMTP_PORT",
    "SMTP_STARTTLS_PORT",
    "SMTP_TLS_PORT",
    "ConnectionOptions",
    "OptionAttribute",
    "ServerAttribute",
)

_T = TypeVar("_T")

SMTP_PORT = 25
SMTP_TLS_PORT = 465
SMTP_STARTTLS_PORT = 587
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

# In connect()/starttls() these three mean "not given" by None (aiosmtplib's signature);
# every other option uses the ``_default`` sentinel, since None is a real value for them.
_NONE_MEANS_NOT_GIVEN = frozenset(("use_tls", "validate_certs", "allow_insecure_auth"))


class ConnectionOptions:
    """The connection options of one client (or of every connection of a pool)."""

    __slots__ = (*OPTION_NAMES, "upload_idle_timeout")

    hostname: str | None
    port: int | None
    username: str | bytes | None
    password: str | bytes | None
    oauth_token_generator: SMTPTokenGenerator | None
    local_hostname: str | None
    source_address: tuple[str, int] | None
    timeout: float | None
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
    #: While a body uploads, how long the socket may take no data before the upload
    #: fails (a no-progress timer, not a deadline); None: the command ``timeout``.
    upload_idle_timeout: float | None

    def __init__(self, given: Mapping[str, Any] | None = None) -> None:
        for name, value in _DEFAULTS.items():
            setattr(self, name, value)
        self.upload_idle_timeout = None
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

    def timeout_or(self, timeout: float | Default | None) -> float | None:
        """``timeout`` as given to a command, or this client's default."""
        return self.timeout if isinstance(timeout, Default) else timeout

    def upload_timeout(self, timeout: float | None) -> float | None:
        """The no-progress limit for a body upload run with command ``timeout``."""
        idle = self.upload_idle_timeout
        return timeout if idle is None else idle


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
