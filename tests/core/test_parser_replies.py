"""ReplyParser: bytes of a reply stream in, ``SMTPResponse`` objects (or typed errors) out."""

from __future__ import annotations

import pickle
from types import ModuleType
from typing import Any

import pytest

from fastsmtp.errors import SMTPResponseException
from fastsmtp.response import SMTPResponse

EHLO = (
    b"250-mail.example.com Hello client.example.org [192.0.2.1]\r\n"
    b"250-SIZE 35882577\r\n"
    b"250-8BITMIME\r\n"
    b"250-PIPELINING\r\n"
    b"250-AUTH LOGIN PLAIN CRAM-MD5\r\n"
    b"250-STARTTLS\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-CHUNKING\r\n"
    b"250 SMTPUTF8\r\n"
)
EHLO_TEXT = (
    "mail.example.com Hello client.example.org [192.0.2.1]\nSIZE 35882577\n8BITMIME\n"
    "PIPELINING\nAUTH LOGIN PLAIN CRAM-MD5\nSTARTTLS\nENHANCEDSTATUSCODES\nCHUNKING\nSMTPUTF8"
)


def drain(impl: ModuleType, parser: Any) -> list[SMTPResponse]:
    """Every complete reply the parser holds, in order (stops at NEED_DATA)."""
    replies = []
    while True:
        reply = parser.next_reply()
        if reply is impl.NEED_DATA:
            return replies
        replies.append(reply)


def parse(impl: ModuleType, *chunks: bytes, **limits: int) -> list[SMTPResponse]:
    parser = impl.ReplyParser(**limits)
    for chunk in chunks:
        parser.feed(chunk)
    replies = drain(impl, parser)
    assert not parser.pending
    return replies


def parse_error(impl: ModuleType, *chunks: bytes, **limits: int) -> SMTPResponseException:
    parser = impl.ReplyParser(**limits)
    for chunk in chunks:
        parser.feed(chunk)
    with pytest.raises(SMTPResponseException) as info:
        drain(impl, parser)
    assert type(info.value) is SMTPResponseException
    return info.value


def test_constants_and_sentinel(impl: ModuleType) -> None:
    assert impl.MAX_LINE_LENGTH == 8192
    assert impl.MAX_REPLY_SIZE == 32768
    assert impl.MAX_REPLY_LINES == 1024
    assert repr(impl.NEED_DATA) == "NEED_DATA"
    assert impl.ReplyParser().next_reply() is impl.NEED_DATA


def test_single_line_reply(impl: ModuleType) -> None:
    (reply,) = parse(impl, b"220 mail.example.com ESMTP ready\r\n")
    assert type(reply) is SMTPResponse
    assert reply == SMTPResponse(220, "mail.example.com ESMTP ready")
    assert reply.code == 220
    assert type(reply.code) is int
    assert type(reply.message) is str


def test_multi_line_reply_fed_whole(impl: ModuleType) -> None:
    assert parse(impl, EHLO) == [SMTPResponse(250, EHLO_TEXT)]


def test_multi_line_reply_fed_byte_by_byte(impl: ModuleType) -> None:
    chunks = [EHLO[i : i + 1] for i in range(len(EHLO))]
    assert parse(impl, *chunks) == [SMTPResponse(250, EHLO_TEXT)]


def test_bare_lf_line_ends(impl: ModuleType) -> None:
    assert parse(impl, b"250-first\n250-second\r\n250 third\n") == [
        SMTPResponse(250, "first\nsecond\nthird")
    ]


def test_several_replies_in_one_chunk(impl: ModuleType) -> None:
    assert parse(impl, b"250 ok\r\n354 go ahead\r\n221 bye\r\n") == [
        SMTPResponse(250, "ok"),
        SMTPResponse(354, "go ahead"),
        SMTPResponse(221, "bye"),
    ]


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (b"250 ok\r\n", "ok"),
        (b"250   spaced out \t \r\n", "spaced out"),
        (b"250 \ttab\t\r\n", "tab"),
        (b"250\r\n", ""),
        (b"250\n", ""),
        (b"250 \r\n", ""),
        (b"250 inner\rcr\r\n", "inner\rcr"),
        (b"250 two\r\r\n", "two"),
        (b"250 a  b\r\n", "a  b"),
    ],
)
def test_text_is_stripped(impl: ModuleType, line: bytes, text: str) -> None:
    assert parse(impl, line) == [SMTPResponse(250, text)]


