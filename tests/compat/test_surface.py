"""fastsmtp's public surface is aiosmtplib 5.1.3's (compat-api.md §1-§5), checked mechanically.

What is compared, for each module of the compat-api.md §1 table:

* ``__all__`` as a set of names;
* every public function, class, public method and property: parameter names, kinds and
  defaults exactly (defaults by value; the ``Default.token`` sentinel by its name);
* annotations after evaluation, in a canonical form that ignores spelling only: a class counts
  by its qualified name (``fastsmtp.response.SMTPResponse`` == ``aiosmtplib.response...``),
  ``X | None`` == ``Optional[X]``, union members as a set, forward references resolved, and
  ``Literal[Default.token]`` == ``Default`` (both spell "the not-given sentinel");
* exception MROs (class names) and ``args``/attribute behaviour; ``SMTPStatus`` members;
  ``SMTP.AUTH_METHODS``, the port constants and ``DEFAULT_TIMEOUT``.

Deliberate differences are listed in ``ADDED_KEYWORD_ONLY`` / ``DIFFERENT_METADATA`` with the
reason. An added parameter must be keyword-only and have a default, and must be listed.
"""

from __future__ import annotations

import email.charset
import enum
import importlib
import importlib.metadata
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import typing
from types import ModuleType, UnionType
from typing import Any

import aiosmtplib
import pytest

import fastsmtp

MODULES = ["", "api", "smtp", "auth", "email", "errors", "esmtp", "response", "status", "typing"]

# (qualified name) -> {added keyword-only parameter: reason}
_INSECURE_AUTH = (
    "security.md §3: AUTH is refused on plaintext non-loopback channels unless the caller "
    "opts in; default keeps credentials safe"
)
_PIPELINING = "issue 4: RFC 2920 PIPELINING; None = use when advertised (compatible default)"
_CHUNKING = "issue 4: RFC 3030 CHUNKING/BDAT; opt-in, default False keeps DATA"
_SIZE = "issue 4: SIZE for a streamed message, whose length is unknown up front"
_PROGRESS = "issue 4: progress callback for long uploads"
_PROXY = "issue 14: SOCKS4/4a/5/5h or HTTP CONNECT proxy URL; None = connect directly"
_EXTENSIONS = {
    "dsn": "issue 16: typed RFC 3461 delivery status notifications (fastsmtp.DSN)",
    "require_tls": "issue 16: RFC 8689 REQUIRETLS; default False sends as before",
    "smtputf8": "issue 16: False never sends SMTPUTF8 (IDNA domains); None = as before",
}
_CONNECTION_ADDITIONS = {
    "allow_insecure_auth": _INSECURE_AUTH,
    "pipelining": _PIPELINING,
    "chunking": _CHUNKING,
    "proxy": _PROXY,
}
ADDED_KEYWORD_ONLY: dict[str, dict[str, str]] = {
    "SMTP.__init__": _CONNECTION_ADDITIONS,
    "SMTP.connect": _CONNECTION_ADDITIONS,
    "send": {**_CONNECTION_ADDITIONS, "size": _SIZE, "progress": _PROGRESS, **_EXTENSIONS},
    "SMTP.sendmail": {"size": _SIZE, "progress": _PROGRESS, **_EXTENSIONS},
    "SMTP.send_message": _EXTENSIONS,
    "SMTP.data": {"progress": _PROGRESS},
}

# Parameters whose annotation is deliberately wider than aiosmtplib's (the old type is
# still accepted): name -> reason.
WIDER_ANNOTATIONS: dict[str, str] = {
    "send.message": "issue 4: also a stream (iterable/async iterable of bytes, binary file)",
    "SMTP.sendmail.message": "issue 4: also a stream (iterable/async iterable of bytes, file)",
    "SMTP.data.message": "issue 4: also a stream (iterable/async iterable of bytes, file)",
}

# How canonical() spells fastsmtp.Timeouts, the one type added to every ``timeout``.
TIMEOUTS = "aiosmtplib._options.Timeouts"

# Top-level metadata that names the package, not the API.
DIFFERENT_METADATA = {
    "__title__": "the package is called fastsmtp",
    "__version__": "fastsmtp has its own version",
    "__author__": "different authors",
    "__copyright__": "different authors",
}


