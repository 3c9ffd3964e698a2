"""DataEncoder's state after finish(), the same on both cores (found by mutation testing, #19).

finish() leaves the encoder at the start of a line of a non-empty message: a second
finish() writes only the end-of-data line, and a later chunk's leading "." is stuffed.
"""

from __future__ import annotations

from types import ModuleType

import pytest


@pytest.mark.parametrize(
    ("first", "expected", "size"),
    [
        (b"", [b"", b"\r\n.\r\n", b".\r\n", b"..x", b"\r\n.\r\n"], 6),
        (b"a", [b"a", b"\r\n.\r\n", b".\r\n", b"..x", b"\r\n.\r\n"], 7),
        (b"a\r\n", [b"a\r\n", b".\r\n", b".\r\n", b"..x", b"\r\n.\r\n"], 7),
    ],
)
def test_encoder_after_finish(
    impl: ModuleType, first: bytes, expected: list[bytes], size: int
) -> None:
    encoder = impl.DataEncoder()
    out = [encoder.encode(first), encoder.finish(), encoder.finish()]
    out += [encoder.encode(b".x"), encoder.finish()]
    assert out == expected
    assert encoder.size == size
