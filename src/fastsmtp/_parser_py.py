"""The protocol core's byte work, in pure Python: the reference implementation.

``_parser.pyx`` is the compiled twin of this module and must behave identically: same
results, same exception classes, same messages (the differential tests in ``tests/core``
hold the two together). This file is the specification; the ``.pyx`` follows it.

Reply grammar (RFC 5321 section 4.2)::

    Reply-line     = *( Reply-code "-" [ textstring ] CRLF )
                     Reply-code [ SP textstring ] CRLF
    Reply-code     = %x32-35 %x30-39 %x30-39

Deliberately strict where servers are hostile: exactly three digits starting 2-5, then
SP, "-" or the end of the line; the same code on every line of a reply. Lenient where
real servers are sloppy: a line may end in LF alone, and text is decoded as UTF-8 with
``surrogateescape`` so no byte sequence fails to decode. Bounded: a line longer than
``max_line_length`` bytes (line end included), a reply larger than ``max_reply_size``
bytes or with more than ``max_reply_lines`` lines is an error, and the parser never holds
more than one partial line plus the lines of one reply in progress.

DATA encoding (RFC 5321 section 4.5.2 and 2.3.8): every CRLF, bare LF and bare CR
becomes CRLF; a line starting with "." gets one more "."; the body ends with CRLF, then
".\\r\\n". Normalising every bare CR and LF is what makes SMTP smuggling impossible: the
output contains no line ending other than CRLF, so the only end-of-data sequence in it
is the one we add.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import operator
import re
from collections import deque
from typing import Final

from .errors import (
    REFUSED_LOCALLY,
    SMTPAuthenticationError,
    SMTPAuthenticationRefusedLocally,
    SMTPResponseException,
)
from .response import SMTPResponse

__all__ = (
    "MAX_LINE_LENGTH",
    "MAX_REPLY_LINES",
    "MAX_REPLY_SIZE",
    "NEED_DATA",
    "HEADER_TREE_TEXT",
    "HEADER_VALUE_TEXT",
    "DataEncoder",
    "ReplyParser",
    "TERMINAL",
    "TOKEN_LIST",
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

MAX_LINE_LENGTH: Final = 8192
MAX_REPLY_SIZE: Final = 32768
MAX_REPLY_LINES: Final = 1024

_TOO_LONG: Final = "Response too long"
_MALFORMED: Final = "Malformed SMTP response line: "
_STRIP: Final = b" \t\r\n"


class _NeedData:
    """Type of :data:`NEED_DATA`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by :meth:`ReplyParser.next_reply` while no complete reply is buffered.
NEED_DATA: Final = _NeedData()


def _malformed(line: bytes) -> SMTPResponseException:
    return SMTPResponseException(-1, _MALFORMED + line.decode("utf-8", "replace"))


