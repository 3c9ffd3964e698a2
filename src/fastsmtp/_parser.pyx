# cython: language_level=3, embedsignature=True, annotation_typing=False
# cython: boundscheck=False, wraparound=False, cdivision=True
"""The protocol core's byte work, compiled: the twin of ``_parser_py``.

``_parser_py`` is the specification; this module must behave identically (same results,
same exception classes, same messages), only faster. The differential tests in
``tests/core`` hold the two together. Replies are built as ``fastsmtp.response.
SMTPResponse`` and errors are ``fastsmtp.errors`` exceptions: no C look-alike types.

Reply grammar (RFC 5321 section 4.2)::

    Reply-line     = *( Reply-code "-" [ textstring ] CRLF )
                     Reply-code [ SP textstring ] CRLF
    Reply-code     = %x32-35 %x30-39 %x30-39

DATA encoding (RFC 5321 section 4.5.2 and 2.3.8): every CRLF, bare LF and bare CR
becomes CRLF; a line starting with "." gets one more "."; the body ends with CRLF, then
".\\r\\n". See ``_parser_py`` for the reasoning; this file explains only how the C
loops keep to it.
"""

import base64
import binascii
import hmac

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject, Py_TYPE
from cpython.ref cimport Py_DECREF
from cpython.unicode cimport PyUnicode_DecodeUTF8, PyUnicode_GET_LENGTH

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object text)
    const void* PyUnicode_DATA(object text)
from libc.string cimport memchr, memcpy, memset

from .errors import (
    REFUSED_LOCALLY,
    SMTPAuthenticationError,
    SMTPAuthenticationRefusedLocally,
    SMTPResponseException,
)
from .response import SMTPResponse

cdef extern from "Python.h":
    # Raw-pointer forms, so the output buffer can be filled and then shrunk in place.
    PyObject* _bytes_new "PyBytes_FromStringAndSize"(const char* v, Py_ssize_t n) except NULL
    int _PyBytes_Resize(PyObject** string, Py_ssize_t newsize) except -1
    char* _bytes_data "PyBytes_AS_STRING"(PyObject* string)

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

MAX_LINE_LENGTH = 8192
MAX_REPLY_SIZE = 32768
MAX_REPLY_LINES = 1024

cdef str _TOO_LONG = "Response too long"
cdef str _MALFORMED = "Malformed SMTP response line: "

# Immutable (bytes) inputs at least this large are encoded without holding the GIL.
cdef Py_ssize_t _NOGIL_INPUT = 1 << 20
# Immutable inputs at least this large are sized exactly before they are encoded.
cdef Py_ssize_t _BIG_INPUT = 4 << 20

cdef object _b64decode = base64.b64decode
cdef object _b2a_base64 = binascii.b2a_base64
cdef object _binascii_Error = binascii.Error
cdef object _hmac_digest = hmac.digest
cdef object _tuple_new = tuple.__new__

# SMTPResponse is a NamedTuple: building it with tuple.__new__ gives the very same object
# as calling the class, without the generated Python-level __new__. Fall back to the call
# if the type ever stops being a plain two-field tuple.
cdef bint _RESPONSE_IS_TUPLE = (
    isinstance(SMTPResponse, type)
    and issubclass(SMTPResponse, tuple)
    and getattr(SMTPResponse, "_fields", None) == ("code", "message")
)


cdef inline object _response(int code, str message):
    if _RESPONSE_IS_TUPLE:
        return _tuple_new(SMTPResponse, (code, message))
    return SMTPResponse(code, message)


cdef class _NeedData:
    """Type of :data:`NEED_DATA`."""

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by :meth:`ReplyParser.next_reply` while no complete reply is buffered.
NEED_DATA = _NeedData()
cdef object _NEED_DATA = NEED_DATA


cdef object _malformed(const unsigned char* line, Py_ssize_t length):
    return SMTPResponseException(
        -1, _MALFORMED + PyUnicode_DecodeUTF8(<const char*>line, length, "replace")
    )


cdef inline bint _is_strip(unsigned char c) noexcept nogil:
    # The bytes ``bytes.strip(b" \t\r\n")`` removes.
    return c == 32 or c == 9 or c == 13 or c == 10


