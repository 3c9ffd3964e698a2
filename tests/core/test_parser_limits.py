"""Reply-parser limits at their exact boundaries, on every reply of a stream, both cores.

Found missing by mutation testing (issue #19): the size and line counters must start
again for each reply, and each limit is inclusive.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from fastsmtp.errors import SMTPResponseException
from fastsmtp.response import SMTPResponse


def replies(impl: ModuleType, parser: object) -> list[SMTPResponse]:
    taken = []
    while (reply := parser.next_reply()) is not impl.NEED_DATA:  # type: ignore[attr-defined]
        taken.append(reply)
    return taken


def too_long(impl: ModuleType, parser: object) -> None:
    with pytest.raises(SMTPResponseException) as info:
        replies(impl, parser)
    assert (info.value.code, info.value.message) == (-1, "Response too long")


def reply_of_size(size: int, lines: int = 2) -> bytes:
    """A reply of ``lines`` lines and exactly ``size`` octets, CRLFs included."""
    body = [b"250-x\r\n"] * (lines - 1)
    last = size - sum(map(len, body))
    return b"".join(body) + b"250 " + b"y" * (last - 6) + b"\r\n"


@pytest.mark.parametrize("split", [False, True])
def test_reply_size_limit_is_per_reply_and_inclusive(impl: ModuleType, split: bool) -> None:
    parser = impl.ReplyParser(max_reply_size=64)
    data = reply_of_size(64) * 3
    if split:
        for i in range(len(data)):
            parser.feed(data[i : i + 1])
    else:
        parser.feed(data)
    assert [r.code for r in replies(impl, parser)] == [250, 250, 250]
    parser.feed(reply_of_size(65))
    too_long(impl, parser)


def test_second_reply_over_the_size_limit(impl: ModuleType) -> None:
    parser = impl.ReplyParser(max_reply_size=64)
    parser.feed(reply_of_size(64) + reply_of_size(65))
    assert parser.next_reply() == SMTPResponse(250, "x\n" + "y" * 51)
    too_long(impl, parser)


def test_line_count_limit_is_per_reply_and_inclusive(impl: ModuleType) -> None:
    parser = impl.ReplyParser(max_reply_lines=3)
    three = b"250-a\r\n250-b\r\n250 c\r\n"
    parser.feed(three + three)
    assert replies(impl, parser) == [SMTPResponse(250, "a\nb\nc")] * 2
    parser.feed(b"250-a\r\n250-b\r\n250-c\r\n250 d\r\n")
    too_long(impl, parser)


@pytest.mark.parametrize("line_end", [b"\r\n", b"\n"])
def test_line_length_limit_is_inclusive(impl: ModuleType, line_end: bytes) -> None:
    limit = 32
    exact = b"250 " + b"z" * (limit - 4 - len(line_end)) + line_end  # LF included: 32 octets
    parser = impl.ReplyParser(max_line_length=limit)
    parser.feed(exact + exact)
    assert [len(r.message) for r in replies(impl, parser)] == [limit - 4 - len(line_end)] * 2
    parser.feed(b"250 " + b"z" * (limit - 3 - len(line_end)) + line_end)
    too_long(impl, parser)


def test_partial_line_limit(impl: ModuleType) -> None:
    # A line still without its LF fails as soon as it reaches the limit, however split.
    parser = impl.ReplyParser(max_line_length=16)
    parser.feed(b"250 " + b"a" * 11)  # 15 octets, no LF: could still end in time
    assert replies(impl, parser) == []
    assert parser.pending
    parser.feed(b"\n")
    assert replies(impl, parser) == [SMTPResponse(250, "a" * 11)]
    assert not parser.pending
    parser.feed(b"250 " + b"a" * 11)
    parser.feed(b"a")  # 16 octets and no LF yet: it cannot fit any more
    too_long(impl, parser)


def test_failed_parser_ignores_input_and_keeps_raising(impl: ModuleType) -> None:
    parser = impl.ReplyParser(max_line_length=16)
    parser.feed(b"250 ok\r\n" + b"x" * 16)
    assert parser.next_reply() == SMTPResponse(250, "ok")
    too_long(impl, parser)
    parser.feed(b"250 ok\r\n")
    too_long(impl, parser)
    assert not parser.pending


def test_a_partial_line_is_measured_from_its_own_start(impl: ModuleType) -> None:
    # A complete line before it in the same chunk does not count towards its length.
    parser = impl.ReplyParser()
    parser.feed(b"250-" + b"a" * 5000 + b"\r\n" + b"250 " + b"b" * 4000)
    assert parser.next_reply() is impl.NEED_DATA
    parser.feed(b"\r\n")
    reply = parser.next_reply()
    assert reply.code == 250 and reply.message == "a" * 5000 + "\n" + "b" * 4000


@pytest.mark.parametrize("bad", [b"xyz\r\n", b"250-a\r\n251 b\r\n"])
def test_the_first_error_of_a_chunk_is_the_one_raised(impl: ModuleType, bad: bytes) -> None:
    # A malformed line fails the parser; a long run of bytes after it in the same chunk
    # is not read, so it cannot replace the error with "Response too long".
    parser = impl.ReplyParser()
    parser.feed(bad + b"2" * (impl.MAX_LINE_LENGTH + 100))
    with pytest.raises(SMTPResponseException) as raised:
        parser.next_reply()
    line = bad.splitlines(keepends=True)[-1].decode()
    assert raised.value.message == f"Malformed SMTP response line: {line}"
