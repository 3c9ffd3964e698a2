"""Reply codes are three digits (RFC 5321 section 4.2), on both cores: a character just past
"9" (":", 0x3A) in the second or third place is malformed, not read as a digit (#19)."""

from __future__ import annotations

from types import ModuleType

import pytest

from fastsmtp.errors import SMTPResponseException


@pytest.mark.parametrize("line", [b"2:0 ok\r\n", b"25: ok\r\n", b"::: ok\r\n", b"2/0 ok\r\n"])
def test_a_character_next_to_the_digits_is_malformed(impl: ModuleType, line: bytes) -> None:
    parser = impl.ReplyParser()
    parser.feed(line)
    with pytest.raises(SMTPResponseException) as info:
        parser.next_reply()
    assert info.value.code == -1
    assert info.value.message == "Malformed SMTP response line: " + line.decode()


def test_the_last_digit_nine_is_a_digit(impl: ModuleType) -> None:
    parser = impl.ReplyParser()
    parser.feed(b"299 ok\r\n")
    reply = parser.next_reply()
    assert (reply.code, reply.message) == (299, "ok")


@pytest.mark.parametrize(
    ("stream", "kwargs", "message"),
    [
        (b"2x0 bad\r\n250 next\r\n", {}, "Malformed SMTP response line: 2x0 bad\r\n"),
        (b"250-a\r\n251 b\r\n250 next\r\n", {}, "Malformed SMTP response line: 251 b\r\n"),
        (
            b"250-" + b"a" * 30 + b"\r\n250 b\r\n250 next\r\n",
            {"max_reply_size": 20},
            "Response too long",
        ),
        (b"250-a\r\n250-b\r\n250 c\r\n250 next\r\n", {"max_reply_lines": 2}, "Response too long"),
    ],
)
def test_nothing_after_an_error_in_the_same_chunk_is_a_reply(
    impl: ModuleType, stream: bytes, kwargs: dict[str, int], message: str
) -> None:
    parser = impl.ReplyParser(**kwargs)
    parser.feed(stream)
    with pytest.raises(SMTPResponseException) as info:
        parser.next_reply()
    assert (info.value.code, info.value.message) == (-1, message)
    assert not parser.pending