cdef int _grow(char** buf, Py_ssize_t* cap, Py_ssize_t need) except -1:
    """Make ``*buf`` hold at least ``need`` bytes (amortised doubling)."""
    cdef Py_ssize_t new_cap
    cdef char* new_buf
    if need <= cap[0]:
        return 0
    new_cap = cap[0] * 2 if cap[0] else 256
    if new_cap < need:
        new_cap = need
    new_buf = <char*>PyMem_Realloc(buf[0], <size_t>new_cap)
    if new_buf == NULL:
        raise MemoryError()
    buf[0] = new_buf
    cap[0] = new_cap
    return 0


# Cython's generated pickling would turn the raw C buffers into bytes (and crash on
# NULL); a parser holds connection state, so it is simply not picklable.
@cython.auto_pickle(False)
cdef class ReplyParser:
    """Incremental SMTP reply parser: feed it bytes, take complete replies out.

    ``feed`` consumes every complete line at once, so memory holds at most one partial
    line and the lines of one reply in progress. Complete replies queue up in arrival
    order. The first protocol error is queued behind the replies completed before it;
    from then on the parser is failed: further input is ignored and ``next_reply``
    raises that error again (the reply stream can no longer be trusted).
    """

    # State, C side by side with _parser_py:
    #   _line/_line_len   the partial line (the tail of the stream after the last LF);
    #                     always shorter than max_line_length
    #   _text/_text_len   the texts of the lines of the reply in progress, already joined
    #                     with "\n" (the reference keeps a list and joins at the end)
    #   _nlines           how many lines the reply in progress has (0: none in progress)
    #   _code, _size      its code and its size in bytes, line ends included
    #   _replies[_head:]  complete replies not yet taken (a list used as a FIFO)
    #   _error            the error that failed the parser, or None
    cdef char* _line
    cdef Py_ssize_t _line_len
    cdef Py_ssize_t _line_cap
    cdef char* _text
    cdef Py_ssize_t _text_len
    cdef Py_ssize_t _text_cap
    cdef Py_ssize_t _nlines
    cdef int _code
    cdef Py_ssize_t _size
    cdef Py_ssize_t _max_line
    cdef Py_ssize_t _max_size
    cdef Py_ssize_t _max_lines
    cdef list _replies
    cdef Py_ssize_t _head
    cdef object _error

    def __init__(
        self,
        max_line_length: int = MAX_LINE_LENGTH,
        max_reply_size: int = MAX_REPLY_SIZE,
        max_reply_lines: int = MAX_REPLY_LINES,
    ) -> None:
        self._max_line = max_line_length
        self._max_size = max_reply_size
        self._max_lines = max_reply_lines
        self._line_len = 0
        self._text_len = 0
        self._nlines = 0
        self._code = -1
        self._size = 0
        self._replies = []
        self._head = 0
        self._error = None

    def __dealloc__(self):
        PyMem_Free(self._line)
        PyMem_Free(self._text)

    @property
    def pending(self) -> bool:
        """True while part of a reply (a partial line or unfinished lines) is buffered."""
        return self._line_len > 0 or self._nlines > 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Consume ``data``: any bytes-like chunk of the reply stream."""
        cdef Py_buffer view
        cdef bint ok = True
        if self._error is not None:
            return
        if type(data) is bytes:
            self._feed(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            return
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except Exception:
            ok = False
        if not ok:
            # Raise exactly what the reference's ``bytearray += data`` raises.
            scratch = bytearray()
            scratch += data
            raise TypeError(f"can't concat {type(data).__name__} to bytearray")
        try:
            self._feed(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def next_reply(self) -> SMTPResponse | _NeedData:
        """Return the next complete reply, or :data:`NEED_DATA`; raise a queued error."""
        cdef list replies = self._replies
        cdef Py_ssize_t head = self._head
        cdef object reply
        if head < len(replies):
            reply = replies[head]
            head += 1
            if head == len(replies):
                del replies[:]
                head = 0
            elif head >= 64 and head * 2 >= len(replies):
                del replies[:head]
                head = 0
            else:
                replies[head - 1] = None
            self._head = head
            return reply
        if self._error is not None:
            raise self._error
        return _NEED_DATA

    cdef int _feed(self, const unsigned char* data, Py_ssize_t n) except -1:
        cdef const unsigned char* p = data
        cdef const unsigned char* end = data + n
        cdef const unsigned char* nl
        cdef Py_ssize_t length
        cdef Py_ssize_t max_line = self._max_line

        # First finish the partial line left over from earlier chunks, if any.
        if self._line_len > 0 and p < end:
            nl = <const unsigned char*>memchr(p, 10, <size_t>(end - p))
            if nl == NULL:
                # Still no LF: the same "cannot fit any more" rule as below.
                if self._line_len + (end - p) >= max_line:
                    self._fail(SMTPResponseException(-1, _TOO_LONG))
                    return 0
                _grow(&self._line, &self._line_cap, self._line_len + (end - p))
                memcpy(self._line + self._line_len, p, <size_t>(end - p))
                self._line_len += end - p
                return 0
            length = self._line_len + (nl + 1 - p)
            if length > max_line:
                self._fail(SMTPResponseException(-1, _TOO_LONG))
                return 0
            _grow(&self._line, &self._line_cap, length)
            memcpy(self._line + self._line_len, p, <size_t>(nl + 1 - p))
            self._line_len = 0
            if not self._take_line(<const unsigned char*>self._line, length):
                return 0
            p = nl + 1

        # Then every complete line straight out of the input, without copying it.
        while p < end:
            nl = <const unsigned char*>memchr(p, 10, <size_t>(end - p))
            if nl == NULL:
                # Reject an endless line as soon as it cannot fit, however it is split.
                if end - p >= max_line:
                    self._fail(SMTPResponseException(-1, _TOO_LONG))
                    return 0
                _grow(&self._line, &self._line_cap, end - p)
                memcpy(self._line, p, <size_t>(end - p))
                self._line_len = end - p
                return 0
            if nl + 1 - p > max_line:
                self._fail(SMTPResponseException(-1, _TOO_LONG))
                return 0
            if not self._take_line(p, nl + 1 - p):
                return 0
            p = nl + 1
        return 0

    cdef void _fail(self, object exc):
        self._error = exc
        self._line_len = 0
        self._text_len = 0
        self._nlines = 0

    cdef int _take_line(self, const unsigned char* line, Py_ssize_t length) except -1:
        """Take one complete line (LF included); 0 if it failed the parser."""
        cdef Py_ssize_t n = length - 1  # content length without the LF
        cdef int code
        cdef Py_ssize_t start, stop
        cdef str message
        if n > 0 and line[n - 1] == 13:  # CR before LF
            n -= 1
        if (
            n < 3
            or not 50 <= line[0] <= 53
            or not 48 <= line[1] <= 57
            or not 48 <= line[2] <= 57
            or (n > 3 and line[3] != 32 and line[3] != 45)
        ):
            self._fail(_malformed(line, length))
            return 0
        code = (line[0] - 48) * 100 + (line[1] - 48) * 10 + (line[2] - 48)
        if self._nlines > 0 and code != self._code:
            self._fail(_malformed(line, length))
            return 0
        self._size += length
        if self._size > self._max_size or self._nlines >= self._max_lines:
            self._fail(SMTPResponseException(-1, _TOO_LONG))
            return 0
        self._code = code

        # The text: everything after the fourth byte, stripped of SP, HT, CR and LF.
        start = 4 if length > 4 else length
        stop = length
        while start < stop and _is_strip(line[start]):
            start += 1
        while stop > start and _is_strip(line[stop - 1]):
            stop -= 1

        if n > 3 and line[3] == 45:  # "-": continuation, keep the text for later
            _grow(&self._text, &self._text_cap, self._text_len + (stop - start) + 1)
            if self._nlines > 0:
                self._text[self._text_len] = 10
                self._text_len += 1
            memcpy(self._text + self._text_len, line + start, <size_t>(stop - start))
            self._text_len += stop - start
            self._nlines += 1
            return 1

        if self._nlines == 0:
            # A one-line reply (the common case): decode straight from the input.
            message = PyUnicode_DecodeUTF8(
                <const char*>line + start, stop - start, "surrogateescape"
            )
        else:
            _grow(&self._text, &self._text_cap, self._text_len + (stop - start) + 1)
            self._text[self._text_len] = 10
            self._text_len += 1
            memcpy(self._text + self._text_len, line + start, <size_t>(stop - start))
            self._text_len += stop - start
            message = PyUnicode_DecodeUTF8(self._text, self._text_len, "surrogateescape")
        self._replies.append(_response(code, message))
        self._text_len = 0
        self._nlines = 0
        self._size = 0
        return 1


cdef Py_ssize_t _encode_into(
    const unsigned char* src,
    Py_ssize_t n,
    unsigned char* dst,
    bint* at_line_start,
    Py_ssize_t* dots,
) noexcept nogil:
    """Normalise line ends to CRLF and dot-stuff ``src[:n]`` into ``dst``.

    ``dst`` must hold ``2 * n`` bytes (every input byte yields at most two). Returns the
    number of bytes written; ``at_line_start`` is updated for the next chunk and ``dots``
    counts the stuffed dots. A CR ending ``src`` is written as CRLF: the caller drops an
    LF that starts the next chunk.
    """
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t o = 0
    cdef Py_ssize_t j
    cdef Py_ssize_t next_cr = -1  # position of the next CR at or after i, n if none
    cdef Py_ssize_t next_lf = -1  # likewise for LF
    cdef const void* hit
    cdef bint line_start = at_line_start[0]
    cdef Py_ssize_t stuffed = 0

    while i < n:
        if line_start and src[i] == 46:  # "." at the start of a line: stuff one more
            dst[o] = 46
            o += 1
            stuffed += 1
        # The next line break: the nearer of the next CR and the next LF. Each search
        # result is kept until the scan passes it, so each byte is searched once per kind.
        if next_cr < i:
            hit = memchr(src + i, 13, <size_t>(n - i))
            next_cr = (<const unsigned char*>hit - src) if hit != NULL else n
        if next_lf < i:
            hit = memchr(src + i, 10, <size_t>(n - i))
            next_lf = (<const unsigned char*>hit - src) if hit != NULL else n
        j = next_cr if next_cr < next_lf else next_lf
        memcpy(dst + o, src + i, <size_t>(j - i))
        o += j - i
        if j == n:  # the chunk ends inside a line (j > i here, since i < n)
            line_start = False
            break
        dst[o] = 13
        dst[o + 1] = 10
        o += 2
        if src[j] == 13 and j + 1 < n and src[j + 1] == 10:
            i = j + 2  # CRLF
        else:
            i = j + 1  # bare CR or bare LF
        line_start = True

    at_line_start[0] = line_start
    dots[0] += stuffed
    return o


cdef Py_ssize_t _encoded_size(
    const unsigned char* src, Py_ssize_t n, bint line_start
) noexcept nogil:
    """The number of bytes ``_encode_into`` will write for ``src[:n]`` (same walk, no copy)."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t o = 0
    cdef Py_ssize_t j
    cdef Py_ssize_t next_cr = -1
    cdef Py_ssize_t next_lf = -1
    cdef const void* hit
    while i < n:
        if line_start and src[i] == 46:
            o += 1
        if next_cr < i:
            hit = memchr(src + i, 13, <size_t>(n - i))
            next_cr = (<const unsigned char*>hit - src) if hit != NULL else n
        if next_lf < i:
            hit = memchr(src + i, 10, <size_t>(n - i))
            next_lf = (<const unsigned char*>hit - src) if hit != NULL else n
        j = next_cr if next_cr < next_lf else next_lf
        o += j - i
        if j == n:
            break
        o += 2
        if src[j] == 13 and j + 1 < n and src[j + 1] == 10:
            i = j + 2
        else:
            i = j + 1
        line_start = True
    return o