class ReplyParser:
    """Incremental SMTP reply parser: feed it bytes, take complete replies out.

    ``feed`` consumes every complete line at once, so memory holds at most one partial
    line and the lines of one reply in progress. Complete replies queue up in arrival
    order. The first protocol error is queued behind the replies completed before it;
    from then on the parser is failed: further input is ignored and ``next_reply``
    raises that error again (the reply stream can no longer be trusted).
    """

    __slots__ = (
        "_buf",
        "_code",
        "_error",
        "_max_line",
        "_max_lines",
        "_max_size",
        "_replies",
        "_size",
        "_texts",
    )

    def __init__(
        self,
        max_line_length: int = MAX_LINE_LENGTH,
        max_reply_size: int = MAX_REPLY_SIZE,
        max_reply_lines: int = MAX_REPLY_LINES,
    ) -> None:
        self._max_line = max_line_length
        self._max_size = max_reply_size
        self._max_lines = max_reply_lines
        self._buf = bytearray()
        self._texts: list[bytes] = []
        self._code = -1
        self._size = 0
        self._replies: deque[SMTPResponse] = deque()
        self._error: SMTPResponseException | None = None

    @property
    def pending(self) -> bool:
        """True while part of a reply (a partial line or unfinished lines) is buffered."""
        return bool(self._buf) or bool(self._texts)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Consume ``data``: any bytes-like chunk of the reply stream."""
        if self._error is not None:
            return
        buf = self._buf
        buf += data
        start = 0
        end = len(buf)
        while start < end:
            nl = buf.find(b"\n", start)
            if nl < 0:
                # Reject an endless line as soon as it cannot fit, however it is split.
                if end - start >= self._max_line:
                    self._fail(SMTPResponseException(-1, _TOO_LONG))
                    return
                break
            if nl + 1 - start > self._max_line:
                self._fail(SMTPResponseException(-1, _TOO_LONG))
                return
            if not self._line(bytes(buf[start : nl + 1])):
                return
            start = nl + 1
        del buf[:start]

    def next_reply(self) -> SMTPResponse | _NeedData:
        """Return the next complete reply, or :data:`NEED_DATA`; raise a queued error."""
        if self._replies:
            return self._replies.popleft()
        if self._error is not None:
            raise self._error
        return NEED_DATA

    def _fail(self, exc: SMTPResponseException) -> None:
        self._error = exc
        self._buf.clear()
        self._texts.clear()

    def _line(self, line: bytes) -> bool:
        """Take one complete line (LF included); False if it failed the parser."""
        n = len(line) - 1  # content length without the LF
        if n > 0 and line[n - 1] == 13:  # CR before LF
            n -= 1
        if (
            n < 3
            or not 50 <= line[0] <= 53
            or not 48 <= line[1] <= 57
            or not 48 <= line[2] <= 57
            or (n > 3 and line[3] != 32 and line[3] != 45)
        ):
            self._fail(_malformed(line))
            return False
        code = (line[0] - 48) * 100 + (line[1] - 48) * 10 + (line[2] - 48)
        if self._texts and code != self._code:
            self._fail(_malformed(line))
            return False
        self._size += len(line)
        if self._size > self._max_size or len(self._texts) >= self._max_lines:
            self._fail(SMTPResponseException(-1, _TOO_LONG))
            return False
        self._code = code
        self._texts.append(line[4:].strip(_STRIP))
        if n > 3 and line[3] == 45:  # "-": continuation
            return True
        message = b"\n".join(self._texts).decode("utf-8", "surrogateescape")
        self._replies.append(SMTPResponse(code, message))
        self._texts = []
        self._size = 0
        return True


class DataEncoder:
    """Streaming DATA encoder: ``encode`` each chunk, then ``finish`` once.

    For every split of an input, the concatenated output equals ``encode_data(input)``.
    State carried across chunks: whether the last chunk ended in CR (its LF may start the
    next chunk) and whether the output is at the start of a line (a "." there is stuffed).
    """

    __slots__ = ("_at_line_start", "_empty", "_pending_cr", "_size")

    def __init__(self) -> None:
        self._pending_cr = False
        self._at_line_start = True
        self._empty = True
        self._size = 0

    @property
    def size(self) -> int:
        """Octets of normalised message emitted so far (CRLF line ends, no dot-stuffing)."""
        return self._size

    def encode(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Encode the next chunk of the message; returns the bytes to send."""
        data = bytes(chunk)
        if self._pending_cr and data:
            # A CR ended the last chunk and was sent as CRLF: an LF here is its partner.
            # (An empty chunk says nothing about it, so the state waits for real bytes.)
            self._pending_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if not data:
            return b""
        self._empty = False
        self._pending_cr = data[-1] == 13
        text = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._size += len(text) + text.count(b"\n")
        stuffed = text.replace(b"\n.", b"\n..")
        if self._at_line_start and text[0] == 46:
            stuffed = b"." + stuffed
        self._at_line_start = text[-1] == 10
        return stuffed.replace(b"\n", b"\r\n")

    def finish(self) -> bytes:
        """Close the message: the final CRLF if missing, then the end-of-data line."""
        if self._empty or not self._at_line_start:
            self._empty = False
            self._at_line_start = True
            self._size += 2
            return b"\r\n.\r\n"
        return b".\r\n"


