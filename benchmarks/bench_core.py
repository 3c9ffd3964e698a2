"""Core benchmarks, compiled (c) against pure Python (py): reply parsing, DATA, AUTH.

Run with::

    python -m pytest benchmarks/bench_core.py --benchmark-only

Not collected by the normal test run (``testpaths = ["tests"]``). Every case runs once per
implementation, grouped so that pytest-benchmark prints c and py side by side; the DATA
cases report throughput in ``extra_info["MB/s"]``. aiosmtplib's own DATA preparation
(its two regex passes, called through ``aiosmtplib.protocol``) is the reference.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

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
EHLO_BYTES = [EHLO[i : i + 1] for i in range(len(EHLO))]
CHALLENGE = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
MIB = 1024 * 1024


def dotted_body(size: int) -> bytes:
    """``size`` bytes of 76-character CRLF lines, every second one starting with "."."""
    rng = random.Random(5321)
    alphabet = b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,;:"
    lines = []
    total = 0
    i = 0
    while total < size:
        text = bytes(rng.choice(alphabet) for _ in range(74))
        line = (b"." + text[1:] if i % 2 else text) + b"\r\n"
        lines.append(line)
        total += len(line)
        i += 1
    return b"".join(lines)[:size]


BODY_1K = dotted_body(1024)
BODY_10M = dotted_body(10 * MIB)


@pytest.fixture(params=["c", "py"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    if request.param == "py":
        return importlib.import_module("fastsmtp._parser_py")
    try:
        return importlib.import_module("fastsmtp._parser")
    except ImportError as exc:
        pytest.skip(f"compiled fastsmtp._parser not built: {exc}")


def throughput(benchmark: Any, nbytes: int) -> None:
    benchmark.extra_info["MB/s"] = round(nbytes / benchmark.stats.stats.mean / 1e6, 1)


# Reply parsing ---------------------------------------------------------------------------


@pytest.mark.benchmark(group="parse EHLO (9 lines) fed whole")
def test_parse_ehlo_whole(benchmark: Any, impl: ModuleType) -> None:
    def run() -> Any:
        parser = impl.ReplyParser()
        parser.feed(EHLO)
        return parser.next_reply()

    reply = benchmark(run)
    assert reply.code == 250
    assert reply.message.count("\n") == 8


@pytest.mark.benchmark(group="parse EHLO (9 lines) fed byte by byte")
def test_parse_ehlo_bytewise(benchmark: Any, impl: ModuleType) -> None:
    def run() -> Any:
        parser = impl.ReplyParser()
        feed = parser.feed
        for byte in EHLO_BYTES:
            feed(byte)
        return parser.next_reply()

    reply = benchmark(run)
    assert reply.code == 250


# DATA encoding ---------------------------------------------------------------------------


@pytest.mark.benchmark(group="encode_data 1 KiB")
def test_encode_data_1k(benchmark: Any, impl: ModuleType) -> None:
    out = benchmark(impl.encode_data, BODY_1K)
    assert out.endswith(b"\r\n.\r\n")
    throughput(benchmark, len(BODY_1K))


@pytest.mark.benchmark(group="encode_data 10 MiB", min_rounds=5)
def test_encode_data_10m(benchmark: Any, impl: ModuleType) -> None:
    out = benchmark(impl.encode_data, BODY_10M)
    assert len(out) > len(BODY_10M)
    throughput(benchmark, len(BODY_10M))


@pytest.mark.benchmark(group="encode_data 10 MiB", min_rounds=5)
def test_encode_data_10m_aiosmtplib(benchmark: Any) -> None:
    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    def aiosmtplib_data(message: bytes) -> bytes:
        # The three steps of aiosmtplib's SMTPProtocol.execute_data_command, called as is.
        return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"

    out = benchmark(aiosmtplib_data, BODY_10M)
    assert out == importlib.import_module("fastsmtp._parser_py").encode_data(BODY_10M)
    throughput(benchmark, len(BODY_10M))


@pytest.mark.benchmark(group="DataEncoder 10 MiB in 64 KiB chunks", min_rounds=5)
def test_data_encoder_10m_chunks(benchmark: Any, impl: ModuleType) -> None:
    chunks = [BODY_10M[i : i + 64 * 1024] for i in range(0, len(BODY_10M), 64 * 1024)]

    def run() -> int:
        encoder = impl.DataEncoder()
        total = 0
        for chunk in chunks:
            total += len(encoder.encode(chunk))
        return total + len(encoder.finish())

    total = benchmark(run)
    assert total == len(impl.encode_data(BODY_10M))
    throughput(benchmark, len(BODY_10M))


# AUTH encoders ---------------------------------------------------------------------------

AUTH_CASES: dict[str, Callable[[ModuleType], Callable[[], Any]]] = {
    "auth_plain_encode": lambda m: lambda: m.auth_plain_encode("tim", "tanstaaftanstaaf"),
    "auth_login_encode": lambda m: lambda: m.auth_login_encode("tim", "tanstaaftanstaaf"),
    "auth_crammd5_verify": lambda m: (
        lambda: m.auth_crammd5_verify("tim", "tanstaaftanstaaf", CHALLENGE)
    ),
    "auth_xoauth2_encode": lambda m: (
        lambda: m.auth_xoauth2_encode(
            "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
        )
    ),
}


@pytest.mark.parametrize("name", list(AUTH_CASES))
def test_auth(benchmark: Any, impl: ModuleType, name: str) -> None:
    benchmark.group = name
    result = benchmark(AUTH_CASES[name](impl))
    assert result