cdef int _get_input(object chunk, Py_buffer* view) except -1:
    """Fill ``view`` with the bytes the reference's ``bytes(chunk)`` would give.

    Returns 1 if the buffer belongs to a bytes object (immutable), else 0.
    """
    if type(chunk) is bytearray or type(chunk) is memoryview:
        try:
            PyObject_GetBuffer(chunk, view, PyBUF_SIMPLE)
            return 0
        except BufferError:
            pass  # a non-contiguous memoryview: let bytes() lay it out
    PyObject_GetBuffer(bytes(chunk), view, PyBUF_SIMPLE)
    return 1


cdef object _encode_buffer(
    const unsigned char* src,
    Py_ssize_t n,
    bint* at_line_start,
    Py_ssize_t* dots,
    bint close,
    bint immutable,
):
    """Encode ``src[:n]`` into a new bytes object; with ``close`` also end the data.

    ``immutable`` says ``src`` belongs to a bytes object. Only then is the GIL released
    or the output sized exactly by a first pass: a bytearray could change between the
    passes, while the 2n bound holds for any content.
    """
    cdef PyObject* raw
    cdef unsigned char* dst
    cdef Py_ssize_t o
    cdef Py_ssize_t capacity
    cdef object out
    if immutable and n >= _BIG_INPUT:
        # Allocating the 2n worst case and shrinking afterwards makes the allocator hand
        # out fresh pages for huge outputs every time; the page faults cost more than a
        # read-only sizing pass.
        with nogil:
            capacity = _encoded_size(src, n, at_line_start[0]) + 5
        raw = _bytes_new(NULL, capacity)
        dst = <unsigned char*>_bytes_data(raw)
        with nogil:
            o = _encode_into(src, n, dst, at_line_start, dots)
    else:
        raw = _bytes_new(NULL, 2 * n + 5)  # every input byte yields at most two
        dst = <unsigned char*>_bytes_data(raw)
        if immutable and n >= _NOGIL_INPUT:
            with nogil:
                o = _encode_into(src, n, dst, at_line_start, dots)
        else:
            o = _encode_into(src, n, dst, at_line_start, dots)
    if close:
        if n == 0 or not at_line_start[0]:
            dst[o] = 13
            dst[o + 1] = 10
            o += 2
            at_line_start[0] = True
        dst[o] = 46
        dst[o + 1] = 13
        dst[o + 2] = 10
        o += 3
    _PyBytes_Resize(&raw, o)  # shrinks in place; on failure raw is freed and NULL
    out = <object>raw
    Py_DECREF(out)  # drop the reference the raw pointer held; ``out`` keeps its own
    return out