def _module(package: str, name: str) -> ModuleType:
    return importlib.import_module(f"{package}.{name}" if name else package)


# --- canonical annotations -----------------------------------------------------------------


def _is_default_type(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, enum.Enum) and obj.__name__ == "Default"


def canonical(annotation: Any) -> Any:
    """A spelling-independent form of an evaluated annotation (see the module docstring)."""
    if annotation is inspect.Parameter.empty:
        return "<empty>"
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, typing.ForwardRef):
        return canonical(eval(annotation.__forward_arg__, {"os": os}))
    if isinstance(annotation, str):
        return annotation.replace(" ", "").replace("fastsmtp.", "aiosmtplib.")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union or isinstance(annotation, UnionType):
        return ("Union", frozenset(canonical(arg) for arg in args))
    if origin is typing.Literal:
        if all(isinstance(arg, enum.Enum) and type(arg).__name__ == "Default" for arg in args):
            return "Default"
        return ("Literal", tuple(repr(arg) for arg in args))
    if _is_default_type(annotation):
        return "Default"
    if origin is not None:
        return (canonical(origin), tuple(canonical(arg) for arg in args))
    if isinstance(annotation, list):
        return tuple(canonical(arg) for arg in annotation)
    if annotation is Ellipsis:
        return "..."
    if isinstance(annotation, type):
        module = annotation.__module__.replace("fastsmtp", "aiosmtplib")
        return f"{module}.{annotation.__qualname__}"
    return repr(annotation).replace("fastsmtp", "aiosmtplib")


def canonical_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    return value


def signature(func: Any) -> inspect.Signature:
    try:
        return inspect.signature(func, eval_str=True)
    except (NameError, TypeError, AttributeError):
        return inspect.signature(func)


def _union_members(canonical_annotation: Any) -> frozenset[Any]:
    if isinstance(canonical_annotation, tuple) and canonical_annotation[:1] == ("Union",):
        return frozenset(canonical_annotation[1])
    return frozenset([canonical_annotation])


def assert_same_signature(qualname: str, theirs_func: Any, ours_func: Any) -> None:
    theirs = signature(theirs_func)
    ours = signature(ours_func)
    allowed = ADDED_KEYWORD_ONLY.get(qualname, {})
    ours_params = dict(ours.parameters)
    for name, param in list(ours_params.items()):
        if name not in theirs.parameters:
            assert name in allowed, f"{qualname}: unlisted extra parameter {name!r}"
            assert param.kind is inspect.Parameter.KEYWORD_ONLY, f"{qualname}: {name}"
            assert param.default is not inspect.Parameter.empty, f"{qualname}: {name}"
            del ours_params[name]
    for name in allowed:
        assert name in ours.parameters, f"{qualname}: listed extra {name!r} does not exist"

    def annotation(param: inspect.Parameter) -> Any:
        if param.name == "timeout" and "timeout" in theirs.parameters:
            # Issue 14: a Timeouts (a limit per phase) is accepted wherever a timeout is;
            # everything else about the annotation is aiosmtplib's.
            ours_types = _union_members(canonical(param.annotation))
            theirs_types = _union_members(canonical(theirs.parameters["timeout"].annotation))
            assert ours_types - theirs_types in (set(), {TIMEOUTS}), f"{qualname}.timeout"
            assert theirs_types <= ours_types, f"{qualname}.timeout is not wider"
            return canonical(theirs.parameters["timeout"].annotation)
        if f"{qualname}.{param.name}" in WIDER_ANNOTATIONS:
            # Ours must accept everything theirs does; compare theirs with itself.
            ours_types = _union_members(canonical(ours.parameters[param.name].annotation))
            theirs_types = _union_members(canonical(theirs.parameters[param.name].annotation))
            assert theirs_types <= ours_types, f"{qualname}.{param.name} is not wider"
            return canonical(theirs.parameters[param.name].annotation)
        return canonical(param.annotation)

    def shape(params: dict[str, inspect.Parameter]) -> list[tuple[Any, ...]]:
        return [
            (p.name, p.kind, canonical_default(p.default), annotation(p)) for p in params.values()
        ]

    assert shape(ours_params) == shape(dict(theirs.parameters)), qualname
    assert canonical(ours.return_annotation) == canonical(theirs.return_annotation), qualname


