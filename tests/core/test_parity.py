"""Differential tests: the compiled core and the pure reference must be indistinguishable.

Both implementations get the same random input, split at the same random points, and
must produce the same replies, the same ``pending`` states and the same exceptions (type
and args), compared up to and including the first exception.
"""

from __future__ import annotations

import importlib
import inspect
import os
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsmtp.errors import SMTPAuthenticationRefusedLocally

REQUIRE_EXTENSIONS = os.environ.get("FASTSMTP_REQUIRE_EXTENSIONS") == "1"

PARITY = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def impls() -> tuple[ModuleType, ModuleType]:
    """(compiled, pure): both implementations side by side."""
    pure = importlib.import_module("fastsmtp._parser_py")
    try:
        compiled = importlib.import_module("fastsmtp._parser")
    except ImportError as exc:
        if REQUIRE_EXTENSIONS:
            pytest.fail(f"compiled fastsmtp._parser did not load: {exc}")
        pytest.skip(f"compiled fastsmtp._parser not built: {exc}")
    return compiled, pure


# Reply streams ---------------------------------------------------------------------------

codes = st.one_of(
    st.integers(200, 599).map(lambda c: b"%d" % c),
    st.sampled_from([b"250", b"220", b"354", b"421", b"550"]),
    st.sampled_from([b"199", b"600", b"25", b"2_5", b"+25", b"2500", b"", b"abc"]),
)
line_ends = st.sampled_from([b"\r\n", b"\n", b"\r\n", b"\r\r\n", b""])
texts = st.binary(max_size=30) | st.text(alphabet=" \tabc-.\x00\u00e9\u2713", max_size=30).map(
    lambda t: t.encode("utf-8")
)
separators = st.sampled_from([b" ", b"-", b"", b"x", b"\t"])


@st.composite
def replies(draw: st.DrawFn) -> bytes:
    """A well-formed reply, mostly; sometimes with one line's code changed."""
    code = draw(st.integers(200, 599).map(lambda c: b"%d" % c))
    n = draw(st.integers(1, 6))
    lines = []
    for i in range(n):
        line_code = code
        if draw(st.integers(0, 9)) == 0:
            line_code = draw(codes)
        sep = b"-" if i < n - 1 else draw(st.sampled_from([b" ", b""]))
        text = draw(texts) if sep else b""
        lines.append(line_code + sep + text + draw(st.sampled_from([b"\r\n", b"\n"])))
    return b"".join(lines)


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind == 0:  # endless continuation
        return b"250-x\r\n" * draw(st.integers(1, 40))
    if kind == 1:  # an oversize line, with or without its end
        return b"250 " + b"y" * draw(st.integers(0, 300)) + draw(line_ends)
    if kind == 2:  # mixed codes
        return draw(codes) + b"-a\r\n" + draw(codes) + b" b\r\n"
    if kind == 3:  # random line made of reply-ish pieces
        return draw(codes) + draw(separators) + draw(texts) + draw(line_ends)
    return draw(st.binary(max_size=40))  # plain garbage


pieces = st.lists(st.one_of(replies(), replies(), hostile()), max_size=12)
limits = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {
            "max_line_length": st.integers(1, 80),
            "max_reply_size": st.integers(1, 400),
            "max_reply_lines": st.integers(0, 12),
        }
    ),
)


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = []
    last = 0
    for point in [*points, len(data)]:
        chunks.append(data[last:point])
        last = point
    return chunks


def run_parser(impl: ModuleType, kwargs: dict[str, int], chunks: list[bytes]) -> list[Any]:
    """Everything observable while feeding ``chunks``, up to and including the first error."""
    parser = impl.ReplyParser(**kwargs)
    events: list[Any] = []
    for chunk in chunks:
        parser.feed(chunk)
        events.append(("pending", parser.pending))
        while True:
            try:
                reply = parser.next_reply()
            except Exception as exc:
                events.append(("error", type(exc), exc.args))
                # The failed parser ignores input and raises the same error again.
                parser.feed(b"250 ok\r\n")
                try:
                    parser.next_reply()
                except Exception as again:
                    events.append(("again", again is exc, parser.pending))
                return events
            if reply is impl.NEED_DATA:
                events.append(("need-data",))
                break
            events.append(("reply", type(reply), reply.code, reply.message))
    return events


@st.composite
def split_streams(draw: st.DrawFn) -> list[bytes]:
    """A reply stream split into chunks: at random points, or byte by byte."""
    data = b"".join(draw(pieces))
    if draw(st.integers(0, 4)) == 0:
        return [data[i : i + 1] for i in range(len(data))]
    return splits(data, draw(st.lists(st.integers(0, len(data)), max_size=20)))


