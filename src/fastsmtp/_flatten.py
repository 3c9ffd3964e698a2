"""Flattening a message for DATA: the bytes ``email.generator.BytesGenerator`` writes, faster.

``send_message`` hands the server what ``BytesGenerator(policy=...).flatten(message)``
writes (RFC 5322 section 2: header fields, an empty line, the body; RFC 2046 section
5.1.1 for multipart bodies). The stdlib gets there through a generator object per MIME
part, a buffer per part, a policy clone per part and one ``write`` per body line: a 10 MiB
text body is walked line by line in Python. :func:`flatten_fast` writes the same bytes for
the shapes people send (text and HTML, ``multipart/*`` trees, base64 attachments, boundaries
given or not) with one string operation per body, and returns ``None`` for anything it does
not recognise (``message/*`` parts, ``multipart/signed``, undecodable bytes that must be
re-encoded for 7-bit, unknown message or policy classes); the caller then uses the stdlib.

What it shares with the stdlib it takes from the stdlib, so that it follows each Python
version: header lines come from the installed ``BytesGenerator._write_headers`` (with the
policy's ``fold_binary``), content types from ``Message.get_content_type``, boundaries from
``get_boundary``/``_make_boundary``/``set_boundary``. tests/core/test_flatten_messages.py
compares the two byte for byte with hypothesis.
"""

from __future__ import annotations

import email.generator
import email.message
import email.mime.application
import email.mime.audio
import email.mime.base
import email.mime.image
import email.mime.multipart
import email.mime.nonmultipart
import email.mime.text
import email.policy
import io
import re
import sys
from typing import Any

from ._folding import FOLD_TABLES
from ._speedups import fold_line

__all__ = ("flatten_fast",)

_Generator: Any = email.generator.BytesGenerator
# The message classes whose flattening is the generic one (none defines _write_headers,
# get_payload or the header accessors differently from Message/EmailMessage).
_MESSAGE_CLASSES = frozenset(
    (
        email.message.Message,
        email.message.MIMEPart,
        email.message.EmailMessage,
        email.mime.base.MIMEBase,
        email.mime.nonmultipart.MIMENonMultipart,
        email.mime.multipart.MIMEMultipart,
        email.mime.text.MIMEText,
        email.mime.application.MIMEApplication,
        email.mime.image.MIMEImage,
        email.mime.audio.MIMEAudio,
    )
)
_HANDLE_TEXT = _Generator._handle_text
_HANDLE_MULTIPART = _Generator._handle_multipart
# The generator's patterns: any line end, and "From " at the start of a line (mangled to
# ">From " when the policy says so, for mbox readers).
_LINE_END = re.compile(r"\r\n|\r|\n")
_FROM_LINE = re.compile(r"^From ", re.MULTILINE)


# Never mutated: a mutant (or mutmut's trampoline) would not be the generator's code, so the
# header path below would be off for the whole mutation run (tools/mutation).
def _write_headers(self: Any, msg: Any) -> None:  # pragma: no mutate block
    # This is almost the same as the string version, except for handling
    # strings with 8bit bytes.
    for h, v in msg.raw_items():
        self._fp.write(self.policy.fold_binary(h, v))
    # A blank line always separates headers from body
    self.write(self._NL)


def _same_code(one: Any, other: Any) -> bool:
    a, b = getattr(one, "__code__", None), getattr(other, "__code__", None)
    return (
        a is not None
        and b is not None
        and (a.co_code, a.co_names, a.co_consts) == (b.co_code, b.co_names, b.co_consts)
    )


# BytesGenerator._write_headers of Python 3.10-3.13 (above, compiled by this interpreter):
# when the installed one is that code, its loop is done here without the generator's
# buffer; a release that changes it (say, to check the folded lines) is called instead.
_PLAIN_HEADER_WRITER = _same_code(_Generator._write_headers, _write_headers)


def _handler(content_type: str) -> Any:
    """The generator's handler for ``content_type`` (looked up as Generator._dispatch
    does), remembered for the next message of that type."""
    main, sub = content_type.split("/")
    handler = getattr(_Generator, "_handle_" + f"{main}_{sub}".replace("-", "_"), None)
    if handler is None:
        handler = getattr(_Generator, "_handle_" + main.replace("-", "_"), None)
        if handler is None:
            handler = _Generator._writeBody
    if len(_HANDLERS) < 256:  # bounded: content types are few in practice
        _HANDLERS[content_type] = handler
    return handler


#: Generator._dispatch's answer by content type (the generator class is fixed at import).
_HANDLERS: dict[str, Any] = {}


class _Unsupported(Exception):
    """A shape the fast path does not write: the stdlib's generator does."""


def flatten_fast(message: email.message.Message, policy: Any) -> bytes | None:
    """``BytesGenerator(out, policy=policy).flatten(message)``'s bytes, or ``None`` when
    ``message`` (or a part of it) is outside the shapes this writes."""
    if type(message) not in _MESSAGE_CLASSES or not isinstance(
        policy, (email.policy.EmailPolicy, email.policy.Compat32)
    ):
        return None
    try:
        return _Writer(policy).flatten(message)
    except Exception:  # _Unsupported, or what the stdlib raises: it raises it again
        return None


