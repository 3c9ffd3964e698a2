"""Streamed DATA: iterables, async iterables and files; flow control, SIZE, progress."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import fastsmtp
from fastsmtp._commands import message_size
from fastsmtp._parser_py import encode_data
from fastsmtp._transaction import CHUNK_SIZE
from tests.client.policy_server import Policy, PolicyServer

SENDER = "sender@example.com"
PARTS = [b"Subject: streamed\r\n", b"\r\n", b".dot at line start\n", b"split CR\r", b"\nend"]
JOINED = b"".join(PARTS)
# What the server keeps of a DATA body: the encoded form without the final ".\r\n".
EXPECTED = encode_data(JOINED)[: -len(b".\r\n")]


def gen() -> Iterator[bytes]:
    yield from PARTS


async def agen() -> AsyncIterator[bytes]:
    for part in PARTS:
        yield part


class AsyncReader:
    """A binary file object whose ``read`` is a coroutine (like aiofiles)."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)

    async def read(self, size: int = -1) -> bytes:
        return self._buffer.read(size)


async def _sendmail(message: object, **kwargs: object) -> tuple[PolicyServer, object]:
    async with (
        PolicyServer() as server,
        fastsmtp.SMTP(hostname="127.0.0.1", port=server.port) as client,
    ):
        result = await client.sendmail(SENDER, ["a@example.com"], message, **kwargs)  # type: ignore[arg-type]
    return server, result


@pytest.mark.parametrize(
    "make",
    [gen, agen, lambda: io.BytesIO(JOINED), lambda: AsyncReader(JOINED), lambda: list(PARTS)],
    ids=["generator", "async generator", "BytesIO", "async read", "list"],
)
async def test_stream_sources_arrive_encoded(make: object) -> None:
    server, result = await _sendmail(make())  # type: ignore[operator]
    assert result == ({}, "queued")
    assert server.messages == [EXPECTED]


async def test_real_file(tmp_path: Path) -> None:
    path = tmp_path / "message.eml"
    path.write_bytes(JOINED * 50_000)  # several read() chunks
    with path.open("rb") as handle:
        server, result = await _sendmail(handle)
    assert result == ({}, "queued")
    assert server.messages == [encode_data(JOINED * 50_000)[:-3]]


async def test_size_only_when_known() -> None:
    server, _ = await _sendmail(gen())
    assert b"MAIL FROM:<sender@example.com>\r\n" in server.received
    server, _ = await _sendmail(gen(), size=12345)
    assert b"MAIL FROM:<sender@example.com> size=12345\r\n" in server.received
    server, _ = await _sendmail(JOINED)
    # RFC 1870: the size counts CRLF line ends but not dot-stuffing (one dot here).
    assert b"MAIL FROM:<sender@example.com> size=%d\r\n" % (len(EXPECTED) - 1) in server.received


async def test_a_size_the_caller_gave_is_announced_once() -> None:
    # RFC 1870: one SIZE parameter. The caller's own SIZE= (in mail_options) wins; the
    # client adds none of its own beside it.
    server, _ = await _sendmail(JOINED, mail_options=["SIZE=999"])
    mail = [line for line in server.received.split(b"\r\n") if line.startswith(b"MAIL")]
    assert mail == [b"MAIL FROM:<sender@example.com> SIZE=999"]


async def test_progress_reports_every_chunk() -> None:
    calls: list[tuple[int, int | None]] = []
    big = b"line of text\r\n" * 50_000  # 700 KB: three 256 KiB pieces
    await _sendmail(big, progress=lambda sent, total: calls.append((sent, total)))
    assert calls == [(262144, len(big)), (524288, len(big)), (len(big), len(big))]

    calls.clear()
    await _sendmail(gen(), progress=lambda sent, total: calls.append((sent, total)))
    sent = [s for s, _ in calls]
    assert sent == sorted(sent) and sent[-1] == len(JOINED)
    assert {total for _, total in calls} == {None}

    # Announced with size=: the size is known, and progress reports against it.
    calls.clear()
    await _sendmail(gen(), size=len(JOINED), progress=lambda s, t: calls.append((s, t)))
    assert calls[-1] == (len(JOINED), len(JOINED))
    assert {total for _, total in calls} == {len(JOINED)}


async def test_data_and_send_take_streams() -> None:
    async with PolicyServer() as server:
        async with fastsmtp.SMTP(hostname="127.0.0.1", port=server.port) as client:
            await client.mail(SENDER)
            await client.rcpt("a@example.com")
            response = await client.data(agen())
        assert response == fastsmtp.SMTPResponse(250, "queued")
        await fastsmtp.send(agen(), sender=SENDER, recipients="b@example.com",
                            hostname="127.0.0.1", port=server.port)
    assert server.messages == [EXPECTED, EXPECTED]


async def test_bad_chunk_aborts_without_delivering() -> None:
    def bad() -> Iterator[object]:
        yield b"Subject: x\r\n\r\n"
        yield "not bytes"

    async with PolicyServer() as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port)
        await client.connect()
        with pytest.raises(TypeError, match="message chunks must be bytes"):
            await client.sendmail(SENDER, ["a@example.com"], bad())  # type: ignore[arg-type]
        # The server was mid-DATA: the connection cannot be trusted any more.
        assert not client.is_connected
    assert server.messages == []


async def test_200_mib_message_in_bounded_memory() -> None:
    chunk = (b"." + b"a" * 1022 + b"\n") * 64  # 64 KiB, every line dot-stuffed
    count = 200 * 16  # 200 MiB

    def message() -> Iterator[bytes]:
        for _ in range(count):
            yield chunk

    policy = Policy(keep_bodies=False)
    async with (
        PolicyServer(policy) as server,
        fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=60) as client,
    ):
        tracemalloc.start()
        try:
            result = await client.sendmail(SENDER, ["a@example.com"], message())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result == ({}, "queued")
    # 1024 lines of 1024 bytes per 64 KiB... each line gains a "." and a CR.
    assert server.sizes == [count * 64 * (1024 + 2)]
    # Client and server both count here; the message never is held in memory.
    assert peak < 8 * 1024 * 1024, peak


async def test_large_bytes_message_is_encoded_piece_by_piece() -> None:
    # A CR ends the first 256 KiB piece and its LF starts the next, which then begins a
    # line with "."; SIZE counts the message, not its encoding.
    head = b"Subject: big\r\n\r\n"
    first = head + b"x" * (CHUNK_SIZE - len(head) - 1) + b"\r"
    big = first + b"\n.dot\n" + b"y" * 100_000 + b"\r\nend"
    server, result = await _sendmail(big)
    assert result == ({}, "queued")
    assert server.messages == [encode_data(big)[: -len(b".\r\n")]]
    assert b"MAIL FROM:<sender@example.com> size=%d\r\n" % message_size(big) in server.received


async def test_large_bytes_message_is_never_copied_whole() -> None:
    big = (b"." + b"z" * 1000 + b"\n") * 20_000  # 20 MB, every line dot-stuffed
    async with (
        PolicyServer(Policy(keep_bodies=False)) as server,
        fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=60) as client,
    ):
        tracemalloc.start()
        try:
            result = await client.sendmail(SENDER, ["a@example.com"], big)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result == ({}, "queued")
    assert server.sizes == [len(encode_data(big)) - len(b".\r\n")]
    assert peak < 4 * 1024 * 1024, peak  # an encoded copy alone would be 20 MB
