"""Sphinx configuration for fastsmtp's documentation.

Build (from the repository root, with ``pip install -e ".[docs]"``):

    python -m sphinx -W --keep-going -n -b html docs docs/_build/html

Every warning is an error and every cross-reference must resolve (``-n``, nitpicky). Python's
own objects resolve through a local intersphinx inventory: no network is needed (Debian's
``python3-doc`` package ships it; ``FASTSMTP_PYTHON_INVENTORY`` names another file).
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import os
import re

from docutils.nodes import Element
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.ext import intersphinx

import fastsmtp

project = "fastsmtp"
author = fastsmtp.__author__
copyright = fastsmtp.__copyright__.removeprefix("Copyright ")
release = version = fastsmtp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
nitpicky = True

# -- autodoc: typed signatures ------------------------------------------------------------------
autodoc_typehints = "signature"
# "fully-qualified" (shown short by python_use_unqualified_type_names): the "short" format's
# "~" prefixes break Sphinx's parsing of nested annotations such as dict[str, ~x.Y].
autodoc_typehints_format = "fully-qualified"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
python_use_unqualified_type_names = True
# SocketPathType is Union[str, bytes, "os.PathLike[str]"]: typing.get_type_hints cannot evaluate
# that forward reference in the modules that use the alias (they do not import os), and autodoc
# would then show every annotation of those signatures unevaluated. Spelt out, it evaluates.
autodoc_type_aliases = {"SocketPathType": "str | bytes | os.PathLike[str]"}


# -- intersphinx: Python's inventory from a local file ------------------------------------------
def _python_inventory() -> str:
    """The local objects.inv of Python's documentation (no network here or in CI)."""
    override = os.environ.get("FASTSMTP_PYTHON_INVENTORY")
    if override:
        return override
    for candidate in [
        "/usr/share/doc/python3/html/objects.inv",
        *sorted(glob.glob("/usr/share/doc/python3.*-doc/html/objects.inv"), reverse=True),
    ]:
        if os.path.exists(candidate):
            return candidate
    # Sphinx then warns that it cannot read the inventory, which -W makes an error: install
    # python3-doc (Debian) or set FASTSMTP_PYTHON_INVENTORY.
    return "/usr/share/doc/python3/html/objects.inv"


intersphinx_mapping = {"python": ("https://docs.python.org/3", _python_inventory())}

# Names that have no documentation target anywhere, each with why (everything else must resolve).
nitpick_ignore = [
    # SMTPProtocol's constructor takes the connection's sans-I/O session; the session, its
    # reply kinds and its pacing helpers are internal (design.md), not part of the API.
    ("py:class", "fastsmtp._session.SMTPSession"),
    ("py:class", "fastsmtp._session.Kind"),
    # Where Python has no email.errors.HeaderWriteError (before 3.13 and the 3.12.5 / 3.11.10
    # / 3.10.15 security releases), HeaderInjectionError derives from this private stand-in.
    ("py:class", "fastsmtp.errors._NoHeaderWriteError"),
    # The type variable of FleetRuntime's generic helpers.
    ("py:class", "fastsmtp.fleet._runtime.T"),
]
# Third-party types in the fleet, Celery, taskiq and OpenTelemetry signatures: their projects'
# inventories are not available offline (no network here or in CI).
nitpick_ignore_regex = [("py:class", r"(redis|celery|taskiq|opentelemetry)\..*")]


# -- HTML ---------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"fastsmtp {release}"
myst_heading_anchors = 3


# -- workarounds --------------------------------------------------------------------------------
def _tidy_signature(
    app: object,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None]:
    """Work around two Sphinx rendering problems, changing no meaning.

    * An ``autodoc_type_aliases`` entry that is part of a union (``socket_path: SocketPathType |
      None``) comes out as ``TypeAliasForwardRef('...')``: show the text inside.
    * A dataclass field with a ``default_factory`` has the default ``<factory>``, which is not
      Python, so Sphinx cannot parse the signature and splits it on commas (``dict[str`` then
      looks like a type): show the factory as a call instead (``dict()``).
    """
    if signature is not None:
        signature = _ALIAS_REPR.sub(r"\1", signature)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            for field in dataclasses.fields(obj):
                if field.init and field.default_factory is not dataclasses.MISSING:
                    factory = field.default_factory.__qualname__
                    shown = f"{factory}()" if factory.isidentifier() else "..."
                    signature = signature.replace("<factory>", shown, 1)
    if return_annotation is not None:
        return_annotation = _ALIAS_REPR.sub(r"\1", return_annotation)
    return signature, return_annotation


_ALIAS_REPR = re.compile(r"TypeAliasForwardRef\('([^']*)'\)")


#: Where Python documents what the annotations name by its defining module.
_PYTHON_NAMES = {
    "asyncio.events.AbstractEventLoop": "asyncio.AbstractEventLoop",
    "asyncio.protocols.BufferedProtocol": "asyncio.BufferedProtocol",
    "asyncio.protocols.Protocol": "asyncio.Protocol",
    "asyncio.transports.BaseTransport": "asyncio.BaseTransport",
    "_asyncio.Future": "asyncio.Future",
    "os.PathLike[str]": "os.PathLike",
}


def _import_target(target: str) -> object:
    """The object a dotted name refers to (``fastsmtp.results.queue_id``), or None."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _resolve_elsewhere(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: Element
) -> Element | None:
    """Resolve a Python reference the domain could not, by what it refers to.

    Annotations name an object by the module that defines it (``fastsmtp._options.Timeouts``,
    ``asyncio.events.AbstractEventLoop``); the docs document it where users import it
    (``fastsmtp.Timeouts``, ``asyncio.AbstractEventLoop``). Python's names are mapped by
    ``_PYTHON_NAMES``; a fastsmtp object resolves to the documented name of the same object.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    new_target = _PYTHON_NAMES.get(target)
    if new_target is None:
        obj = _import_target(target if "." in target else f"fastsmtp.{target}")
        if obj is None or isinstance(obj, (int, str)):
            return None
        domain = env.get_domain("py")
        for name, _entry in domain.objects.items():
            if name.startswith("fastsmtp.") and _import_target(name) is obj:
                new_target = name
                break
        else:
            return None
    node["reftarget"] = new_target
    resolved = env.get_domain("py").resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], new_target, node, contnode
    )
    if resolved is None:
        resolved = intersphinx.missing_reference(app, env, node, contnode)
    return resolved


def _drop_object_base(
    app: Sphinx, name: str, obj: object, options: object, bases: list[type]
) -> None:
    """No "Bases: object" line under every plain class; other bases are still shown."""
    if bases == [object]:
        bases.clear()


def setup(app: Sphinx) -> None:
    app.connect("autodoc-process-signature", _tidy_signature)
    app.connect("autodoc-process-bases", _drop_object_base)
    app.connect("missing-reference", _resolve_elsewhere)
