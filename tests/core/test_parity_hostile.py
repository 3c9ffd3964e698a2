"""Differential tests on hostile shapes at the real (default) limits.

``test_parity.py`` covers hostile shapes mostly under small custom limits; here both
implementations get, with the default limits: continuation runs around ``MAX_REPLY_LINES``,
replies around ``MAX_REPLY_SIZE``, lines around ``MAX_LINE_LENGTH`` (with and without their
end), mixed codes deep inside long replies, NUL floods - each split at random points or in
large and tiny chunks - and must agree on every reply, ``pending`` state and error.
"""

from __future__ import annotations

from types import ModuleType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.test_parity import impls, run_parser, splits

__all__ = ["impls"]

HOSTILE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def hostile_streams(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:  # endless continuation around the line-count limit
        n = draw(st.integers(1015, 1035))
        last = draw(st.sampled_from([b"", b"250 end\r\n", b"251 end\r\n"]))
        return b"250-x\r\n" * n + last
    if kind == 1:  # a reply around the size limit
        width = draw(st.integers(30, 40))
        n = draw(st.integers(700, 1100))
        return (b"250-" + b"y" * width + b"\r\n") * n + b"250 z\r\n"
    if kind == 2:  # a line around the length limit, maybe never ended
        size = draw(st.integers(8180, 8200))
        return b"250 " + b"q" * size + draw(st.sampled_from([b"\r\n", b"\n", b""]))
    if kind == 3:  # mixed codes deep in a long reply
        n = draw(st.integers(1, 200))
        bad = draw(st.sampled_from([b"251", b"25", b"2_5", b"+25", b"\x00\x00\x00", b"550"]))
        return b"250-a\r\n" * n + bad + b"-b\r\n250 c\r\n"
    if kind == 4:  # NUL flood
        return b"\x00" * draw(st.integers(1, 20000)) + draw(st.sampled_from([b"", b"\r\n"]))
    # good replies, then garbage
    good = b"250 ok\r\n" * draw(st.integers(0, 50))
    return good + draw(st.binary(max_size=64))


@st.composite
def chunked(draw: st.DrawFn) -> list[bytes]:
    data = draw(hostile_streams())
    mode = draw(st.integers(0, 2))
    if mode == 0:
        return splits(data, draw(st.lists(st.integers(0, len(data)), max_size=30)))
    size = draw(st.sampled_from([1, 2, 3, 7, 4096, 8192, 65536])) if mode == 1 else len(data)
    size = max(size, 1)
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


@HOSTILE
@given(chunks=chunked())
def test_parity_on_hostile_shapes_at_default_limits(
    impls: tuple[ModuleType, ModuleType], chunks: list[bytes]
) -> None:
    compiled, pure = impls
    expected = run_parser(pure, {}, chunks)
    assert run_parser(compiled, {}, chunks) == expected
    # Hostile input always ends in an error or in clean replies, never in a huge buffer.
    assert expected