def encode_data(data: bytes | bytearray | memoryview) -> bytes:
    """Encode a whole DATA payload in one pass: CRLF line ends, dot-stuffing, "." line."""
    encoder = DataEncoder()
    return encoder.encode(data) + encoder.finish()


def _to_bytes(value: str | bytes) -> bytes:
    # aiosmtplib 5.1.3 accepts str (UTF-8 encoded) and bytes only.
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8")


def _b64(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False)


def _field(value: str | bytes, separator: bytes, mechanism: str, what: str) -> bytes:
    """One SASL field as bytes; refused when it holds the mechanism's field separator.

    security.md section 11: the separator would end the field early and start another
    (a fourth PLAIN field, a second XOAUTH2 ``auth=``). The message names the field,
    never its value (a secret).
    """
    data = _to_bytes(value)
    if separator in data:
        name = "NUL" if separator == b"\0" else "^A (0x01)"
        raise SMTPAuthenticationRefusedLocally(
            501,
            f"5.5.4 The {what} for AUTH {mechanism} contains {name}, which separates "
            f"its fields {REFUSED_LOCALLY}",
        )
    return data


def auth_plain_encode(username: str | bytes, password: str | bytes, /) -> bytes:
    """AUTH PLAIN initial response (RFC 4616): base64 of NUL username NUL password.

    RFC 4616 section 2: no field may contain NUL; such a username or password raises
    ``SMTPAuthenticationRefusedLocally`` (an ``SMTPAuthenticationError`` and ``ValueError``).
    """
    return _b64(
        b"\0"
        + _field(username, b"\0", "PLAIN", "username")
        + b"\0"
        + _field(password, b"\0", "PLAIN", "password")
    )


def auth_login_encode(username: str | bytes, password: str | bytes, /) -> tuple[bytes, bytes]:
    """AUTH LOGIN responses: the base64 username and the base64 password."""
    return _b64(_to_bytes(username)), _b64(_to_bytes(password))


def auth_crammd5_verify(
    username: str | bytes, password: str | bytes, challenge: str | bytes, /
) -> bytes:
    """CRAM-MD5 response (RFC 2195): base64 of username, SP, hex HMAC-MD5 of the challenge."""
    try:
        decoded = base64.b64decode(_to_bytes(challenge), validate=True)
    except binascii.Error:
        raise SMTPAuthenticationError(
            334, f"Invalid CRAM-MD5 challenge from server: {challenge!r}"
        ) from None
    digest = hmac.new(_to_bytes(password), decoded, hashlib.md5).hexdigest()
    return _b64(_to_bytes(username) + b" " + digest.encode("ascii"))


def auth_xoauth2_encode(username: str | bytes, access_token: str | bytes, /) -> bytes:
    """XOAUTH2 initial response: base64 of "user=" u ^A "auth=Bearer " token ^A ^A.

    ^A separates the fields: a username or token holding one raises
    ``SMTPAuthenticationRefusedLocally`` (an ``SMTPAuthenticationError`` and ``ValueError``).
    """
    return _b64(
        b"user="
        + _field(username, b"\x01", "XOAUTH2", "username")
        + b"\x01auth=Bearer "
        + _field(access_token, b"\x01", "XOAUTH2", "access token")
        + b"\x01\x01"
    )


# --- header parse trees (fastsmtp._folding) ---------------------------------------------
#
# email._header_value_parser keeps a header as a tree of TokenList (list) and Terminal
# (str) nodes whose text is str(node); TokenList.__str__ builds it with a recursive
# generator join, again for every node the folding looks at.

