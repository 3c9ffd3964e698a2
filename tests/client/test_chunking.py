"""RFC 3030 CHUNKING: BDAT with exact sizes, LAST, BINARYMIME, refusals mid-stream."""

from __future__ import annotations

import re

import pytest

import fastsmtp
from tests.client.policy_server import Policy, PolicyServer

SENDER = "sender@example.com"
CHUNKING = ("PIPELINING", "CHUNKING", "BINARYMIME", "8BITMIME", "SIZE 900000000")
BDAT = re.compile(rb"BDAT (\d+)( LAST)?\r\n")


def bdat_commands(received: bytes) -> list[tuple[int, bool]]:
    """The BDAT commands in what the server received, skipping each chunk's payload."""
    commands = []
    position = 0
    while True:
        match = BDAT.search(received, position)
        if match is None:
            return commands
        size = int(match.group(1))
        commands.append((size, match.group(2) is not None))
        position = match.end() + size


async def _send(
    message: fastsmtp.smtp.MessageSource,
    *,
    extensions: tuple[str, ...] = CHUNKING,
    replies: dict[str, str] | None = None,
    chunking: bool | None = True,
    mail_options: list[str] | None = None,
) -> tuple[PolicyServer, object]:
    async with PolicyServer(Policy(extensions=extensions, replies=replies or {})) as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, chunking=chunking)
        async with client:
            try:
                outcome: object = await client.sendmail(
                    SENDER, ["a@example.com"], message, mail_options=mail_options
                )
            except fastsmtp.SMTPException as exc:
                outcome = exc
            outcome_connected = client.is_connected
        assert outcome_connected
    return server, outcome


@pytest.mark.parametrize("extensions", [CHUNKING, CHUNKING[1:]], ids=["pipelined", "lockstep"])
async def test_bdat_sizes_add_up_and_bytes_arrive_unchanged(extensions: tuple[str, ...]) -> None:
    # 600 KiB: more than two of the client's 256 KiB pieces; dot lines are not stuffed.
    line = b".starts with a dot" + b"x" * 80 + b"\r\n"
    message = b"Subject: big\r\n\r\n" + line * (600 * 1024 // len(line))
    server, outcome = await _send(message, extensions=extensions)
    assert outcome == ({}, "chunk ok")
    assert server.messages == [message]
    commands = bdat_commands(server.received)
    assert len(commands) == 3
    assert [last for _, last in commands] == [False, False, True]
    assert sum(size for size, _ in commands) == len(message)
    assert b"DATA\r\n" not in server.received
    assert b"MAIL FROM:<sender@example.com> size=%d" % len(message) in server.received


async def test_bdat_normalises_bare_line_ends_without_stuffing() -> None:
    server, outcome = await _send(b"Subject: x\n\n.one\rtwo\r\nthree")
    assert outcome == ({}, "chunk ok")
    assert server.messages == [b"Subject: x\r\n\r\n.one\r\ntwo\r\nthree"]


async def test_binarymime_sends_bytes_exactly() -> None:
    body = bytes(range(256)) * 4 + b"\n.\n\r"
    server, outcome = await _send(body, mail_options=["BODY=BINARYMIME"])
    assert outcome == ({}, "chunk ok")
    assert server.messages == [body]
    assert b"MAIL FROM:<sender@example.com> size=%d BODY=BINARYMIME\r\n" % len(body) in (
        server.received
    )


async def test_binarymime_needs_the_extension() -> None:
    server, outcome = await _send(
        b"x", extensions=("CHUNKING",), mail_options=["BODY=BINARYMIME"]
    )
    assert isinstance(outcome, fastsmtp.SMTPNotSupported)
    assert b"MAIL" not in server.received


async def test_chunking_true_without_the_extension() -> None:
    server, outcome = await _send(b"x", extensions=("PIPELINING",))
    assert isinstance(outcome, fastsmtp.SMTPNotSupported)
    assert str(outcome) == "CHUNKING is not supported by this server"
    assert b"MAIL" not in server.received


@pytest.mark.parametrize(("chunking", "uses_bdat"), [(None, True), (False, False)])
async def test_chunking_setting(chunking: bool | None, uses_bdat: bool) -> None:
    server, outcome = await _send(b"Subject: s\r\n\r\nbody\r\n", chunking=chunking)
    assert outcome == ({}, "chunk ok" if uses_bdat else "queued")
    assert (b"BDAT" in server.received) is uses_bdat
    assert server.messages == [b"Subject: s\r\n\r\nbody\r\n"]


@pytest.mark.parametrize("extensions", [CHUNKING, CHUNKING[1:]], ids=["pipelined", "lockstep"])
async def test_refusal_mid_stream(extensions: tuple[str, ...]) -> None:
    message = b"Subject: big\r\n\r\n" + (b"y" * 1000 + b"\r\n") * 800  # 4 chunks
    server, outcome = await _send(
        message, extensions=extensions, replies={"bdat:2": "552 5.3.4 message too big"}
    )
    assert isinstance(outcome, fastsmtp.SMTPDataError)
    assert outcome.args == (552, "5.3.4 message too big")
    assert server.messages == []
    assert server.received.endswith(b"RSET\r\nQUIT\r\n")
    if extensions == CHUNKING[1:]:
        # Lockstep stops at the refused chunk.
        assert [last for _, last in bdat_commands(server.received)] == [False, False]


async def test_bdat_from_a_stream_keeps_its_chunking() -> None:
    def chunks() -> object:
        yield b"Subject: s\r\n\r\n"
        yield b"a" * 100 + b"\r\n"
        yield b"b" * 10

    server, outcome = await _send(chunks())  # type: ignore[arg-type]
    assert outcome == ({}, "chunk ok")
    assert bdat_commands(server.received) == [(14, False), (102, False), (10, True)]
    assert server.messages == [b"Subject: s\r\n\r\n" + b"a" * 100 + b"\r\n" + b"b" * 10]
