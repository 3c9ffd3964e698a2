"""DATA encoding: CRLF normalisation, dot-stuffing, the end-of-data line, streaming."""

from __future__ import annotations

import pickle
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsmtp._commands import message_size


def stream(impl: ModuleType, *chunks: bytes | bytearray | memoryview) -> tuple[bytes, int]:
    """Encode ``chunks`` with one DataEncoder; the output and the final ``size``."""
    encoder = impl.DataEncoder()
    out = b"".join(encoder.encode(chunk) for chunk in chunks) + encoder.finish()
    return out, encoder.size


@pytest.mark.parametrize(
    ("data", "encoded"),
    [
        (b"", b"\r\n.\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b"a\n", b"a\r\n.\r\n"),
        (b"a\r", b"a\r\n.\r\n"),
        (b"\r\n", b"\r\n.\r\n"),
        (b"\n", b"\r\n.\r\n"),
        (b"\r", b"\r\n.\r\n"),
        (b"a\nb\rc\r\nd", b"a\r\nb\r\nc\r\nd\r\n.\r\n"),
        (b"\n\r", b"\r\n\r\n.\r\n"),
        (b"\r\r\n", b"\r\n\r\n.\r\n"),
        (b"\n\n", b"\r\n\r\n.\r\n"),
        (b"\r\n\r\n", b"\r\n\r\n.\r\n"),
        (b"\r\n\n\r", b"\r\n\r\n\r\n.\r\n"),
        (b"x\x00y\r\n", b"x\x00y\r\n.\r\n"),
    ],
)
def test_line_end_normalisation(impl: ModuleType, data: bytes, encoded: bytes) -> None:
    assert impl.encode_data(data) == encoded


@pytest.mark.parametrize(
    ("data", "encoded"),
    [
        (b".", b"..\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"..", b"...\r\n.\r\n"),
        (b"a.b\r\n", b"a.b\r\n.\r\n"),
        (b"a\r\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r.\rb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r\n.hidden", b"a\r\n..hidden\r\n.\r\n"),
        (b".\n.\n.", b"..\r\n..\r\n..\r\n.\r\n"),
        (b" .", b" .\r\n.\r\n"),
    ],
)
def test_dot_stuffing(impl: ModuleType, data: bytes, encoded: bytes) -> None:
    assert impl.encode_data(data) == encoded


def test_smuggling_sequences_are_neutralised(impl: ModuleType) -> None:
    # The classic SMTP smuggling payloads: an end-of-data line made of bare LF or CR.
    for payload in (b"a\n.\nMAIL FROM:<x>", b"a\r.\rMAIL", b"a\r\n.\nMAIL", b"a\n.\r\nMAIL"):
        out = impl.encode_data(payload)
        assert out.count(b"\r\n.\r\n") == 1
        assert out.endswith(b"\r\n.\r\n")


def test_bytes_like_inputs(impl: ModuleType) -> None:
    data = b"a\n.b\r"
    expected = impl.encode_data(data)
    assert impl.encode_data(bytearray(data)) == expected
    assert impl.encode_data(memoryview(data)) == expected
    assert impl.encode_data(memoryview(b"xx" + data)[2:]) == expected
    strided = memoryview(b"a-\n-.-b-\r-")[::2]
    assert impl.encode_data(strided) == expected
    assert type(impl.encode_data(bytearray(data))) is bytes


def test_str_input_is_a_type_error(impl: ModuleType) -> None:
    with pytest.raises(TypeError):
        impl.encode_data("text")
    with pytest.raises(TypeError):
        impl.DataEncoder().encode("text")


def test_large_input(impl: ModuleType) -> None:
    line = b".dotted line\n" + b"plain line\r\n"
    data = line * 100_000  # 2.5 MB, large enough for the compiled encoder's nogil path
    out = impl.encode_data(data)
    assert out == (b"..dotted line\r\nplain line\r\n" * 100_000) + b".\r\n"


@pytest.mark.parametrize("tail", [b"", b"end", b"end\r", b".", b"\n"])
def test_very_large_mixed_input(impl: ModuleType, tail: bytes) -> None:
    # Over 4 MiB: the compiled encoder sizes such inputs exactly before encoding them.
    block = b".a\rb\nc\r\n..\r\r\n\n.\n" + b"x" * 40 + b"\n"
    data = block * 80_000 + tail
    assert len(data) > 4 * 1024 * 1024
    encoded_block = b"..a\r\nb\r\nc\r\n...\r\n\r\n\r\n..\r\n" + b"x" * 40 + b"\r\n"
    expected_tail = {
        b"": b".\r\n",
        b"end": b"end\r\n.\r\n",
        b"end\r": b"end\r\n.\r\n",
        b".": b"..\r\n.\r\n",
        b"\n": b"\r\n.\r\n",
    }[tail]
    expected = encoded_block * 80_000 + expected_tail
    assert impl.encode_data(data) == expected
    assert impl.encode_data(bytearray(data)) == expected
    assert impl.encode_data(memoryview(data)) == expected
    # Streamed with the big chunk starting mid-line, and after a line end.
    assert stream(impl, data[:7], data[7:])[0] == expected
    assert stream(impl, b"\n", data)[0] == b"\r\n" + expected
    assert stream(impl, b"z", data)[0] == b"z" + expected[1:]  # ".a" mid-line: unstuffed


# Streaming -----------------------------------------------------------------------------


def test_encoder_matches_encode_data_for_a_simple_split(impl: ModuleType) -> None:
    data = b"Subject: x\r\n\r\n.line\r\nmore\n"
    for cut in range(len(data) + 1):
        assert stream(impl, data[:cut], data[cut:])[0] == impl.encode_data(data)


def test_dot_split_from_its_line_start(impl: ModuleType) -> None:
    assert stream(impl, b"a\r\n", b".b")[0] == b"a\r\n..b\r\n.\r\n"
    assert stream(impl, b"a\r", b"\n", b".", b"b")[0] == b"a\r\n..b\r\n.\r\n"
    assert stream(impl, b"a\r", b"\n.b")[0] == b"a\r\n..b\r\n.\r\n"
    assert stream(impl, b"a", b".b")[0] == b"a.b\r\n.\r\n"
    assert stream(impl, b".", b".")[0] == b"...\r\n.\r\n"


def test_crlf_split_across_chunks(impl: ModuleType) -> None:
    assert stream(impl, b"a\r", b"\nb")[0] == b"a\r\nb\r\n.\r\n"
    assert stream(impl, b"a\r", b"\r\nb")[0] == b"a\r\n\r\nb\r\n.\r\n"
    assert stream(impl, b"a\r", b"\n", b"\n")[0] == b"a\r\n\r\n.\r\n"


def test_empty_chunks_do_not_lose_a_pending_cr(impl: ModuleType) -> None:
    # Regression: an empty chunk between CR and LF used to make the LF a second line end.
    assert stream(impl, b"a\r", b"", b"\nb")[0] == b"a\r\nb\r\n.\r\n"
    assert stream(impl, b"", b"a\r", b"", b"", b"\n", b"")[0] == b"a\r\n.\r\n"


def test_encode_returns_only_new_bytes(impl: ModuleType) -> None:
    encoder = impl.DataEncoder()
    assert encoder.encode(b"") == b""
    assert encoder.encode(b"ab\r") == b"ab\r\n"
    assert encoder.encode(b"\n") == b""
    assert encoder.encode(b".c") == b"..c"
    assert encoder.finish() == b"\r\n.\r\n"


def test_empty_stream(impl: ModuleType) -> None:
    assert stream(impl) == (b"\r\n.\r\n", 2)
    assert stream(impl, b"", b"") == (b"\r\n.\r\n", 2)


@pytest.mark.parametrize(
    ("chunks", "size"),
    [
        ((b"",), 2),
        ((b"abc",), 5),
        ((b"abc\r\n",), 5),
        ((b"abc\n",), 5),
        ((b"abc\r",), 5),
        ((b"a\nb\rc",), 9),
        ((b".\n..\n",), 7),  # dot-stuffing is not counted
        ((b"a\r", b"\n", b"b"), 6),
        ((b"\r\n\r\n",), 4),
    ],
)
def test_size(impl: ModuleType, chunks: tuple[bytes, ...], size: int) -> None:
    assert stream(impl, *chunks)[1] == size
    assert message_size(b"".join(chunks)) == size


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"a", b"\x00"]), max_size=40))
def test_message_size_counts_what_the_encoder_sends(impl: ModuleType, parts: list[bytes]) -> None:
    # SIZE (RFC 1870) of a message sent piece by piece is counted without encoding it.
    data = b"".join(parts)
    assert message_size(data) == stream(impl, data)[1]


