"""security.md §8: SMTP smuggling. A deliberately lenient server that ends DATA at any of
``<CR|LF|CRLF> "." <CR|LF|CRLF>`` (a superset of ``\\n.\\n``, ``\\n.\\r\\n``, ``\\r\\n.\\n``,
``\\r.\\r``, ``\\r\\n.\\r``) receives exactly one message per send, with no bare CR or LF, and
then the next real command - never a smuggled one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsmtp import SMTP
from tests.conftest import run_coroutine
from tests.hostile.kit import Expect, HostileServer, LenientData, ehlo_reply, reply

SMUGGLE = b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n"
SEQUENCES = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r", b"\r.\n", b"\n.\r"]
BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")

SCRIPT = [
    Expect(b"EHLO"),
    ehlo_reply("8BITMIME"),
    Expect(b"MAIL FROM:<a@example.com>"),
    reply("250 ok"),
    Expect(b"RCPT TO:<b@example.com>"),
    reply("250 ok"),
    Expect(b"DATA"),
    reply("354 go ahead"),
    LenientData(),
    reply("250 queued"),
    Expect(b"QUIT"),
    reply("221 bye"),
]


async def send_through_lenient_server(body: bytes) -> HostileServer:
    async with HostileServer(SCRIPT) as server:
        client = SMTP(
            hostname="127.0.0.1",
            port=server.port,
            start_tls=False,
            local_hostname="client.test",
            timeout=3,
        )
        async with client:
            await client.sendmail("a@example.com", ["b@example.com"], body)
        await server.finished()
    return server


def assert_one_clean_message(server: HostileServer) -> bytes:
    conn = server.conn
    assert conn.errors == [], conn.errors
    assert len(conn.messages) == 1
    (message,) = conn.messages
    assert BARE.search(message) is None, message
    # EHLO, MAIL, RCPT, DATA, the one payload, then QUIT: no smuggled command was read.
    assert len(conn.commands) == 6, conn.commands
    assert conn.commands[5] == b"QUIT\r\n"
    return message


# Ids without backslashes: pytest escapes a backslash in an explicit id again on every
# collection in one process (mutation testing collects more than once).
@pytest.mark.parametrize(
    "sequence", SEQUENCES, ids=lambda s: s.decode().replace("\r", "CR").replace("\n", "LF")
)
async def test_lenient_server_sees_exactly_one_message(sequence: bytes) -> None:
    body = b"Subject: hi\r\n\r\nfirst" + sequence + SMUGGLE + b"smuggled body\r\n"
    server = await send_through_lenient_server(body)
    message = assert_one_clean_message(server)
    # Every bare CR / LF became CRLF and the "." line was stuffed.
    assert b"\r\n..\r\n" in message
    assert message.endswith(b"smuggled body")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=st.text(alphabet="\r\n.a", max_size=40).map(str.encode))
def test_property_any_body_of_cr_lf_dot_is_one_message(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], body: bytes
) -> None:
    server = run_coroutine(loop_factory, send_through_lenient_server(body))
    message = assert_one_clean_message(server)
    # What was received, un-stuffed, is the body with every line end made CRLF.
    normalised = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    unstuffed = re.sub(rb"(^|\r\n)\.", rb"\1", message)
    assert unstuffed == normalised.removesuffix(b"\r\n") or (unstuffed + b"\r\n" == normalised), (
        body,
        message,
    )