TERMINAL: Final = 0
TOKEN_LIST: Final = 1


def render_tokens(node: list[object], kinds: dict[type, int], /) -> str:
    """``str(node)`` for a token list of a header parse tree, each node visited once.

    ``kinds`` classifies node classes: ``TERMINAL`` (0) for a ``str`` subclass whose
    ``str()`` is its own text, ``TOKEN_LIST`` (1) for a ``list`` subclass whose ``str()``
    is its children's texts joined; any other class (or value) is asked for ``str()``.
    Classes may be added to ``kinds`` between calls, never given another kind.
    """
    out: list[str] = []
    if not isinstance(node, list):  # a list subclass, as TokenList is
        raise TypeError(f"render_tokens() needs a token list, not {type(node).__name__}")
    _collect_tokens(node, kinds, out)
    return "".join(out)


def render_children(node: list[object], kinds: dict[type, int], /) -> list[str]:
    """``[str(child) for child in node]`` for a token list, each node visited once (the
    ``kinds`` of :func:`render_tokens`)."""
    if not isinstance(node, list):
        raise TypeError(f"render_children() needs a token list, not {type(node).__name__}")
    texts: list[str] = []
    for child in node:
        kind = kinds.get(type(child))
        if kind == TERMINAL and isinstance(child, str):
            texts.append(str.__str__(child))
        elif kind == TOKEN_LIST and isinstance(child, list):
            out: list[str] = []
            _collect_tokens(child, kinds, out)
            texts.append("".join(out))
        else:
            texts.append(str(child))
    return texts


def _collect_tokens(node: list[object], kinds: dict[type, int], out: list[str]) -> None:
    for child in node:
        kind = kinds.get(type(child))
        if kind == TERMINAL and isinstance(child, str):
            out.append(child)
        elif kind == TOKEN_LIST and isinstance(child, list):
            _collect_tokens(child, kinds, out)
        else:
            out.append(str(child))


def parts_that_fit(texts: list[str], start: int, room: int, /) -> int:
    """How many of ``texts``, from index ``start`` on, fit one after the other in ``room``
    characters (header folding, RFC 5322 section 2.2.3: the parts that join the line
    being filled before a fold must be considered)."""
    if not isinstance(texts, list):
        raise TypeError(f"parts_that_fit() needs a list, not {type(texts).__name__}")
    start, room = operator.index(start), operator.index(room)  # as the compiled core's
    if start < 0:
        raise ValueError("parts_that_fit() start must not be negative")
    count = 0
    index = start
    while index < len(texts):
        text = texts[index]
        if not isinstance(text, str):
            raise TypeError(f"parts_that_fit() needs str parts, not {type(text).__name__}")
        room -= str.__len__(text)
        if room < 0:
            break
        count += 1
        index += 1
    return count


# --- the header block of a flattened message (fastsmtp.email.check_header_block) --------
#
# RFC 5322 section 2.2: a header field is a name of printable ASCII other than ":" (33-57,
# 59-126), a colon and a body; a folded field continues on lines starting with space or
# tab. The DATA encoder turns bare CR and bare LF into CRLF, so all three are line ends.

_EOL = rb"(?:\r\n|\r(?!\n)|\n)"  # one line end, never split between CR and LF
_FIELD = rb"[!-9;-~]+:[^\r\n]*"
# A well-formed header block in one match: fields with their continuations, then the empty
# line or the end of the data.
_WELL_FORMED = re.compile(
    rb"(?:"
    + _FIELD
    + _EOL
    + rb"(?:[ \t][^\r\n]*"
    + _EOL
    + rb")*)*(?:"
    + _EOL
    + rb"|"
    + _FIELD
    + rb"\Z|\Z)"
)