@PARITY
@given(chunks=split_streams(), kwargs=limits)
def test_reply_parser_parity(
    impls: tuple[ModuleType, ModuleType], chunks: list[bytes], kwargs: dict[str, int]
) -> None:
    compiled, pure = impls
    expected = run_parser(pure, kwargs, chunks)
    assert run_parser(compiled, kwargs, chunks) == expected


@PARITY
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=10))
def test_reply_parser_parity_on_raw_bytes(
    impls: tuple[ModuleType, ModuleType], data: bytes, cuts: list[int]
) -> None:
    compiled, pure = impls
    chunks = splits(data, cuts)
    assert run_parser(compiled, {}, chunks) == run_parser(pure, {}, chunks)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(8180, 8200), step=st.integers(1, 9000), crlf=st.booleans())
def test_reply_parser_parity_at_the_line_limit(
    impls: tuple[ModuleType, ModuleType], size: int, step: int, crlf: bool
) -> None:
    compiled, pure = impls
    end = b"\r\n" if crlf else b"\n"
    data = b"250 " + b"x" * (size - 4 - len(end)) + end + b"250 " + b"y" * size
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    assert run_parser(compiled, {}, chunks) == run_parser(pure, {}, chunks)


@pytest.mark.parametrize("bad", ["250 ok\r\n", 5, None, [1, 2], memoryview(b"a-b-")[::2]])
def test_reply_parser_parity_on_bad_input_types(
    impls: tuple[ModuleType, ModuleType], bad: object
) -> None:
    outcomes = []
    for impl in impls:
        with pytest.raises(Exception) as info:
            impl.ReplyParser().feed(bad)
        outcomes.append((type(info.value), info.value.args))
    assert outcomes[0] == outcomes[1]


# DATA encoding ---------------------------------------------------------------------------

bodies = st.binary(max_size=200) | st.lists(
    st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b".\r\n", b"\x00"]), max_size=60
).map(b"".join)


def encode_stream(impl: ModuleType, chunks: list[bytes]) -> tuple[bytes, int]:
    encoder = impl.DataEncoder()
    out = b"".join(encoder.encode(chunk) for chunk in chunks) + encoder.finish()
    return out, encoder.size


def model_encode(data: bytes) -> tuple[bytes, int]:
    """An independent, obviously correct model: (encoded DATA, normalised size)."""
    text = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    lines = text.split(b"\n")[:-1]
    normalised = b"".join(line + b"\r\n" for line in lines)
    stuffed = b"".join((b"." + line if line[:1] == b"." else line) + b"\r\n" for line in lines)
    return stuffed + b".\r\n", len(normalised)