# --- modules and names ---------------------------------------------------------------------


@pytest.mark.parametrize("name", MODULES)
def test_module_all(name: str) -> None:
    theirs = _module("aiosmtplib", name)
    ours = _module("fastsmtp", name)
    assert set(ours.__all__) == set(theirs.__all__)


@pytest.mark.parametrize("name", MODULES)
def test_public_functions_and_classes(name: str) -> None:
    theirs = _module("aiosmtplib", name)
    ours = _module("fastsmtp", name)
    for attr in theirs.__all__:
        their_obj = getattr(theirs, attr)
        our_obj = getattr(ours, attr)
        if inspect.isfunction(their_obj):
            # compiled (Cython) functions are not ``FunctionType`` but must be callables
            assert callable(our_obj) and not inspect.isclass(our_obj), attr
            assert inspect.iscoroutinefunction(our_obj) == inspect.iscoroutinefunction(their_obj), (
                attr
            )
            assert_same_signature(attr, their_obj, our_obj)
        elif inspect.isclass(their_obj):
            assert inspect.isclass(our_obj), attr


def test_canonical_annotations_are_not_vacuous() -> None:
    assert canonical(str | None) == canonical(typing.Optional[str])  # noqa: UP045
    assert canonical(str | None) != canonical(str)
    assert canonical(str | int) != canonical(str | bytes)
    assert canonical(list[str]) != canonical(tuple[str])
    assert canonical(aiosmtplib.SMTPResponse) == canonical(fastsmtp.SMTPResponse)
    assert canonical(aiosmtplib.SMTPResponse) != canonical(aiosmtplib.SMTPStatus)


def test_email_extract_addresses_signature() -> None:
    import aiosmtplib.email

    import fastsmtp.email

    assert_same_signature(
        "extract_addresses", aiosmtplib.email.extract_addresses, fastsmtp.email.extract_addresses
    )


def test_metadata() -> None:
    assert fastsmtp.__license__ == aiosmtplib.__license__ == "MIT"
    for attr, reason in DIFFERENT_METADATA.items():
        assert isinstance(getattr(fastsmtp, attr), str), reason
    assert fastsmtp.__title__ == "fastsmtp"


def test_distribution_name() -> None:
    # `fastsmtp` on PyPI is an unrelated project: this one is distributed as `fastsmtplib`
    # and imported as `fastsmtp`.
    assert importlib.metadata.version("fastsmtplib") == fastsmtp.__version__
    assert "fastsmtplib" in importlib.metadata.packages_distributions()["fastsmtp"]


# --- SMTP ----------------------------------------------------------------------------------


def _public_members(cls: type) -> dict[str, Any]:
    return {
        name: inspect.getattr_static(cls, name)
        for name in dir(cls)
        if not name.startswith("_") or name in ("__init__", "__aenter__", "__aexit__")
    }


def test_smtp_members() -> None:
    import aiosmtplib.smtp

    import fastsmtp.smtp

    theirs = _public_members(aiosmtplib.smtp.SMTP)
    ours = _public_members(fastsmtp.smtp.SMTP)
    missing = sorted(set(theirs) - set(ours))
    assert not missing, f"SMTP lacks {missing}"
    for name, their_member in theirs.items():
        our_member = ours[name]
        qualname = f"SMTP.{name}"
        if isinstance(their_member, property):
            assert isinstance(our_member, property), qualname
            assert (our_member.fset is None) == (their_member.fset is None), qualname
        elif inspect.isfunction(their_member):
            assert inspect.isfunction(our_member), qualname
            assert inspect.iscoroutinefunction(our_member) == inspect.iscoroutinefunction(
                their_member
            ), qualname
            assert_same_signature(qualname, their_member, our_member)
        elif isinstance(their_member, (staticmethod, classmethod)):
            assert type(our_member) is type(their_member), qualname
    # A documented difference (README): SCRAM comes first, then aiosmtplib's order.
    assert aiosmtplib.smtp.SMTP.AUTH_METHODS == ("cram-md5", "plain", "login")
    assert (
        "scram-sha-256",
        "scram-sha-1",
        *aiosmtplib.smtp.SMTP.AUTH_METHODS,
    ) == fastsmtp.smtp.SMTP.AUTH_METHODS