class _Writer:
    """One flattening: the policy's settings and a generator for the header lines."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.linesep: str = policy.linesep
        self.nl = self.linesep.encode("ascii")  # UnicodeEncodeError: the stdlib's
        self.mangle_from: bool = policy.mangle_from_
        self.seven_bit = policy.cte_type == "7bit"
        self.generator: Any = None  # made when the header block needs it
        # A policy whose fold_binary is fastsmtp's (email._OneLineFoldPolicy) names the
        # text folder it tries first.
        self.fold_text: Any = getattr(type(policy), "fastsmtp_fold_header", None)

    def flatten(self, message: email.message.Message) -> bytes:
        # Generator.flatten: the message takes the generator's policy while it is written.
        saved = message.policy
        message.policy = self.policy
        try:
            body = self._body(message)
            head = self._header_block(message)
        finally:
            message.policy = saved
        return head + body

    def _header_block(self, message: email.message.Message) -> bytes:
        if getattr(message, "_write_headers", None) is not None:
            raise _Unsupported
        if _PLAIN_HEADER_WRITER:
            fold = self.policy.fold_binary
            items = message.raw_items()
            fold_text = self.fold_text
            if fold_text is not None:
                # The policy's fold_binary tries fold_text and encodes its ASCII answer:
                # ask it directly, and encode the block once.
                maxlen, linesep = self.policy.max_line_length, self.linesep
                # Most headers fit on their line: the core says so (and writes it)
                # without a Python frame; fold_text answers for the others.
                width = maxlen or sys.maxsize
                classes, labels, kinds = FOLD_TABLES
                texts: list[str] = []
                for name, value in items:
                    text = fold_line(value, classes, labels, width, linesep, kinds)
                    if text is None:
                        text = fold_text(value, maxlen, linesep)
                    if text is None:  # this one is the stdlib's: bytes from here on
                        lines = [t.encode("ascii") for t in texts]
                        lines.append(fold(name, value))
                        break
                    texts.append(text)
                else:
                    texts.append(linesep)  # the empty line that ends the header block
                    return "".join(texts).encode("ascii")
            else:
                lines = []
            lines.extend([fold(name, value) for name, value in items])
            lines.append(self.nl)  # the empty line that ends the header block
            return b"".join(lines)
        # The installed generator writes the header block, so that what it checks or
        # changes on this Python version is done here too.
        headers = io.BytesIO()
        if self.generator is None:
            self.generator = _Generator(headers, policy=self.policy)
            self.generator._NL = self.linesep
        self.generator._fp = headers
        self.generator._write_headers(message)
        return headers.getvalue()

    def _body(self, message: email.message.Message) -> bytes:
        # Generator._dispatch: _handle_<maintype>_<subtype>, else _handle_<maintype>, else
        # _writeBody (which is _handle_text). get_content_maintype() and _subtype() are the
        # two halves of get_content_type(), which always holds one "/".
        content_type = message.get_content_type()
        handler = _HANDLERS.get(content_type)
        if handler is None:
            handler = _handler(content_type)
        if handler is _HANDLE_TEXT:
            return self._text(message)
        if handler is _HANDLE_MULTIPART:
            return self._multipart(message)
        raise _Unsupported  # message/*, multipart/signed: the stdlib's

    def _text(self, message: email.message.Message) -> bytes:
        payload = message._payload  # type: ignore[attr-defined]
        if payload is None:
            return b""
        if type(payload) is not str:
            raise _Unsupported  # the stdlib raises TypeError: let it
        if not payload.isascii():
            try:
                payload.encode()
            except UnicodeEncodeError:
                # Surrogate escapes: bytes from a parsed message. Written back as they
                # were, unless the policy wants 7 bit, when the stdlib re-encodes the part.
                if self.seven_bit:
                    raise _Unsupported from None
        return self._lines(payload)

    def _lines(self, text: str) -> bytes:
        """Generator._write_lines (every line end becomes linesep) after the From_
        mangling, as bytes (surrogate escapes back to the bytes they stand for)."""
        if not text:
            return b""
        if self.mangle_from:
            text = _FROM_LINE.sub(">From ", text)
        try:
            data = text.encode("ascii", "surrogateescape")
        except UnicodeEncodeError:
            raise _Unsupported from None  # the stdlib raises it: let it, with its message
        linesep = self.linesep
        if b"\r" not in data:
            return data if linesep == "\n" else data.replace(b"\n", self.nl)
        return _LINE_END.sub(linesep, text).encode("ascii", "surrogateescape")

    def _multipart(self, message: email.message.Message) -> bytes:
        subparts: Any = message.get_payload()
        if subparts is None:
            subparts = []
        elif type(subparts) is not list:
            raise _Unsupported
        texts = []
        for part in subparts:
            if type(part) not in _MESSAGE_CLASSES:
                raise _Unsupported
            texts.append(self.flatten(part))
        nl = self.nl
        boundary = message.get_boundary()
        if not boundary:
            # A boundary that appears in none of the parts (RFC 2046 section 5.1.1),
            # chosen and stored the way the stdlib does it.
            boundary = _Generator._make_boundary(nl.join(texts))
            message.set_boundary(boundary)
        out: list[bytes] = []
        preamble = message.preamble
        if preamble is not None:
            out.append(self._lines(preamble))
            out.append(nl)
        dash = b"--" + boundary.encode("ascii", "surrogateescape")
        out.append(dash + nl)
        if texts:
            out.append(texts[0])
        for text in texts[1:]:
            out.append(nl + dash + nl)
            out.append(text)
        out.append(nl + dash + b"--" + nl)
        epilogue = message.epilogue
        if epilogue is not None:
            out.append(self._lines(epilogue))
        return b"".join(out)
