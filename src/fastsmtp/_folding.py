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
import operator
import sys
from typing import Any

from ._speedups import (
    HEADER_TREE_TEXT,
    HEADER_VALUE_TEXT,
    TERMINAL,
    TOKEN_LIST,
    class_key,
    parts_that_fit,
    render_children,
    render_tokens,
)

__all__ = ("FOLD_TABLES", "fold_header", "render")

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
# MIME parameters, encoded-word whitespace) is asked for str(). The core's render_tokens
# walks a tree with this table (a class missing from it is asked for str()).
_TERMINAL, _LIST, _OTHER = TERMINAL, TOKEN_LIST, 2


def _classify(cls: type) -> int:
    if issubclass(cls, str) and cls.__str__ is str.__str__:
        return _TERMINAL
    if issubclass(cls, _parser.TokenList) and cls.__str__ is _TOKEN_LIST_STR:
        return _LIST
    return _OTHER


_KIND: dict[type, int] = {
    cls: _classify(cls)
    for cls in vars(_parser).values()
    if isinstance(cls, type) and issubclass(cls, (_parser.Terminal, _parser.TokenList))
}


def _kind(cls: type) -> int:
    kind = _KIND.get(cls)
    if kind is None:
        kind = _KIND[cls] = _classify(cls)
    return kind


def render(node: Any) -> str:
    """``str(node)`` for a parse-tree node, each node visited once."""
    kind = _kind(node.__class__)
    if kind == _TERMINAL:
        return str.__str__(node)
    if kind == _LIST:
        return render_tokens(node, _KIND)
    return str(node)


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


# How a header class is folded here: not at all (a plain string, a class with its own
# fold, or a Python whose folding is unverified), from its value's text, or from its tree.
# Keyed by class_key(class): email.headerregistry makes a new class for every header object
# (HeaderRegistry.__getitem__ calls type() each time), so a table of the classes themselves
# would miss on every new message and grow with every message sent. Bounded all the same.
_STDLIB, _VALUE_TEXT, _TREE_TEXT = 0, HEADER_VALUE_TEXT, HEADER_TREE_TEXT
_HEADER_CLASSES: dict[object, int] = {}


_BASE_NAME = email.headerregistry.BaseHeader.name  # the property: returns self._name


def _header_class(kind: type) -> int:
    if not FOLDING_VERIFIED or getattr(kind, "fold", None) is not _BASE_FOLD:
        return _STDLIB
    if getattr(kind, "name", None) is not _BASE_NAME:
        return _STDLIB  # value._name below stands for value.name
    if getattr(getattr(kind, "parse", None), "__func__", None) in _VALUE_IS_TREE:
        return _VALUE_TEXT
    return _TREE_TEXT


#: "Name: " by header name (exact str names only), or "" for a name that cannot start a
#: line here (not ASCII, or holding a line break): the stdlib's.
_LABELS: dict[str, str] = {}


def _label(name: object) -> str:
    label = f"{name}: "
    if not label.isascii() or not _NEWLINES.isdisjoint(label):
        label = ""
    if type(name) is str and len(_LABELS) < 1024:  # bounded: names are few in practice
        _LABELS[name] = label
    return label


#: What the core's ``fold_line`` needs to fold a header that fits on its line, kept up to
#: date by :func:`fold_header` (which answers where ``fold_line`` says ``None``).
FOLD_TABLES = (_HEADER_CLASSES, _LABELS, _KIND)