cdef class DataEncoder:
    """Streaming DATA encoder: ``encode`` each chunk, then ``finish`` once.

    For every split of an input, the concatenated output equals ``encode_data(input)``.
    State carried across chunks: whether the last chunk ended in CR (its LF may start the
    next chunk) and whether the output is at the start of a line (a "." there is stuffed).
    """

    cdef bint _pending_cr
    cdef bint _at_line_start
    cdef bint _empty
    cdef Py_ssize_t _size

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
        cdef Py_buffer view
        cdef bint immutable
        if type(chunk) is bytes:
            return self._encode(
                <const unsigned char*>PyBytes_AS_STRING(chunk), PyBytes_GET_SIZE(chunk), True
            )
        immutable = _get_input(chunk, &view)
        try:
            return self._encode(<const unsigned char*>view.buf, view.len, immutable)
        finally:
            PyBuffer_Release(&view)

    cdef object _encode(self, const unsigned char* src, Py_ssize_t n, bint immutable):
        cdef Py_ssize_t dots = 0
        cdef object out
        if self._pending_cr and n > 0:
            # A CR ended the last chunk and was sent as CRLF: an LF here is its partner.
            # (An empty chunk says nothing about it, so the state waits for real bytes.)
            self._pending_cr = False
            if src[0] == 10:
                src += 1
                n -= 1
        if n == 0:
            return b""
        self._empty = False
        self._pending_cr = src[n - 1] == 13
        out = _encode_buffer(src, n, &self._at_line_start, &dots, False, immutable)
        self._size += PyBytes_GET_SIZE(out) - dots
        return out

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
    cdef Py_buffer view
    cdef bint at_line_start = True
    cdef Py_ssize_t dots = 0
    cdef bint immutable
    if type(data) is bytes:
        return _encode_buffer(
            <const unsigned char*>PyBytes_AS_STRING(data),
            PyBytes_GET_SIZE(data),
            &at_line_start,
            &dots,
            True,
            True,
        )
    immutable = _get_input(data, &view)
    try:
        return _encode_buffer(
            <const unsigned char*>view.buf, view.len, &at_line_start, &dots, True, immutable
        )
    finally:
        PyBuffer_Release(&view)