@st.composite
def split_bodies(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A body and a split of it into chunks, sometimes with empty chunks in between."""
    data = draw(bodies)
    mode = draw(st.integers(0, 3))
    if mode == 0:  # every byte its own chunk
        chunks = [data[i : i + 1] for i in range(len(data))]
    else:
        chunks = splits(data, draw(st.lists(st.integers(0, len(data)), max_size=12)))
    if mode == 3 or draw(st.booleans()):
        chunks = [piece for chunk in chunks for piece in (chunk, b"")]
    return data, chunks


@PARITY
@given(body=split_bodies())
def test_data_encoder_parity(
    impls: tuple[ModuleType, ModuleType], body: tuple[bytes, list[bytes]]
) -> None:
    data, chunks = body
    encoded, size = model_encode(data)
    for impl in impls:
        assert impl.encode_data(data) == encoded
        assert encode_stream(impl, chunks) == (encoded, size)


@PARITY
@given(data=bodies)
def test_data_encoding_equals_aiosmtplib(impls: tuple[ModuleType, ModuleType], data: bytes) -> None:
    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    expected = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"
    for impl in impls:
        assert impl.encode_data(data) == expected


@PARITY
@given(body=split_bodies())
def test_no_smuggling(
    impls: tuple[ModuleType, ModuleType], body: tuple[bytes, list[bytes]]
) -> None:
    data, chunks = body
    for impl in impls:
        for out in (impl.encode_data(data), encode_stream(impl, chunks)[0]):
            # Every CR is followed by LF and every LF follows a CR.
            assert b"\r" not in out.replace(b"\r\n", b"")
            assert b"\n" not in out.replace(b"\r\n", b"")
            # After the CRLF that ends the DATA command, the only end-of-data line is ours.
            wire = b"DATA\r\n" + out
            assert wire.find(b"\r\n.\r\n") == len(wire) - 5


@pytest.mark.parametrize("bad", ["text", None, 3.5, [1, 256], object()])
def test_encode_data_parity_on_bad_input_types(
    impls: tuple[ModuleType, ModuleType], bad: object
) -> None:
    outcomes = []
    for impl in impls:
        with pytest.raises(Exception) as info:
            impl.encode_data(bad)
        outcomes.append((type(info.value), info.value.args))
    assert outcomes[0] == outcomes[1]


def test_encode_data_parity_on_odd_bytes_likes(impls: tuple[ModuleType, ModuleType]) -> None:
    import array

    class Custom(bytes):
        def __bytes__(self) -> bytes:
            return b".custom\n"

    odd = (3, [46, 10], array.array("H", [0x0A2E, 0x0D2E]), Custom(b"ignored"), bytearray(b".\r"))
    for value in odd:
        compiled, pure = (impl.encode_data(value) for impl in impls)
        assert compiled == pure


# Auth encoders --------------------------------------------------------------------------

credentials = st.one_of(st.text(max_size=40), st.binary(max_size=40))


@settings(max_examples=100, deadline=None)
@given(username=credentials, password=credentials, challenge=st.binary(max_size=60))
def test_auth_parity(
    impls: tuple[ModuleType, ModuleType],
    username: str | bytes,
    password: str | bytes,
    challenge: bytes,
) -> None:
    import base64

    def outcome(call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except Exception as exc:
            return type(exc), exc.args

    compiled, pure = impls
    for chal in (challenge, base64.b64encode(challenge), base64.b64encode(challenge).decode()):
        assert outcome(compiled.auth_crammd5_verify, username, password, chal) == outcome(
            pure.auth_crammd5_verify, username, password, chal
        )
    for name in ("auth_plain_encode", "auth_login_encode", "auth_xoauth2_encode"):
        assert outcome(getattr(compiled, name), username, password) == outcome(
            getattr(pure, name), username, password
        )


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("auth_plain_encode", ("a\x00", "b")),
        ("auth_plain_encode", (b"a", b"b\x00")),
        ("auth_xoauth2_encode", ("a\x01", "b")),
        ("auth_xoauth2_encode", (b"a", b"\x01")),
    ],
)
def test_auth_refusals_parity(
    impls: tuple[ModuleType, ModuleType], call: str, args: tuple[Any, Any]
) -> None:
    """A credential holding its field separator: same class, code and message."""
    outcomes = []
    for core in impls:
        with pytest.raises(SMTPAuthenticationRefusedLocally) as info:
            getattr(core, call)(*args)
        outcomes.append((type(info.value), info.value.args))
    assert outcomes[0] == outcomes[1]


# The surface -----------------------------------------------------------------------------

PUBLIC = (
    "ReplyParser",
    "DataEncoder",
    "encode_data",
    "auth_plain_encode",
    "auth_login_encode",
    "auth_crammd5_verify",
    "auth_xoauth2_encode",
)
MEMBERS = ("feed", "next_reply", "pending", "encode", "finish", "size")


def test_same_public_names_and_constants(impls: tuple[ModuleType, ModuleType]) -> None:
    compiled, pure = impls
    assert sorted(compiled.__all__) == sorted(pure.__all__)
    for name in ("MAX_LINE_LENGTH", "MAX_REPLY_SIZE", "MAX_REPLY_LINES"):
        assert getattr(compiled, name) == getattr(pure, name)
    assert repr(compiled.NEED_DATA) == repr(pure.NEED_DATA) == "NEED_DATA"
    assert type(compiled.NEED_DATA).__name__ == type(pure.NEED_DATA).__name__ == "_NeedData"


def test_same_docstrings(impls: tuple[ModuleType, ModuleType]) -> None:
    # The compiled docstrings start with the signature Cython embeds, then the same text.
    compiled, pure = impls
    for name in PUBLIC:
        objects = [(getattr(compiled, name), getattr(pure, name))]
        objects += [
            (getattr(objects[0][0], m), getattr(objects[0][1], m))
            for m in MEMBERS
            if hasattr(objects[0][1], m)
        ]
        for c_obj, py_obj in objects:
            py_doc = inspect.getdoc(py_obj)
            c_doc = inspect.getdoc(c_obj)
            assert py_doc, (name, py_obj)
            assert c_doc == py_doc or c_doc.endswith("\n\n" + py_doc), (name, c_doc, py_doc)
