"""Make ``import aiosmtplib`` resolve to fastsmtp.

Call :func:`install_as_aiosmtplib` once, early (before anything imports aiosmtplib)::

    import fastsmtp.compat
    fastsmtp.compat.install_as_aiosmtplib()

    import aiosmtplib                              # the fastsmtp package object
    from aiosmtplib.errors import SMTPException    # fastsmtp.errors.SMTPException

Afterwards ``sys.modules["aiosmtplib"]`` is the ``fastsmtp`` package and
``sys.modules["aiosmtplib.<name>"]`` is ``fastsmtp.<name>`` for each of aiosmtplib's modules,
so exception classes are the very same objects whichever name they are imported under.
``aiosmtplib.__main__`` is not registered (importing it would run the CLI); use
``python -m fastsmtp``. For code that only does ``import aiosmtplib`` and uses attributes,
``import fastsmtp as aiosmtplib`` is enough and needs no installation.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ("install_as_aiosmtplib",)

_ALIAS = "aiosmtplib"
_SUBMODULES = (
    "api",
    "auth",
    "email",
    "errors",
    "esmtp",
    "protocol",
    "response",
    "smtp",
    "status",
    "typing",
)


def install_as_aiosmtplib() -> None:
    """Register fastsmtp and its modules in ``sys.modules`` under the ``aiosmtplib`` names.

    Idempotent. Raises ``RuntimeError`` if the real aiosmtplib (or any other module) is
    already imported under one of those names: mixing both would give two exception
    hierarchies.
    """
    package = importlib.import_module("fastsmtp")
    modules: dict[str, ModuleType] = {_ALIAS: package}
    for name in _SUBMODULES:
        modules[f"{_ALIAS}.{name}"] = importlib.import_module(f"fastsmtp.{name}")
    for alias, module in modules.items():
        present = sys.modules.get(alias)
        if present is not None and present is not module:
            raise RuntimeError(
                f"{alias!r} is already imported from {getattr(present, '__file__', present)!r};"
                " call fastsmtp.compat.install_as_aiosmtplib() before anything imports "
                "aiosmtplib (mixing both packages would give two exception hierarchies)"
            )
    for alias, module in modules.items():
        sys.modules[alias] = module
        if alias != _ALIAS:
            # ``import aiosmtplib.errors`` then finds the submodule as a package attribute.
            setattr(package, alias.rpartition(".")[2], module)