def test_size_grows_with_each_chunk(impl: ModuleType) -> None:
    encoder = impl.DataEncoder()
    assert encoder.size == 0
    encoder.encode(b".ab\n")
    assert encoder.size == 5
    encoder.encode(b"cd")
    assert encoder.size == 7
    encoder.finish()
    assert encoder.size == 9


def test_size_equals_aiosmtplib_normalised_length(impl: ModuleType) -> None:
    from aiosmtplib.protocol import normalize_message_line_endings

    data = b"From: a\nTo: b\r\n\r\n.body\rline\r\n..\n"
    assert stream(impl, data)[1] == len(normalize_message_line_endings(data))


def test_streaming_bytes_like_chunks(impl: ModuleType) -> None:
    out, _ = stream(impl, bytearray(b"a\r"), memoryview(b"\n.b"), memoryview(b"c-\n")[::2])
    assert out == b"a\r\n..bc\r\n.\r\n"


def test_encoder_state_survives_pickling(impl: ModuleType) -> None:
    encoder = impl.DataEncoder()
    assert encoder.encode(b"a\r") == b"a\r\n"
    clone = pickle.loads(pickle.dumps(encoder))
    assert clone.encode(b"\n.b") == b"..b"
    assert clone.finish() == b"\r\n.\r\n"
    assert clone.size == 7