cdef object _to_bytes(object value):
    # aiosmtplib 5.1.3 accepts str (UTF-8 encoded) and bytes only.
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8")


cdef inline object _b64(object data):
    return _b2a_base64(data, newline=False)


cdef bytes _field(object value, bytes separator, str mechanism, str what):
    # _parser_py._field: a SASL field that holds its separator is refused (security.md
    # section 11); the message names the field, never its value.
    cdef bytes data = _to_bytes(value)
    cdef str name
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
        decoded = _b64decode(_to_bytes(challenge), validate=True)
    except _binascii_Error:
        raise SMTPAuthenticationError(
            334, f"Invalid CRAM-MD5 challenge from server: {challenge!r}"
        ) from None
    digest = _hmac_digest(_to_bytes(password), decoded, "md5").hex()
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


# --- header parse trees (_parser_py.render_tokens) ----------------------------------------

TERMINAL = 0
TOKEN_LIST = 1


# The kinds table, as an open-addressing hash table on the class pointer for the length of
# one call: a dict lookup per node costs more than the rest of the walk.
cdef enum:
    _SLOTS = 256  # at most half full; classes beyond that are asked for str()


cdef struct _KindSlot:
    PyObject* cls
    int kind


cdef inline size_t _slot_of(PyObject* cls) noexcept:
    return (<size_t>cls >> 4) & (_SLOTS - 1)