def fold_header(value: object, max_line_length: int | None, linesep: str) -> str | None:
    """The folded ``Name: value`` + linesep that ``value.fold(policy=...)`` returns for a
    policy with this line length and line separator, or ``None`` when the stdlib must do it.

    ``value`` is a header object of ``email.headerregistry`` (a plain string, or a class
    with its own ``fold``, gets ``None``).
    """
    # The common case (a header that fits on its line) in few steps: this runs for every
    # header of every message send_message flattens.
    kind = type(value)
    how = _HEADER_CLASSES.get(kind)
    if how is None:
        key = class_key(kind)
        how = _HEADER_CLASSES.get(key)
        if how is None:
            how = _header_class(kind)
            if len(_HEADER_CLASSES) < 1024:  # bounded: header classes are few in practice
                _HEADER_CLASSES[key] = how
    if how == _STDLIB:
        return None
    tree = getattr(value, "_parse_tree", None)
    if not tree:
        return None  # an empty tree folds to "Name:" with no space: leave it to the stdlib
    name = value._name  # type: ignore[attr-defined]
    label = _LABELS.get(name) if type(name) is str else None
    if label is None:
        label = _label(name)
    maxlen = max_line_length or sys.maxsize
    if not label or len(label) > maxlen:
        return None
    # BaseHeader.fold: Header[HeaderLabel[name, ":"], CFWSList[" "], tree]; the first two
    # fit on the first line (checked above), so the loop starts at the tree, whose
    # children are rendered once (for its text, and for folding them if it does not fit).
    texts: list[str] | None = None
    if how == _VALUE_TEXT:
        text = str.__str__(value)
    elif _kind(tree.__class__) == _LIST:
        texts = render_children(tree, _KIND)
        text = "".join(texts)
    else:
        text = render(tree)
    # Every part's text is part of this one: one look says no part is non-ASCII (RFC 2047
    # encoded words) or holds a line break (which 3.13 encodes too).
    if not text.isascii() or "\n" in text or "\r" in text:
        return None
    token_type = tree.token_type
    special = token_type == "ptext" or token_type == "mime-parameters"
    if not special and len(label) + len(text) <= maxlen:
        return label + text + linesep  # it fits on one line, as it is
    lines = [label]
    if special or texts is None:
        folded = _fold_into([tree], [text], lines, maxlen, 0)
    elif tree.syntactic_break and len(text) < maxlen:
        # On a line of its own: the label's trailing space becomes the fold's.
        return label[:-1] + linesep + " " + text + linesep
    else:
        folded = _fold_into(tree, texts, lines, maxlen, 0 if tree.as_ew_allowed else 1)
    return linesep.join(lines) + linesep if folded else None


_TOKEN_TYPE = operator.attrgetter("token_type")
_TOKEN_LIST_STARTSWITH_FWS = _parser.TokenList.startswith_fws


def _startswith_fws(part: Any) -> bool:
    """``part.startswith_fws()``: a token list asks its first child, down to a terminal."""
    while type(part).startswith_fws is _TOKEN_LIST_STARTSWITH_FWS:
        part = part[0]  # IndexError for an empty list, as the stdlib's
    return bool(part.startswith_fws())


def _fold_into(parts: Any, texts: list[str], lines: list[str], maxlen: int, blocked: int) -> bool:
    """``_refold_parse_tree``'s loop over ``parts`` (with their ``texts``) into ``lines``;
    False where the stdlib would encode a part (RFC 2047) or fold MIME parameters (RFC
    2231). ``blocked`` counts the enclosing token lists whose parts may not become encoded
    words; a token list that does not fit is folded by a recursive call for its children."""
    if len(parts) != len(texts):
        raise ValueError("a part without its text")
    # Every part is reached: one that the stdlib would encode or fold as MIME parameters
    # sends the whole header to the stdlib, whichever it is.
    token_types = set(map(_TOKEN_TYPE, parts))
    if "mime-parameters" in token_types:
        return False
    if "ptext" in token_types:
        for part, text in zip(parts, texts, strict=True):
            if part.token_type == "ptext" and not _PTEXT_ENCODED.isdisjoint(text):
                return False
    last = lines.pop()  # the line being filled
    index, count = 0, len(texts)
    while index < count:
        # The parts that fit on this line as they are, counted in the core: most parts
        # of a long address list do.
        fit = parts_that_fit(texts, index, maxlen - len(last))
        if fit:
            last += texts[index] if fit == 1 else "".join(texts[index : index + fit])
            index += fit
            if index == count:
                break
        part, text = parts[index], texts[index]
        index += 1
        # Too long for this line: a major syntactic break goes on a new line if it fits
        # there (RFC 5322 section 2.2.3 folds at whitespace).
        if part.syntactic_break and len(text) < maxlen:
            if last and last[-1] in _WSP:
                lines.append(last[:-1])
                last = last[-1] + text
                continue
            if _startswith_fws(part):
                lines.append(last)
                last = text
                continue
        if not hasattr(part, "encode"):  # a token list: fold its children
            children = render_children(part, _KIND)
            joined = "".join(children)
            if not joined.isascii() or "\n" in joined or "\r" in joined:
                return False
            lines.append(last)
            if not _fold_into(part, children, lines, maxlen, blocked + (not part.as_ew_allowed)):
                return False
            last = lines.pop()
            continue
        if part.as_ew_allowed and not blocked:
            return False  # the stdlib would encode it in order to wrap it
        if last and last[-1] in _WSP:
            lines.append(last[:-1])
            last = last[-1] + text
        elif _startswith_fws(part):
            lines.append(last)
            last = text
        else:
            last += text  # cannot be folded: the line stays long
    lines.append(last)
    return True
