"""Build script: compiles ``fastsmtp._parser`` from Cython unless FASTSMTP_NO_EXTENSIONS is set.

There is no silent fallback: if the extension cannot be built, the build fails and says
how to get a pure-Python build instead.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NO_EXTENSIONS = bool(os.environ.get("FASTSMTP_NO_EXTENSIONS"))
PURE_HINT = (
    "fastsmtp: the compiled extension fastsmtp._parser could not be built: {error}\n"
    "Install a C compiler and the Python headers, or set FASTSMTP_NO_EXTENSIONS=1 "
    "for a pure-Python build."
)


class BuildExt(build_ext):
    """build_ext that turns any compile failure into one clear error."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - reported, then re-raised as SystemExit
            sys.exit(PURE_HINT.format(error=exc))

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            sys.exit(PURE_HINT.format(error=exc))


def extensions() -> list[Extension]:
    if NO_EXTENSIONS:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        sys.exit(PURE_HINT.format(error=f"Cython is not installed ({exc})"))
    return cythonize(  # type: ignore[no-any-return]
        [Extension("fastsmtp._parser", ["src/fastsmtp/_parser.pyx"])],
        compiler_directives={
            "language_level": 3,
            "embedsignature": True,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