cdef int _fill_table(dict kinds, _KindSlot* table) except -1:
    cdef size_t slot
    cdef int used = 0
    cdef int kind
    memset(table, 0, sizeof(_KindSlot) * _SLOTS)
    for cls, value in kinds.items():
        if value == TERMINAL:
            kind = 0
        elif value == TOKEN_LIST:
            kind = 1
        else:
            continue  # absent means "ask str()" too
        if used >= _SLOTS // 2:
            break
        slot = _slot_of(<PyObject*>cls)
        while table[slot].cls != NULL and table[slot].cls != <PyObject*>cls:
            slot = (slot + 1) & (_SLOTS - 1)
        if table[slot].cls == NULL:
            used += 1
        table[slot].cls = <PyObject*>cls
        table[slot].kind = kind
    return 0


cdef inline int _node_kind(const _KindSlot* table, object child) noexcept:
    # 0: a terminal (a str), 1: a token list (a list), 2: ask str().
    cdef PyObject* cls = <PyObject*>Py_TYPE(child)
    cdef size_t slot = _slot_of(cls)
    while table[slot].cls != NULL:
        if table[slot].cls == cls:
            if table[slot].kind == 0:
                return 0 if isinstance(child, str) else 2
            return 1 if isinstance(child, list) else 2
        slot = (slot + 1) & (_SLOTS - 1)
    return 2


# The table of the last kinds dict seen (held, so its identity stays meaningful), rebuilt
# when another dict comes or this one has grown.
cdef _KindSlot _table[_SLOTS]
cdef object _table_kinds = None
cdef Py_ssize_t _table_size = -1


cdef const _KindSlot* _kind_table(dict kinds) except NULL:
    global _table_kinds, _table_size
    if kinds is not _table_kinds or len(kinds) != _table_size:
        _table_kinds = None
        _fill_table(kinds, _table)
        _table_kinds = kinds
        _table_size = len(kinds)
    return _table


def render_tokens(object node, dict kinds, /):
    """``str(node)`` for a token list of a header parse tree, each node visited once.

    ``kinds`` classifies node classes: ``TERMINAL`` (0) for a ``str`` subclass whose
    ``str()`` is its own text, ``TOKEN_LIST`` (1) for a ``list`` subclass whose ``str()``
    is its children's texts joined; any other class (or value) is asked for ``str()``.
    Classes may be added to ``kinds`` between calls, never given another kind.
    """
    cdef list out = []
    if not isinstance(node, list):  # a list subclass, as TokenList is
        raise TypeError(f"render_tokens() needs a token list, not {type(node).__name__}")
    _collect_tokens(<list>node, _kind_table(kinds), out)
    return "".join(out)