def test_smtp_constants() -> None:
    import aiosmtplib.smtp

    import fastsmtp.smtp

    for name in ("SMTP_PORT", "SMTP_TLS_PORT", "SMTP_STARTTLS_PORT", "DEFAULT_TIMEOUT"):
        assert getattr(fastsmtp.smtp, name) == getattr(aiosmtplib.smtp, name), name
    assert (fastsmtp.smtp.SMTP_PORT, fastsmtp.smtp.SMTP_TLS_PORT) == (25, 465)
    assert (fastsmtp.smtp.SMTP_STARTTLS_PORT, fastsmtp.smtp.DEFAULT_TIMEOUT) == (587, 60)


def test_smtp_instance_attributes() -> None:
    import aiosmtplib.smtp

    import fastsmtp.smtp

    theirs = aiosmtplib.smtp.SMTP(hostname="h", port=2525, local_hostname="me")
    ours = fastsmtp.smtp.SMTP(hostname="h", port=2525, local_hostname="me")
    public = [n for n in vars(theirs) if not n.startswith("_") and n != "loop"]
    for name in [*public, "last_ehlo_response", "is_connected", "supported_auth_methods"]:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.is_ehlo_or_helo_needed == theirs.is_ehlo_or_helo_needed


# --- exceptions ----------------------------------------------------------------------------

EXCEPTION_ARGS: dict[str, tuple[Any, ...]] = {
    "SMTPException": ("boom",),
    "SMTPServerDisconnected": ("gone",),
    "SMTPConnectError": ("refused",),
    "SMTPTimeoutError": ("slow",),
    "SMTPConnectTimeoutError": ("slow connect",),
    "SMTPReadTimeoutError": ("slow read",),
    "SMTPNotSupported": ("nope",),
    "SMTPResponseException": (550, "no"),
    "SMTPConnectResponseError": (554, "go away"),
    "SMTPHeloError": (501, "bad helo"),
    "SMTPDataError": (554, "bad data"),
    "SMTPAuthenticationError": (535, "bad creds"),
    "SMTPSenderRefused": (550, "bad sender", "s@x"),
    "SMTPRecipientRefused": (550, "bad rcpt", "r@x"),
}


def _mro_names(cls: type) -> list[str]:
    return [
        f"{k.__module__.replace('fastsmtp', 'aiosmtplib')}.{k.__qualname__}" for k in cls.__mro__
    ]


def _exception_view(exc: BaseException) -> dict[str, Any]:
    view: dict[str, Any] = {"args": exc.args, "str": str(exc)}
    for attr in ("message", "code", "sender", "recipient"):
        view[attr] = getattr(exc, attr, "<missing>")
    view["recipients"] = [(r.code, r.message, r.recipient) for r in getattr(exc, "recipients", [])]
    view["has_message"] = hasattr(exc, "message")
    return view


@pytest.mark.parametrize("name", sorted(aiosmtplib.errors.__all__))
def test_exception(name: str) -> None:
    import fastsmtp.errors

    theirs_cls = getattr(aiosmtplib.errors, name)
    ours_cls = getattr(fastsmtp.errors, name)
    assert _mro_names(ours_cls) == _mro_names(theirs_cls)
    assert getattr(fastsmtp, name) is ours_cls
    if name == "SMTPRecipientsRefused":
        theirs = theirs_cls([aiosmtplib.errors.SMTPRecipientRefused(550, "x", "a@b")])
        ours = ours_cls([fastsmtp.errors.SMTPRecipientRefused(550, "x", "a@b")])
        assert _exception_view(ours)["recipients"] == _exception_view(theirs)["recipients"]
        assert hasattr(ours, "message") == hasattr(theirs, "message")
        return
    args = EXCEPTION_ARGS[name]
    assert _exception_view(ours_cls(*args)) == _exception_view(theirs_cls(*args))
    assert_same_signature(f"{name}.__init__", theirs_cls.__init__, ours_cls.__init__)


