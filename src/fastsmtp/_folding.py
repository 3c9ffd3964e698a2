"""Header folding (RFC 5322 section 2.2.3) for ``send_message``, byte for byte the stdlib's.

``email.headerregistry.BaseHeader.fold`` hands a header's parse tree to
``email._header_value_parser._refold_parse_tree``, which turns every node into a string
again each time it looks at it (``TokenList.__str__`` is a recursive generator join): a To
header naming 100 recipients costs about a millisecond that way. :func:`fold_header`
follows the same algorithm over the same tree, rendering each node once, for the trees that
need no RFC 2047 encoded words: ASCII text, no line breaks, no MIME parameters, nothing the
stdlib would decide to encode in order to wrap it. For anything else it returns ``None``
and the caller uses the stdlib. The branches it takes are those of Python 3.10 to 3.13
(which differ only in the encoded-word branches it never takes);
tests/core/test_flatten_headers.py compares the two with hypothesis.
"""

from __future__ import annotations

import email._header_value_parser as _parser
import email.headerregistry
import sys
from typing import Any

__all__ = ("fold_header", "render")

_BASE_FOLD = email.headerregistry.BaseHeader.fold
_TOKEN_LIST_STR = _parser.TokenList.__str__
_WSP = frozenset(" \t")
_NEWLINES = frozenset("\r\n")
# What makes the stdlib encode a ptext token, on any version (3.10: SPECIALS; 3.13:
# SPECIALS and line breaks): a superset, so a ptext outside it is never encoded.
_PTEXT_ENCODED = frozenset(_parser.SPECIALS) | _NEWLINES

#: Verified against 3.10-3.13; a release whose folding we have not compared takes the
#: stdlib's path.
FOLDING_VERIFIED = sys.version_info < (3, 14)

# How to render a node class: a terminal is its own text (a str subclass whose __str__ is
# str's), a plain token list is its children's, anything else (quoted strings, comments,
# MIME parameters, encoded-word whitespace) is asked for str().
_TERMINAL, _LIST, _OTHER = 0, 1, 2
_KIND: dict[type, int] = {}


def _kind(cls: type) -> int:
    kind = _KIND.get(cls)
    if kind is None:
        if issubclass(cls, str) and cls.__str__ is str.__str__:
            kind = _TERMINAL
        elif issubclass(cls, _parser.TokenList) and cls.__str__ is _TOKEN_LIST_STR:
            kind = _LIST
        else:
            kind = _OTHER
        _KIND[cls] = kind
    return kind


def _collect(node: Any, out: list[str]) -> None:
    kinds = _KIND
    for child in node:
        kind = kinds.get(child.__class__)
        if kind is None:
            kind = _kind(child.__class__)
        if kind == _TERMINAL:
            out.append(child)
        elif kind == _LIST:
            _collect(child, out)
        else:
            out.append(str(child))


def render(node: Any) -> str:
    """``str(node)`` for a parse-tree node, each node visited once."""
    kind = _kind(node.__class__)
    if kind == _TERMINAL:
        return str.__str__(node)
    if kind == _OTHER:
        return str(node)
    out: list[str] = []
    _collect(node, out)
    return "".join(out)


def _steal_trailing_wsp(lines: list[str]) -> str:
    last = lines[-1]
    if last and last[-1] in _WSP:
        lines[-1] = last[:-1]
        return last[-1]
    return ""


# Header classes whose string value is str(parse tree) whenever it is ASCII (their parse()
# sets decoded = str(parse tree); BaseHeader only rewrites it when it holds surrogates,
# which are not ASCII): their text needs no walk of the tree.
_VALUE_IS_TREE = frozenset(
    cls.parse.__func__  # type: ignore[attr-defined]
    for cls in (
        email.headerregistry.UnstructuredHeader,
        email.headerregistry.MIMEVersionHeader,
        email.headerregistry.ParameterizedMIMEHeader,
        email.headerregistry.ContentTransferEncodingHeader,
        email.headerregistry.MessageIDHeader,
    )
)

_END_BLOCK = object()  # marks where a run of tokens that must not become encoded words ends


def fold_header(value: object, max_line_length: int | None, linesep: str) -> str | None:
    """The folded ``Name: value`` + linesep that ``value.fold(policy=...)`` returns for a
    policy with this line length and line separator, or ``None`` when the stdlib must do it.

    ``value`` is a header object of ``email.headerregistry`` (a plain string, or a class
    with its own ``fold``, gets ``None``).
    """
    if not FOLDING_VERIFIED:
        return None
    kind = type(value)
    if getattr(kind, "fold", None) is not _BASE_FOLD:
        return None
    tree = getattr(value, "_parse_tree", None)
    if not tree:
        return None  # an empty tree folds to "Name:" with no space: leave it to the stdlib
    name = value.name  # type: ignore[attr-defined]
    maxlen = max_line_length or sys.maxsize
    label = f"{name}: "
    if len(label) > maxlen or not label.isascii() or not _NEWLINES.isdisjoint(label):
        return None
    # BaseHeader.fold: Header[HeaderLabel[name, ":"], CFWSList[" "], tree]; the first two
    # fit on the first line (checked above), so the loop starts at the tree. Its children
    # are rendered once: for the tree's text, and again if it has to be folded.
    if getattr(getattr(kind, "parse", None), "__func__", None) in _VALUE_IS_TREE:
        texts: list[str] | None = None
        root = str.__str__(value)
    else:
        texts = [render(child) for child in tree] if _kind(tree.__class__) == _LIST else None
        root = "".join(texts) if texts is not None else render(tree)
    lines = [label]
    parts: list[tuple[Any, str | None]] = [(tree, root)]  # a stack: the next part is last
    blocked = 0
    while parts:
        part, text = parts.pop()
        if part is _END_BLOCK:
            blocked -= 1
            continue
        if text is None:
            text = render(part)
        token_type = part.token_type
        # The stdlib would encode (RFC 2047) or fold MIME parameters (RFC 2231): not here.
        if not text.isascii() or not _NEWLINES.isdisjoint(text):
            return None
        if token_type == "ptext" and not _PTEXT_ENCODED.isdisjoint(text):
            return None
        if token_type == "mime-parameters":
            return None
        if len(text) <= maxlen - len(lines[-1]):
            lines[-1] += text
            continue
        # Too long for this line: a major syntactic break goes on a new line if it fits
        # there (RFC 5322 section 2.2.3 folds at whitespace).
        if part.syntactic_break and len(text) + 1 <= maxlen:
            newline = _steal_trailing_wsp(lines)
            if newline or part.startswith_fws():
                lines.append(newline + text)
                continue
        if not hasattr(part, "encode"):  # a token list: fold its children
            if not part.as_ew_allowed:
                blocked += 1
                parts.append((_END_BLOCK, None))
            if part is tree and texts is not None:
                parts.extend(reversed(list(zip(tree, texts, strict=True))))
            else:
                parts.extend([(child, None) for child in reversed(part)])
            continue
        if part.as_ew_allowed and not blocked:
            return None  # the stdlib would encode it in order to wrap it
        newline = _steal_trailing_wsp(lines)
        if newline or part.startswith_fws():
            lines.append(newline + text)
        else:
            lines[-1] += text  # cannot be folded: the line stays long
    return linesep.join(lines) + linesep