def render_children(object node, dict kinds, /):
    """``[str(child) for child in node]`` for a token list, each node visited once (the
    ``kinds`` of :func:`render_tokens`)."""
    cdef list texts = []
    cdef list out
    cdef Py_ssize_t i = 0
    cdef object child
    cdef int kind
    cdef const _KindSlot* table
    if not isinstance(node, list):
        raise TypeError(f"render_children() needs a token list, not {type(node).__name__}")
    table = _kind_table(kinds)
    while i < PyList_GET_SIZE(<list>node):
        child = <object>PyList_GET_ITEM(<list>node, i)
        i += 1
        kind = _node_kind(table, child)
        if kind == 0:
            texts.append(str.__str__(child))
        elif kind == 1:
            out = []
            _collect_tokens(<list>child, table, out)
            texts.append("".join(out))
        else:
            texts.append(str(child))
    return texts


cdef int _collect_tokens(list node, const _KindSlot* table, list out) except -1:
    # The size is read again each time round: str() of an odd node runs Python code.
    cdef Py_ssize_t i = 0
    cdef object child
    cdef int kind
    while i < PyList_GET_SIZE(node):
        child = <object>PyList_GET_ITEM(node, i)
        i += 1
        kind = _node_kind(table, child)
        if kind == 0:
            out.append(child)
        elif kind == 1:
            _collect_tokens(<list>child, table, out)
        else:
            out.append(str(child))
    return 0


def parts_that_fit(object texts, Py_ssize_t start, Py_ssize_t room, /):
    """How many of ``texts``, from index ``start`` on, fit one after the other in ``room``
    characters (header folding, RFC 5322 section 2.2.3: the parts that join the line
    being filled before a fold must be considered)."""
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t index = start
    cdef object text
    if not isinstance(texts, list):
        raise TypeError(f"parts_that_fit() needs a list, not {type(texts).__name__}")
    if start < 0:
        raise ValueError("parts_that_fit() start must not be negative")
    while index < PyList_GET_SIZE(<list>texts):
        text = <object>PyList_GET_ITEM(<list>texts, index)
        if not isinstance(text, str):
            raise TypeError(f"parts_that_fit() needs str parts, not {type(text).__name__}")
        room -= PyUnicode_GET_LENGTH(text)
        if room < 0:
            break
        count += 1
        index += 1
    return count



# --- the header block of a flattened message (_parser_py.header_block_well_formed) -------
#
# The same grammar as _parser_py's regular expression, one line at a time: each line is a
# field (a name of bytes 33-57/59-126, then ":"), a continuation (space or tab; only after
# a field, and it must end with a line end), or the empty line that ends the block.

cdef inline bint _is_name_byte(unsigned char c) noexcept nogil:
    return 33 <= c <= 126 and c != 58