# --- status, typing, response --------------------------------------------------------------


def test_smtp_status() -> None:
    import aiosmtplib.status

    import fastsmtp.status
    import fastsmtp.typing

    theirs = {m.name: m.value for m in aiosmtplib.typing.SMTPStatus}
    ours = {m.name: m.value for m in fastsmtp.typing.SMTPStatus}
    assert ours == theirs
    assert fastsmtp.status.SMTPStatus is fastsmtp.typing.SMTPStatus is fastsmtp.SMTPStatus
    assert aiosmtplib.status.SMTPStatus is aiosmtplib.typing.SMTPStatus


def test_typing_default_sentinel() -> None:
    import aiosmtplib.typing

    import fastsmtp.typing

    assert [m.name for m in fastsmtp.typing.Default] == [m.name for m in aiosmtplib.typing.Default]
    assert fastsmtp.typing._default is fastsmtp.typing.Default.token
    assert typing.get_args(fastsmtp.typing.SMTPTokenGenerator) == typing.get_args(
        aiosmtplib.typing.SMTPTokenGenerator
    )


def test_response() -> None:
    import fastsmtp.response

    theirs = aiosmtplib.response.SMTPResponse(250, "OK")
    ours = fastsmtp.response.SMTPResponse(250, "OK")
    assert ours._fields == theirs._fields
    assert (repr(ours), str(ours), tuple(ours)) == (repr(theirs), str(theirs), tuple(theirs))


# --- every public module-level name --------------------------------------------------------
#
# ``__all__`` is not the whole contract: code imports whatever a module shows, e.g.
# fastapi-mail's ``from aiosmtplib.api import DEFAULT_TIMEOUT``. So every public name (no
# leading ``_``) of every module of the installed aiosmtplib must exist in the same-named
# fastsmtp module and be the same kind of thing: classes are classes (exceptions with the same
# MRO, enums with the same members), functions callables with the same signature, constants
# equal, typing aliases equal, and names that are one object in aiosmtplib (a re-export such as
# ``aiosmtplib.smtp.SMTPStatus is aiosmtplib.status.SMTPStatus``) one object in fastsmtp.


def _aiosmtplib_modules() -> list[str]:
    """Every module of the installed aiosmtplib ("" is the package), except ``__main__``
    (importing it runs the interactive CLI; ``python -m fastsmtp`` is tested in test_cli)."""
    found = [""]
    for info in pkgutil.walk_packages(aiosmtplib.__path__, "aiosmtplib."):
        short = info.name.removeprefix("aiosmtplib.")
        if short != "__main__":
            found.append(short)
    return found


ALL_MODULES = _aiosmtplib_modules()

# Names that aiosmtplib's modules only have because they import them for their own use: a
# standard-library module or a typing helper, importable from where it comes from. Not
# required from fastsmtp. name -> (where the object comes from, reason); the test checks
# that aiosmtplib's object really is that one, so nothing of aiosmtplib's own hides here.
_STDLIB_MODULE = "a standard-library module aiosmtplib imports for its own use"
_TYPING_HELPER = "a typing / collections.abc helper imported for annotations"
NOT_REEXPORTED: dict[str, tuple[tuple[str, ...], str]] = {
    **{
        name: ((name,), _STDLIB_MODULE)
        for name in (
            "asyncio",
            "base64",
            "binascii",
            "collections",
            "copy",
            "email",
            "enum",
            "hmac",
            "io",
            "os",
            "re",
            "socket",
            "ssl",
        )
    },
    "Any": (("typing",), _TYPING_HELPER),
    "Awaitable": (("collections.abc",), _TYPING_HELPER),
    "Callable": (("typing", "collections.abc"), _TYPING_HELPER),
    "Iterable": (("collections.abc",), _TYPING_HELPER),
    "Literal": (("typing",), _TYPING_HELPER),
    "NamedTuple": (("typing",), _TYPING_HELPER),
    "Sequence": (("collections.abc",), _TYPING_HELPER),
    "TracebackType": (("types",), _TYPING_HELPER),
    "cast": (("typing",), _TYPING_HELPER),
}