def test_continuation_texts_joined_with_newline(impl: ModuleType) -> None:
    assert parse(impl, b"250-a \r\n250-\r\n250-  \r\n250 b\r\n") == [SMTPResponse(250, "a\n\n\nb")]


def test_utf8_text(impl: ModuleType) -> None:
    assert parse(impl, "250 café ✓\r\n".encode()) == [SMTPResponse(250, "café ✓")]


def test_non_utf8_bytes_are_surrogate_escaped(impl: ModuleType) -> None:
    (reply,) = parse(impl, b"550-bad \xff\xfe\r\n550 more \xc3\r\n")
    assert reply.message == "bad \udcff\udcfe\nmore \udcc3"
    assert reply.message.encode("utf-8", "surrogateescape") == b"bad \xff\xfe\nmore \xc3"


def test_nul_bytes_in_text(impl: ModuleType) -> None:
    assert parse(impl, b"250 a\x00b\x00\r\n") == [SMTPResponse(250, "a\x00b\x00")]


@pytest.mark.parametrize(
    "stream",
    [
        b"2_5 ok\r\n",
        b"+25 ok\r\n",
        b"25\r\n",
        b"25 ok\r\n",
        b"600 ok\r\n",
        b"199 ok\r\n",
        b"100 ok\r\n",
        b"250x\r\n",
        b"250xok\r\n",
        b"250_ok\r\n",
        b"250\tok\r\n",
        b"\r\n",
        b"\n",
        b" 250 ok\r\n",
        b"2500 ok\r\n",
        b"hello\r\n",
        b"\x00\x00\x00\r\n",
    ],
)
def test_malformed_lines(impl: ModuleType, stream: bytes) -> None:
    error = parse_error(impl, stream)
    assert error.code == -1
    assert error.message == "Malformed SMTP response line: " + stream.decode("utf-8", "replace")
    assert error.args == (-1, error.message)


def test_malformed_message_replaces_undecodable_bytes(impl: ModuleType) -> None:
    error = parse_error(impl, b"2\xff0 ok\r\n")
    assert error.message == "Malformed SMTP response line: 2\ufffd0 ok\r\n"


def test_mismatched_codes_across_lines(impl: ModuleType) -> None:
    error = parse_error(impl, b"250-first\r\n251 second\r\n")
    assert (error.code, error.message) == (-1, "Malformed SMTP response line: 251 second\r\n")


def test_code_may_change_between_replies(impl: ModuleType) -> None:
    assert parse(impl, b"250-a\r\n250 b\r\n251 c\r\n") == [
        SMTPResponse(250, "a\nb"),
        SMTPResponse(251, "c"),
    ]


@pytest.mark.parametrize("code", [200, 299, 354, 421, 500, 599])
def test_code_range_edges(impl: ModuleType, code: int) -> None:
    assert parse(impl, b"%d x\r\n" % code) == [SMTPResponse(code, "x")]


# Limits ---------------------------------------------------------------------------------

LINE_8192 = b"250 " + b"x" * (8192 - 6) + b"\r\n"


def test_line_of_exactly_max_length_is_accepted(impl: ModuleType) -> None:
    assert len(LINE_8192) == 8192
    assert parse(impl, LINE_8192) == [SMTPResponse(250, "x" * 8186)]
    # The same line split just before the LF: 8191 bytes buffered is still fine.
    assert parse(impl, LINE_8192[:-1], LINE_8192[-1:]) == [SMTPResponse(250, "x" * 8186)]


def test_line_one_byte_too_long(impl: ModuleType) -> None:
    line = b"250 " + b"x" * (8193 - 6) + b"\r\n"
    error = parse_error(impl, line)
    assert (error.code, error.message) == (-1, "Response too long")
    error = parse_error(impl, line[:4000], line[4000:])
    assert (error.code, error.message) == (-1, "Response too long")


