"""Parsing of the EHLO reply into ESMTP extensions (RFC 5321 §4.1.1.1).

::

    ehlo-ok-rsp = "250" SP Domain [ SP ehlo-greet ] CRLF
                / "250-" Domain [ SP ehlo-greet ] CRLF
                  *( "250-" ehlo-line CRLF )
                  "250" SP ehlo-line CRLF
    ehlo-line   = ehlo-keyword *( SP ehlo-param )

The input is the reply *text* (the lines joined with LF, codes already removed), so the first
line is the greeting and every further line is one ``ehlo-line``. The old-style ``AUTH=...``
line (sent by some servers for pre-RFC 2554 clients) also counts as AUTH.
"""

from __future__ import annotations

import re

__all__ = ("parse_esmtp_extensions",)

# The old-style ``AUTH=<methods>`` line; public in aiosmtplib.esmtp under this name.
OLDSTYLE_AUTH_REGEX = re.compile(r"auth=(?P<auth>.*)", re.IGNORECASE)


def parse_esmtp_extensions(message: str) -> tuple[dict[str, str], list[str]]:
    """Parse an EHLO reply text into ``({keyword: params}, [auth methods])``.

    Keywords and auth methods are lower-cased; params are kept as sent; a keyword seen twice
    keeps its last params; auth methods keep the server's order, duplicates included.
    """
    extensions: dict[str, str] = {}
    auth_methods: list[str] = []
    for raw_line in message.split("\n")[1:]:
        line = raw_line.strip()
        if not line:
            continue
        old_style = OLDSTYLE_AUTH_REGEX.match(line)
        if old_style is not None:
            params = old_style.group("auth")
            extensions["auth"] = params
            auth_methods.extend(method.lower() for method in params.split())
            continue
        keyword, _, params = line.partition(" ")
        keyword = keyword.lower()
        extensions[keyword] = params
        if keyword == "auth":
            auth_methods.extend(method.lower() for method in params.split())
    return extensions, auth_methods