# (module, class) -> reason: a base class aiosmtplib's class has and fastsmtp's lacks.
DIFFERENT_BASES = {
    ("protocol", "SMTPProtocol"): (
        "compat-api.md §1: fastsmtp's protocol is its own (session, batches, its own flow "
        "control); FlowControlMixin is provided for code that builds on it, but is not "
        "SMTPProtocol's base"
    ),
}


def _from_aiosmtplib(obj: Any) -> bool:
    if isinstance(obj, ModuleType):
        return obj.__name__.split(".")[0] == "aiosmtplib"
    return str(getattr(obj, "__module__", "")).split(".")[0] == "aiosmtplib"


def _is_constant(obj: Any) -> bool:
    return isinstance(obj, (int, float, str, bytes, re.Pattern, email.charset.Charset))


def _constant_view(obj: Any) -> Any:
    if isinstance(obj, re.Pattern):
        return ("re.Pattern", obj.pattern, obj.flags)
    if isinstance(obj, email.charset.Charset):
        return (
            "Charset",
            obj.input_charset,
            obj.header_encoding,
            obj.body_encoding,
            obj.output_charset,
        )
    return (type(obj).__name__, obj)


def _class_problems(where: tuple[str, str], theirs: type, ours: Any) -> list[str]:
    label = f"{where[0]}.{where[1]}"
    if not inspect.isclass(ours):
        return [f"{label} is not a class"]
    problems = []
    if issubclass(theirs, BaseException):
        if _mro_names(ours) != _mro_names(theirs):
            problems.append(f"{label}: MRO {_mro_names(ours)} != {_mro_names(theirs)}")
    elif (
        theirs.__module__.removeprefix("aiosmtplib."),
        theirs.__qualname__,
    ) not in DIFFERENT_BASES:
        for base in theirs.__mro__[1:]:
            if _from_aiosmtplib(base):
                home = _module("fastsmtp", base.__module__.removeprefix("aiosmtplib."))
                ours_base = getattr(home, base.__name__)
            else:
                ours_base = base
            if not issubclass(ours, ours_base):
                problems.append(f"{label} does not derive from {base.__qualname__}")
    if issubclass(theirs, enum.Enum):
        members = {m.name: m.value for m in theirs}
        if not issubclass(ours, enum.Enum) or {m.name: m.value for m in ours} != members:
            problems.append(f"{label}: enum members differ")
    if hasattr(theirs, "_fields") and getattr(ours, "_fields", None) != theirs._fields:
        problems.append(f"{label}: fields differ")
    return problems


def _problems(module: str, name: str, theirs: Any, ours: Any) -> list[str]:
    label = f"{module}.{name}"
    if isinstance(theirs, ModuleType):
        expected = _module("fastsmtp", theirs.__name__.removeprefix("aiosmtplib").lstrip("."))
        return [] if ours is expected else [f"{label} is not {expected.__name__}"]
    if typing.get_origin(theirs) is not None or isinstance(theirs, UnionType):
        # typing aliases (SMTPTokenGenerator, SocketPathType)
        return [] if canonical(ours) == canonical(theirs) else [f"{label}: {ours!r} differs"]
    if not _from_aiosmtplib(theirs) and not _is_constant(theirs):
        # A standard-library object aiosmtplib re-exports on purpose (errors.TimeoutError):
        # the very same object, so ``except`` clauses catch the same things.
        return [] if ours is theirs else [f"{label} is not {theirs!r}"]
    if inspect.isclass(theirs):
        return _class_problems((module, name), theirs, ours)
    if inspect.isfunction(theirs):
        if not callable(ours) or inspect.isclass(ours):
            return [f"{label} is not a function"]
        if inspect.iscoroutinefunction(ours) != inspect.iscoroutinefunction(theirs):
            return [f"{label}: coroutine function or not differs"]
        try:
            assert_same_signature(name, theirs, ours)
        except AssertionError as exc:
            return [f"{label}: signature differs ({exc})"]
        return []
    assert _is_constant(theirs), f"{label}: no rule for {theirs!r}"
    if _constant_view(ours) != _constant_view(theirs):
        return [f"{label} = {ours!r}, aiosmtplib has {theirs!r}"]
    return []


