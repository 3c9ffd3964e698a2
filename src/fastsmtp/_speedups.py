"""Selects the compiled core (``_parser``) or its pure-Python twin (``_parser_py``).

``FASTSMTP_NO_EXTENSIONS`` (any non-empty value) forces the pure implementation; it is
read once, at import. Non-CPython interpreters always get the pure one.
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING, Literal

__all__ = (
    "IMPLEMENTATION",
    "NEED_DATA",
    "NO_EXTENSIONS",
    "TERMINAL",
    "TOKEN_LIST",
    "HEADER_TREE_TEXT",
    "HEADER_VALUE_TEXT",
    "DataEncoder",
    "ReplyParser",
    "auth_crammd5_verify",
    "auth_login_encode",
    "auth_plain_encode",
    "auth_xoauth2_encode",
    "class_key",
    "encode_data",
    "fold_line",
    "header_block_well_formed",
    "parts_that_fit",
    "render_children",
    "render_tokens",
)

NO_EXTENSIONS: bool = bool(os.environ.get("FASTSMTP_NO_EXTENSIONS")) or (
    platform.python_implementation() != "CPython"
)

IMPLEMENTATION: Literal["c", "py"]

if TYPE_CHECKING or NO_EXTENSIONS:
    from ._parser_py import (
        HEADER_TREE_TEXT,
        HEADER_VALUE_TEXT,
        NEED_DATA,
        TERMINAL,
        TOKEN_LIST,
        DataEncoder,
        ReplyParser,
        auth_crammd5_verify,
        auth_login_encode,
        auth_plain_encode,
        auth_xoauth2_encode,
        class_key,
        encode_data,
        fold_line,
        header_block_well_formed,
        parts_that_fit,
        render_children,
        render_tokens,
    )

    IMPLEMENTATION = "py"
else:
    try:
        from ._parser import (
            HEADER_TREE_TEXT,
            HEADER_VALUE_TEXT,
            NEED_DATA,
            TERMINAL,
            TOKEN_LIST,
            DataEncoder,
            ReplyParser,
            auth_crammd5_verify,
            auth_login_encode,
            auth_plain_encode,
            auth_xoauth2_encode,
            class_key,
            encode_data,
            fold_line,
            header_block_well_formed,
            parts_that_fit,
            render_children,
            render_tokens,
        )

        IMPLEMENTATION = "c"
    except ImportError:  # an installed pure build (FASTSMTP_NO_EXTENSIONS=1 at build time)
        from ._parser_py import (
            HEADER_TREE_TEXT,
            HEADER_VALUE_TEXT,
            NEED_DATA,
            TERMINAL,
            TOKEN_LIST,
            DataEncoder,
            ReplyParser,
            auth_crammd5_verify,
            auth_login_encode,
            auth_plain_encode,
            auth_xoauth2_encode,
            class_key,
            encode_data,
            fold_line,
            header_block_well_formed,
            parts_that_fit,
            render_children,
            render_tokens,
        )

        IMPLEMENTATION = "py"