cdef Py_ssize_t _line_end(const unsigned char* p, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    while pos < n and p[pos] != 13 and p[pos] != 10:
        pos += 1
    return pos


def header_block_well_formed(object data, /):
    """True if the header block of ``data`` (up to the first empty line, or all of it) is
    header fields (``Name: value``) and their folded continuations, each line ended by
    CRLF, CR or LF (the last field may end the data); False for anything else, including
    data that ends inside a continuation line (the caller then looks line by line)."""
    cdef const unsigned char* p
    cdef Py_ssize_t n, pos = 0, start
    cdef bint in_field = False
    cdef unsigned char c
    if not isinstance(data, bytes):
        raise TypeError(f"header_block_well_formed() needs bytes, not {type(data).__name__}")
    p = <const unsigned char*>PyBytes_AS_STRING(data)
    n = PyBytes_GET_SIZE(data)
    while True:
        if pos == n:
            return True  # the end of the data
        c = p[pos]
        if c == 13 or c == 10:
            return True  # the empty line
        if c == 32 or c == 9:
            if not in_field:
                return False  # a continuation with no field to continue
            pos = _line_end(p, pos, n)
            if pos == n:
                return False  # the data ends inside a continuation line
        else:
            start = pos
            while pos < n and _is_name_byte(p[pos]):
                pos += 1
            if pos == start or pos == n or p[pos] != 58:
                return False  # not "name:"
            pos = _line_end(p, pos, n)
            if pos == n:
                return True  # the last field ends the data
            in_field = True
        # One line end: CRLF, or a bare CR or LF.
        if p[pos] == 13 and pos + 1 < n and p[pos + 1] == 10:
            pos += 2
        else:
            pos += 1



# --- a header that fits on its line (_parser_py.fold_line) -------------------------------

HEADER_VALUE_TEXT = 1
HEADER_TREE_TEXT = 2


def class_key(type cls, /):
    """What a table of header classes is keyed by: ``cls.__bases__`` for a class whose
    own namespace holds nothing but ``__module__`` and ``__doc__`` (it behaves exactly as
    its bases; email.headerregistry makes one for every header object), else ``cls``."""
    namespace = cls.__dict__
    if len(namespace) == 2 and "__module__" in namespace and "__doc__" in namespace:
        return cls.__bases__
    return cls


def fold_line(
    object value,
    dict classes,
    dict labels,
    Py_ssize_t maxlen,
    str linesep,
    dict kinds,
    /,
):
    """``"Name: text" + linesep`` for a header object that fits on one line of ``maxlen``
    characters as it is (RFC 5322 section 2.2.3: no fold needed), or ``None`` when that
    is not certain here (fastsmtp._folding then decides).

    ``classes`` says how a header class is folded (``HEADER_VALUE_TEXT``: its value is its
    text; ``HEADER_TREE_TEXT``: its parse tree's is), by the class or by
    :func:`class_key`, ``labels`` holds ``"Name: "`` by
    name, ``kinds`` classifies parse-tree nodes as for :func:`render_tokens`. The text must
    be ASCII without line breaks, and the tree not ``ptext`` or MIME parameters.
    """
    cdef object how, tree, name, label, text, token_type
    cdef list out
    cdef Py_ssize_t room
    cdef const _KindSlot* table
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
    if type(label) is not str or PyUnicode_GET_LENGTH(label) == 0:
        return None
    if PyUnicode_GET_LENGTH(label) > maxlen:
        return None
    room = maxlen - PyUnicode_GET_LENGTH(label)
    if how == HEADER_VALUE_TEXT:
        if not isinstance(value, str) or PyUnicode_GET_LENGTH(value) > room:
            return None
        text = str.__str__(value)
    else:
        table = _kind_table(kinds)
        if _node_kind(table, tree) != 1:
            return None
        out = []
        if _collect_within(<list>tree, table, out, room) < 0:
            return None  # longer than the line: rendered no further
        text = "".join(out)
    if not PyUnicode_IS_ASCII(text):
        return None
    if (
        memchr(PyUnicode_DATA(text), 10, PyUnicode_GET_LENGTH(text)) != NULL
        or memchr(PyUnicode_DATA(text), 13, PyUnicode_GET_LENGTH(text)) != NULL
    ):
        return None
    token_type = getattr(tree, "token_type", None)
    if type(token_type) is not str or token_type in ("ptext", "mime-parameters"):
        return None
    return label + text + linesep


cdef Py_ssize_t _collect_within(
    list node, const _KindSlot* table, list out, Py_ssize_t room
) except -2:
    # _collect_tokens while the texts fit in room: the room left, or -1.
    cdef Py_ssize_t i = 0
    cdef object child, text
    cdef int kind
    while i < PyList_GET_SIZE(node):
        child = <object>PyList_GET_ITEM(node, i)
        i += 1
        kind = _node_kind(table, child)
        if kind == 1:
            room = _collect_within(<list>child, table, out, room)
            if room < 0:
                return -1
            continue
        text = child if kind == 0 else str(child)
        room -= PyUnicode_GET_LENGTH(text)
        if room < 0:
            return -1
        out.append(text)
    return room