@pytest.mark.parametrize("chunk_size", [1, 7, 1000, 4096, 8191, 8192, 100_000])
def test_endless_line_rejected_once_max_length_is_buffered(
    impl: ModuleType, chunk_size: int
) -> None:
    parser = impl.ReplyParser()
    endless = b"250 " + b"y" * 20_000
    fed = 0
    while fed + chunk_size < 8192:
        parser.feed(endless[fed : fed + chunk_size])
        fed += chunk_size
        assert parser.next_reply() is impl.NEED_DATA
        assert parser.pending
    # Whatever the split, the chunk that brings the buffer to 8192 bytes fails the parser.
    parser.feed(endless[fed : fed + chunk_size])
    with pytest.raises(SMTPResponseException) as info:
        parser.next_reply()
    assert (info.value.code, info.value.message) == (-1, "Response too long")
    assert not parser.pending


def test_endless_line_8191_bytes_is_still_pending(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    parser.feed(b"250 " + b"z" * (8191 - 4))
    assert parser.next_reply() is impl.NEED_DATA
    parser.feed(b"z")
    with pytest.raises(SMTPResponseException, match="Response too long"):
        parser.next_reply()


def test_endless_line_after_a_complete_reply(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    parser.feed(b"250 ok\r\n" + b"2" * 8192)
    assert parser.next_reply() == SMTPResponse(250, "ok")
    with pytest.raises(SMTPResponseException, match="Response too long"):
        parser.next_reply()


def _reply_of_size(total: int, line_len: int = 100) -> bytes:
    """A 250 reply of exactly ``total`` bytes made of ``line_len``-byte CRLF lines."""
    lines = []
    remaining = total
    while remaining > line_len:
        lines.append(b"250-" + b"a" * (line_len - 6) + b"\r\n")
        remaining -= line_len
    assert remaining >= 6
    lines.append(b"250 " + b"b" * (remaining - 6) + b"\r\n")
    data = b"".join(lines)
    assert len(data) == total
    return data


def test_reply_of_exactly_max_size_is_accepted(impl: ModuleType) -> None:
    (reply,) = parse(impl, _reply_of_size(32768))
    assert reply.code == 250
    assert reply.message.count("\n") == 327


def test_reply_over_max_size(impl: ModuleType) -> None:
    error = parse_error(impl, _reply_of_size(32769))
    assert (error.code, error.message) == (-1, "Response too long")


def test_max_size_counts_per_reply(impl: ModuleType) -> None:
    # Two replies of 20000 bytes each: neither is over the limit on its own.
    one = _reply_of_size(20000)
    assert len(parse(impl, one + one)) == 2


def test_reply_of_max_lines_is_accepted(impl: ModuleType) -> None:
    (reply,) = parse(impl, b"250-x\r\n" * 1023 + b"250 y\r\n")
    assert reply.message == "x\n" * 1023 + "y"


def test_reply_over_max_lines(impl: ModuleType) -> None:
    error = parse_error(impl, b"250-x\r\n" * 1024 + b"250 y\r\n")
    assert (error.code, error.message) == (-1, "Response too long")


def test_endless_continuation_fails_before_its_end(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    for _ in range(1024):
        parser.feed(b"250-x\r\n")
    assert parser.pending
    parser.feed(b"250-x\r\n")  # line 1025: the reply can no longer be valid
    assert not parser.pending
    with pytest.raises(SMTPResponseException, match="Response too long"):
        parser.next_reply()


def test_custom_limits(impl: ModuleType) -> None:
    assert parse(impl, b"250 abcd\r\n", max_line_length=10) == [SMTPResponse(250, "abcd")]
    assert parse_error(impl, b"250 abcde\r\n", max_line_length=10).message == "Response too long"
    assert parse_error(impl, b"250 abcdefghi", max_line_length=10).message == "Response too long"
    assert parse(impl, b"250-a\r\n250 b\r\n", max_reply_size=14) == [SMTPResponse(250, "a\nb")]
    assert parse_error(impl, b"250-a\r\n250 bc\r\n", max_reply_size=14).message == (
        "Response too long"
    )
    assert parse(impl, b"250-a\r\n250 b\r\n", max_reply_lines=2) == [SMTPResponse(250, "a\nb")]
    assert parse_error(impl, b"250-a\r\n250-a\r\n250 b\r\n", max_reply_lines=2).message == (
        "Response too long"
    )


# Errors and the failed state -------------------------------------------------------------


def test_error_is_queued_behind_completed_replies(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    parser.feed(b"250 ok\r\n220 hi\r\n250-half\r\nXYZ\r\n250 never\r\n")
    assert parser.next_reply() == SMTPResponse(250, "ok")
    assert parser.next_reply() == SMTPResponse(220, "hi")
    with pytest.raises(SMTPResponseException) as info:
        parser.next_reply()
    assert info.value.args == (-1, "Malformed SMTP response line: XYZ\r\n")


def test_failed_parser_reraises_and_ignores_input(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    parser.feed(b"99 bad\r\n")
    with pytest.raises(SMTPResponseException) as first:
        parser.next_reply()
    parser.feed(b"250 fine\r\n")
    parser.feed(b"250 partial")
    assert not parser.pending
    for _ in range(2):
        with pytest.raises(SMTPResponseException) as again:
            parser.next_reply()
        assert again.value is first.value
    # Input that is not bytes-like is ignored too once failed.
    parser.feed("not bytes")  # type: ignore[arg-type]


def test_reply_split_in_the_middle_of_crlf(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    parser.feed(b"250-a\r")
    assert parser.pending
    parser.feed(b"\n250 b\r")
    assert parser.next_reply() is impl.NEED_DATA
    parser.feed(b"\n")
    assert parser.next_reply() == SMTPResponse(250, "a\nb")
    assert not parser.pending


def test_empty_input(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    parser.feed(b"")
    assert not parser.pending
    assert parser.next_reply() is impl.NEED_DATA
    parser.feed(b"250 o")
    parser.feed(b"")
    parser.feed(b"k\r\n")
    assert parser.next_reply() == SMTPResponse(250, "ok")


def test_pending(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    assert not parser.pending
    parser.feed(b"2")
    assert parser.pending
    parser.feed(b"50-first\r\n")
    assert parser.pending  # a continuation line: the reply is unfinished
    parser.feed(b"250 last\r\n")
    assert not parser.pending  # complete, though not yet taken
    assert parser.next_reply() == SMTPResponse(250, "first\nlast")
    assert not parser.pending


def test_bytes_like_inputs(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    parser.feed(bytearray(b"250-a\r\n"))
    parser.feed(memoryview(b"250-b\r\n"))
    parser.feed(memoryview(b"xx250 c\r\n")[2:])
    assert parser.next_reply() == SMTPResponse(250, "a\nb\nc")


def test_str_input_is_a_type_error(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    with pytest.raises(TypeError, match="can't concat str to bytearray"):
        parser.feed("250 ok\r\n")  # type: ignore[arg-type]
    # The failed call left the parser as it was.
    parser.feed(b"250 ok\r\n")
    assert parser.next_reply() == SMTPResponse(250, "ok")


def test_many_replies_interleaved_with_reads(impl: ModuleType) -> None:
    # Replies pile up faster than they are taken (two in, one out), then all are taken.
    parser = impl.ReplyParser()
    expected = []
    got = []
    for i in range(0, 600, 2):
        parser.feed(b"250 r%d\r\n251 r%d\r\n" % (i, i + 1))
        expected += [SMTPResponse(250, f"r{i}"), SMTPResponse(251, f"r{i + 1}")]
        got.append(parser.next_reply())
    got.extend(drain(impl, parser))
    assert got == expected


def test_pickling_a_parser_copies_it_or_is_refused(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    parser.feed(b"250-a\r\n250 b")
    try:
        clone = pickle.loads(pickle.dumps(parser))
    except TypeError:
        return  # the compiled parser refuses; it must never crash or lose state silently
    clone.feed(b"\r\n")
    assert clone.next_reply() == SMTPResponse(250, "a\nb")


def test_only_space_tab_cr_lf_are_stripped_from_reply_text(impl: ModuleType) -> None:
    # RFC 5321 section 4.2: the text after the code is the server's; fastsmtp trims the
    # line's own whitespace (SP, HTAB, CR, LF) and keeps every other byte, VT and FF too.
    [reply] = parse(impl, b"250-\x0bfirst\x0c \r\n250 \tsecond\x0b\r\n")
    assert reply == SMTPResponse(250, "\x0bfirst\x0c\nsecond\x0b")


@pytest.mark.parametrize("limit", [0, 1, 4])
def test_feeding_nothing_is_never_an_error(impl: ModuleType, limit: int) -> None:
    # Whatever the line limit, an empty chunk (or the empty rest of a chunk that ended
    # exactly on a line) holds no line that could be too long.
    parser = impl.ReplyParser(max_line_length=limit)
    parser.feed(b"")
    assert parser.next_reply() is impl.NEED_DATA
    assert not parser.pending
