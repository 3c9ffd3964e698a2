"""The context manager treats every timeout alike, on every Python version."""

from __future__ import annotations

import asyncio

import pytest

import fastsmtp
from tests.client.policy_server import PolicyServer


@pytest.mark.parametrize("error", [asyncio.TimeoutError, TimeoutError, ConnectionResetError])
async def test_timeout_or_connection_error_in_block_closes_without_quit(
    error: type[Exception],
) -> None:
    # asyncio.TimeoutError is the builtin TimeoutError only from Python 3.11 on; both
    # must close the connection without QUIT (the session may be out of step).
    async with PolicyServer() as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port)
        with pytest.raises(error):
            async with client:
                await client.noop()
                raise error()
        assert not client.is_connected
        await server.lost.wait()
    assert b"NOOP\r\n" in server.received
    assert b"QUIT" not in server.received


async def test_other_errors_in_block_quit() -> None:
    async with PolicyServer() as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port)
        with pytest.raises(KeyError):
            async with client:
                raise KeyError("boom")
        assert not client.is_connected
        await server.lost.wait()
    assert server.received.endswith(b"QUIT\r\n")