def _required_names(module: str) -> dict[str, Any]:
    theirs = _module("aiosmtplib", module)
    required = {}
    for name, value in vars(theirs).items():
        if name.startswith("_"):
            continue
        if name in NOT_REEXPORTED and not _from_aiosmtplib(value):
            origins, _reason = NOT_REEXPORTED[name]
            assert any(
                value is importlib.import_module(origin)
                if name == origin
                else value is getattr(importlib.import_module(origin), name, None)
                for origin in origins
            ), f"aiosmtplib.{module}.{name} is not the stdlib object NOT_REEXPORTED says it is"
            continue
        required[name] = value
    return required


def test_all_modules_found() -> None:
    # The walk must see aiosmtplib's modules (an empty walk would make the next test vacuous).
    assert {"api", "auth", "email", "errors", "esmtp", "protocol", "smtp", "status"} <= set(
        ALL_MODULES
    )
    assert set(MODULES) - {"protocol"} <= set(ALL_MODULES)


@pytest.mark.parametrize("module", ALL_MODULES)
def test_every_public_module_level_name(module: str) -> None:
    ours = _module("fastsmtp", module)
    required = _required_names(module)
    missing = sorted(name for name in required if not hasattr(ours, name))
    assert not missing, f"fastsmtp.{module or '__init__'} lacks {missing}"
    problems = [
        problem
        for name, theirs in sorted(required.items())
        for problem in _problems(module, name, theirs, getattr(ours, name))
    ]
    assert not problems


def test_reexports_are_the_same_objects() -> None:
    """Where several aiosmtplib names are one object, the fastsmtp names are one object."""
    groups: dict[int, list[tuple[str, str]]] = {}
    keep: list[Any] = []  # keeps every object alive while its id() is a key
    for module in ALL_MODULES:
        for name, value in _required_names(module).items():
            if _is_constant(value):
                continue
            keep.append(value)
            groups.setdefault(id(value), []).append((module, name))
    shared = [places for places in groups.values() if len(places) > 1]
    assert any(("status", "SMTPStatus") in places for places in shared)  # not vacuous
    for places in shared:
        objects = {id(getattr(_module("fastsmtp", m), n)) for m, n in places}
        assert len(objects) == 1, f"not one object in fastsmtp: {places}"


def test_compat_installs_every_module() -> None:
    import fastsmtp.compat

    assert set(fastsmtp.compat._SUBMODULES) == set(ALL_MODULES) - {""}


def test_submodules_are_attributes_after_a_plain_import() -> None:
    # ``import aiosmtplib`` alone makes ``aiosmtplib.auth`` etc. usable; a fresh interpreter,
    # because in this one every submodule is imported already.
    code = (
        "import sys, types; pkg = __import__(sys.argv[1]); "
        "print(' '.join(sorted(n for n, v in vars(pkg).items() "
        "if isinstance(v, types.ModuleType) and not n.startswith('_'))))"
    )

    def submodules(package: str) -> set[str]:
        result = subprocess.run(
            [sys.executable, "-c", code, package],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return set(result.stdout.split())

    theirs = submodules("aiosmtplib")
    assert "auth" in theirs
    assert theirs <= submodules("fastsmtp")


def test_name_rules_catch_differences() -> None:
    # The rules above are not vacuous: each kind of difference is reported.
    import aiosmtplib.api
    import aiosmtplib.errors
    import aiosmtplib.protocol

    assert _problems("api", "DEFAULT_TIMEOUT", 60, 61)
    assert _problems("protocol", "PERIOD_REGEX", aiosmtplib.protocol.PERIOD_REGEX, re.compile(b"^"))
    assert _problems("errors", "SMTPDataError", aiosmtplib.errors.SMTPDataError, ValueError)
    assert _problems("errors", "TimeoutError", aiosmtplib.errors.TimeoutError, OSError)
    assert _problems("api", "send", aiosmtplib.api.send, lambda message: None)
    assert _problems("typing", "SocketPathType", aiosmtplib.typing.SocketPathType, str | bytes)
    assert _problems("", "auth", aiosmtplib.auth, fastsmtp.errors)