def header_block_well_formed(data: bytes, /) -> bool:
    """True if the header block of ``data`` (up to the first empty line, or all of it) is
    header fields (``Name: value``) and their folded continuations, each line ended by
    CRLF, CR or LF (the last field may end the data); False for anything else, including
    data that ends inside a continuation line (the caller then looks line by line)."""
    if not isinstance(data, bytes):
        raise TypeError(f"header_block_well_formed() needs bytes, not {type(data).__name__}")
    return _WELL_FORMED.match(data) is not None


# --- a header that fits on its line (fastsmtp._folding) ----------------------------------
#
# How fastsmtp._folding folds a header class: from its value's text, or from its parse
# tree's (any other value in its table: not here).
HEADER_VALUE_TEXT: Final = 1
HEADER_TREE_TEXT: Final = 2


def class_key(cls: type, /) -> object:
    """What a table of header classes is keyed by: ``cls.__bases__`` for a class whose
    own namespace holds nothing but ``__module__`` and ``__doc__`` (it behaves exactly as
    its bases; email.headerregistry makes one for every header object), else ``cls``."""
    if not isinstance(cls, type):
        raise TypeError(
            f"Argument 'cls' has incorrect type (expected type, got {type(cls).__name__})"
        )
    namespace = cls.__dict__
    if len(namespace) == 2 and "__module__" in namespace and "__doc__" in namespace:
        return cls.__bases__
    return cls


def fold_line(
    value: object,
    classes: dict[object, int],
    labels: dict[str, str],
    maxlen: int,
    linesep: str,
    kinds: dict[type, int],
    /,
) -> str | None:
    """``"Name: text" + linesep`` for a header object that fits on one line of ``maxlen``
    characters as it is (RFC 5322 section 2.2.3: no fold needed), or ``None`` when that
    is not certain here (fastsmtp._folding then decides).

    ``classes`` says how a header class is folded (``HEADER_VALUE_TEXT``: its value is its
    text; ``HEADER_TREE_TEXT``: its parse tree's is), by the class or by
    :func:`class_key`, ``labels`` holds ``"Name: "`` by
    name, ``kinds`` classifies parse-tree nodes as for :func:`render_tokens`. The text must
    be ASCII without line breaks, and the tree not ``ptext`` or MIME parameters.
    """
    maxlen = operator.index(maxlen)
    how = classes.get(type(value))
    if how is None:
        how = classes.get(class_key(type(value)))
    if how != HEADER_VALUE_TEXT and how != HEADER_TREE_TEXT:
        return None
    tree = getattr(value, "_parse_tree", None)
    if not tree:
        return None
    name = getattr(value, "_name", None)
    if type(name) is not str:
        return None
    label = labels.get(name)
    if type(label) is not str or not label or len(label) > maxlen:
        return None
    room = maxlen - len(label)
    if how == HEADER_VALUE_TEXT:
        if not isinstance(value, str) or str.__len__(value) > room:  # (no subclass's len)
            return None
        text = str.__str__(value)
    else:
        if kinds.get(type(tree)) != TOKEN_LIST or not isinstance(tree, list):
            return None
        out: list[str] = []
        if _collect_within(tree, kinds, out, room) < 0:
            return None  # longer than the line: rendered no further
        text = "".join(out)
    if not text.isascii() or "\n" in text or "\r" in text:
        return None
    token_type = getattr(tree, "token_type", None)
    if type(token_type) is not str or token_type in ("ptext", "mime-parameters"):
        return None
    return label + text + linesep


def _collect_within(node: list[object], kinds: dict[type, int], out: list[str], room: int) -> int:
    """``_collect_tokens`` while the texts fit in ``room``: the room left, or -1."""
    for child in node:
        kind = kinds.get(type(child))
        if kind == TERMINAL and isinstance(child, str):
            text = child
        elif kind == TOKEN_LIST and isinstance(child, list):
            room = _collect_within(child, kinds, out, room)
            if room < 0:
                return -1
            continue
        else:
            text = str(child)
        room -= str.__len__(text)
        if room < 0:
            return -1
        out.append(text)
    return room
