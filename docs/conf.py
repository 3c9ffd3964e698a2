"""Sphinx configuration for fastsmtp's documentation.

Build (from the repository root, with ``pip install -e ".[docs]"``):

    python -m sphinx -W --keep-going -n -b html docs docs/_build/html

Every warning is an error and every cross-reference must resolve (``-n``, nitpicky). Python's
own objects resolve through a local intersphinx inventory: no network is needed (Debian's
``python3-doc`` package ships it; ``FASTSMTP_PYTHON_INVENTORY`` names another file).
"""

from __future__ import annotations

import glob
import os

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
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
python_use_unqualified_type_names = True


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
nitpick_ignore: list[tuple[str, str]] = []

# -- HTML ---------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"fastsmtp {release}"
myst_heading_anchors = 3
