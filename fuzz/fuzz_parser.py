"""Differential fuzzing of fastsmtp's byte core with atheris (not part of CI).

Feeds the same bytes, split at fuzzer-chosen points, to the compiled
``fastsmtp._parser.ReplyParser`` and the pure ``fastsmtp._parser_py.ReplyParser`` (with
fuzzer-chosen limits) and requires identical replies, ``pending`` states and exceptions
(type and args). Also checks, for both implementations, that the streaming ``DataEncoder``
over the same split equals ``encode_data`` of the whole input (and the compiled output equals
the pure one), and that the encoded body holds no bare CR/LF and exactly one end-of-data line.

Run: ``python fuzz/fuzz_parser.py -max_total_time=600 fuzz/corpus`` (see fuzz/README.md).
"""

from __future__ import annotations

import sys
from typing import Any

import atheris

with atheris.instrument_imports(include=["fastsmtp"]):
    import fastsmtp._parser_py as pure
from fastsmtp import _parser as compiled

MODES = 3  # 0: raw bytes to both parsers, 1: data encoder, 2: reply-shaped


def _split(fdp: atheris.FuzzedDataProvider, data: bytes) -> list[bytes]:
    cuts = sorted(fdp.ConsumeIntInRange(0, len(data)) for _ in range(fdp.ConsumeIntInRange(0, 8)))
    chunks: list[bytes] = []
    last = 0
    for cut in cuts:
        chunks.append(data[last:cut])
        last = cut
    chunks.append(data[last:])
    return chunks


def _run_parser(impl: Any, kwargs: dict[str, int], chunks: list[bytes]) -> list[Any]:
    try:
        parser = impl.ReplyParser(**kwargs)
    except Exception as exc:
        return [("init-error", type(exc).__name__, exc.args)]
    events: list[Any] = []
    for chunk in chunks:
        parser.feed(chunk)
        events.append(("pending", parser.pending))
        while True:
            try:
                reply = parser.next_reply()
            except Exception as exc:
                events.append(("error", type(exc).__name__, exc.args))
                return events
            if reply is impl.NEED_DATA:
                events.append("NEED_DATA")
                break
            events.append(("reply", reply.code, reply.message))
    return events


def _check_parser(fdp: atheris.FuzzedDataProvider) -> None:
    kwargs: dict[str, int] = {}
    if fdp.ConsumeBool():
        kwargs = {
            "max_line_length": fdp.ConsumeIntInRange(1, 300),
            "max_reply_size": fdp.ConsumeIntInRange(1, 2000),
            "max_reply_lines": fdp.ConsumeIntInRange(1, 40),
        }
    data = fdp.ConsumeBytes(fdp.remaining_bytes() // 2 + 1)
    chunks = _split(fdp, data)
    got_c = _run_parser(compiled, kwargs, chunks)
    got_py = _run_parser(pure, kwargs, chunks)
    if got_c != got_py:
        raise AssertionError(f"ReplyParser differs on {chunks!r} {kwargs}:\n{got_c}\n{got_py}")


def _check_encoder(fdp: atheris.FuzzedDataProvider) -> None:
    data = fdp.ConsumeBytes(fdp.remaining_bytes() // 2 + 1)
    chunks = _split(fdp, data)
    results = []
    for impl in (compiled, pure):
        whole = impl.encode_data(data)
        encoder = impl.DataEncoder()
        streamed = b"".join(encoder.encode(c) for c in chunks) + encoder.finish()
        if streamed != whole:
            raise AssertionError(f"{impl.__name__}: DataEncoder {chunks!r} != encode_data")
        results.append((whole, encoder.size))
    if results[0] != results[1]:
        raise AssertionError(f"encode_data differs on {data!r}: {results}")
    body = results[0][0]
    stripped = body.replace(b"\r\n", b"")
    if b"\r" in stripped or b"\n" in stripped:
        raise AssertionError(f"bare CR/LF in encoded {data!r}")
    # Exactly one end-of-data line, and it is the last one (the body starts a line).
    framed = b"\r\n" + body
    if not framed.endswith(b"\r\n.\r\n") or framed.count(b"\r\n.\r\n") != 1:
        raise AssertionError(f"end-of-data sequence count wrong for {data!r}: {body!r}")


def test_one_input(raw: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(raw)
    mode = fdp.ConsumeIntInRange(0, MODES - 1)
    if mode == 0:
        _check_parser(fdp)
    elif mode == 1:
        _check_encoder(fdp)
    else:
        # Reply-shaped input: lines of fuzz text behind plausible codes, so the fuzzer
        # reaches the multi-line, mixed-code and limit logic quickly.
        lines = []
        for _ in range(fdp.ConsumeIntInRange(1, 12)):
            code = fdp.PickValueInList([b"250", b"220", b"421", b"354", b"550", b"25", b"2_5"])
            sep = fdp.PickValueInList([b"-", b" ", b"", b"\t"])
            end = fdp.PickValueInList([b"\r\n", b"\n", b"\r", b""])
            lines.append(code + sep + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40)) + end)
        data = b"".join(lines)
        chunks = _split(fdp, data)
        got_c = _run_parser(compiled, {}, chunks)
        got_py = _run_parser(pure, {}, chunks)
        if got_c != got_py:
            raise AssertionError(f"ReplyParser differs on {chunks!r}:\n{got_c}\n{got_py}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
