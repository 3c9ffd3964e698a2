"""RFC 2920 PIPELINING: one write per transaction, and the same results as lockstep."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import fastsmtp
from tests._servers import GREETING, Expect, ExpectData, Hang, ScriptedServer, ehlo_reply, reply
from tests.client.policy_server import CLOSE, Policy, PolicyServer

SENDER = "sender@example.com"
MESSAGE = b"Subject: pipelined\r\n\r\nHello.\r\n.dot line\r\n"


async def test_mail_rcpts_and_data_go_in_one_write() -> None:
    # The server answers nothing until it has MAIL, both RCPTs and DATA: a lockstep
    # client would wait for the MAIL reply forever.
    script = [
        GREETING,
        Expect(b"EHLO"),
        ehlo_reply("PIPELINING", "8BITMIME"),
        Expect(b"MAIL FROM:<sender@example.com>"),
        Expect(b"RCPT TO:<a@example.com>"),
        Expect(b"RCPT TO:<b@example.com>"),
        Expect(b"DATA"),
        reply("250 sender ok", "250 a ok", "250 b ok", "354 go ahead"),
        ExpectData(),
        reply("250 queued as 1"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with ScriptedServer(script) as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        async with client:
            refused, text = await client.sendmail(
                SENDER, ["a@example.com", "b@example.com"], MESSAGE
            )
        conn = server.connections[0]
    assert (refused, text) == ({}, "queued as 1")
    assert conn.errors == []
    assert conn.lines[1:5] == [
        b"MAIL FROM:<sender@example.com>\r\n",
        b"RCPT TO:<a@example.com>\r\n",
        b"RCPT TO:<b@example.com>\r\n",
        b"DATA\r\n",
    ]
    assert conn.lines[5] == b"Subject: pipelined\r\n\r\nHello.\r\n..dot line\r\n.\r\n"


async def test_same_server_stalls_a_lockstep_client() -> None:
    # The control for the test above: with pipelining off, the client waits for the
    # MAIL reply that this server never sends until it has seen DATA.
    script = [
        GREETING,
        Expect(b"EHLO"),
        ehlo_reply("PIPELINING"),
        Expect(b"MAIL"),
        Expect(b"RCPT"),
        Expect(b"DATA"),
        reply("250 ok", "250 ok", "354 go"),
    ]
    async with ScriptedServer(script) as server:
        client = fastsmtp.SMTP(
            hostname="127.0.0.1", port=server.port, timeout=0.5, pipelining=False
        )
        await client.connect()
        with pytest.raises(fastsmtp.SMTPReadTimeoutError):
            await client.sendmail(SENDER, ["a@example.com"], MESSAGE)
        assert not client.is_connected
        assert server.connections[0].lines[1:] == [b"MAIL FROM:<sender@example.com>\r\n"]


async def test_pipelining_true_requires_the_extension() -> None:
    async with PolicyServer(Policy(extensions=("8BITMIME",))) as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, pipelining=True)
        async with client:
            with pytest.raises(fastsmtp.SMTPNotSupported, match="PIPELINING"):
                await client.sendmail(SENDER, ["a@example.com"], MESSAGE)
        assert b"MAIL" not in server.received


async def test_pipelining_none_without_the_extension_is_lockstep() -> None:
    async with (
        PolicyServer(Policy(extensions=("8BITMIME",))) as server,
        fastsmtp.SMTP(hostname="127.0.0.1", port=server.port) as client,
    ):
        assert await client.sendmail(SENDER, ["a@example.com"], MESSAGE) == ({}, "queued")
    assert server.messages == [b"Subject: pipelined\r\n\r\nHello.\r\n..dot line\r\n"]


# --- equivalence: lockstep and pipelined give the same results ------------------------

RCPTS = ["a@example.com", "b@example.com", "c@example.com"]

# name -> (policy replies, recipients)
BEHAVIOURS: dict[str, tuple[dict[str, str], list[str]]] = {
    "all accepted": ({}, RCPTS),
    "one recipient": ({}, RCPTS[:1]),
    "sender refused": ({"mail": "550 5.7.1 sender rejected"}, RCPTS),
    "one refused": ({"rcpt:b@example.com": "550 5.1.1 no such user"}, RCPTS),
    "251 forward": ({"rcpt:b@example.com": "251 will forward"}, RCPTS),
    "all refused": ({"rcpt": "550 5.1.1 no"}, RCPTS),
    "data refused": ({"data": "554 5.3.0 no data today"}, RCPTS),
    "body refused": ({"end": "552 5.3.4 too big"}, RCPTS),
    "421 on mail": ({"mail": "421 4.3.2 shutting down"}, RCPTS),
    "421 on second rcpt": ({"rcpt:b@example.com": "421 4.3.2 shutting down"}, RCPTS),
    "421 on last rcpt": ({"rcpt:c@example.com": "421 4.3.2 shutting down"}, RCPTS),
    "421 on data": ({"data": "421 4.3.2 shutting down"}, RCPTS),
    "421 after body": ({"end": "421 4.3.2 shutting down"}, RCPTS),
    "disconnect at mail": ({"mail": CLOSE}, RCPTS),
    "disconnect at second rcpt": ({"rcpt:b@example.com": CLOSE}, RCPTS),
    "disconnect after body": ({"end": CLOSE}, RCPTS),
    "transient rcpt": ({"rcpt:a@example.com": "450 4.2.0 try later"}, RCPTS),
}

# Where a disconnect's message depends on timing (EOF seen before or after the next
# write), only the exception type is compared.
TIMING_DEPENDENT_MESSAGE = {"disconnect at mail", "disconnect at second rcpt"}


async def _run(policy: Policy, recipients: list[str], pipelining: bool) -> dict[str, Any]:
    async with PolicyServer(policy) as server:
        client = fastsmtp.SMTP(
            hostname="127.0.0.1", port=server.port, timeout=5, pipelining=pipelining
        )
        outcome: dict[str, Any] = {}
        await client.connect()
        try:
            outcome["result"] = await client.sendmail(SENDER, recipients, MESSAGE)
        except Exception as exc:  # the outcome under comparison
            outcome["error"] = exc
        outcome["connected"] = client.is_connected
        if client.is_connected:
            await client.quit()
        client.close()
        outcome["messages"] = list(server.messages)
        outcome["received"] = server.received
    return outcome


def _transaction_lines(received: bytes) -> list[bytes]:
    """The command lines of the transaction (EHLO and QUIT dropped), body excluded."""
    lines = received.split(b"\r\n")
    return [line for line in lines if line[:4] in (b"MAIL", b"RCPT", b"DATA", b"RSET")]


@pytest.mark.parametrize("name", list(BEHAVIOURS))
async def test_pipelined_and_lockstep_sending_are_equivalent(name: str) -> None:
    replies, recipients = BEHAVIOURS[name]
    lockstep = await _run(Policy(replies=dict(replies)), recipients, pipelining=False)
    pipelined = await _run(Policy(replies=dict(replies)), recipients, pipelining=True)

    assert ("error" in lockstep) == ("error" in pipelined), name
    if "error" in lockstep:
        ours, theirs = pipelined["error"], lockstep["error"]
        assert type(ours) is type(theirs), (name, ours, theirs)
        if isinstance(theirs, fastsmtp.SMTPRecipientsRefused):
            assert [e.args for e in ours.recipients] == [e.args for e in theirs.recipients]
        elif name not in TIMING_DEPENDENT_MESSAGE:
            assert ours.args == theirs.args, name
    else:
        assert pipelined["result"] == lockstep["result"], name
    assert pipelined["messages"] == lockstep["messages"], name
    assert pipelined["connected"] == lockstep["connected"], name
    if "error" not in lockstep:
        # A transaction that went through puts exactly the same bytes on the wire.
        assert pipelined["received"] == lockstep["received"], name
    else:
        # A pipelining client has sent the rest of the batch before it learns of the
        # failure; the commands it sends in the same order are a superset of lockstep's.
        ours_lines = _transaction_lines(pipelined["received"])
        theirs_lines = _transaction_lines(lockstep["received"])
        if b"RSET" in theirs_lines:
            assert ours_lines[-1] == b"RSET", name
        ours_commands = [line for line in ours_lines if line != b"RSET"]
        theirs_commands = [line for line in theirs_lines if line != b"RSET"]
        assert ours_commands[: len(theirs_commands)] == theirs_commands, name


async def test_partial_refusal_is_reported_not_raised() -> None:
    outcome = await _run(
        Policy(replies={"rcpt:b@example.com": "550 5.1.1 no such user"}), RCPTS, pipelining=True
    )
    refused, text = outcome["result"]
    assert refused == {"b@example.com": fastsmtp.SMTPResponse(550, "5.1.1 no such user")}
    assert text == "queued"
    assert outcome["messages"] == [b"Subject: pipelined\r\n\r\nHello.\r\n..dot line\r\n"]


async def test_all_refused_body_never_sent_and_rset() -> None:
    outcome = await _run(Policy(replies={"rcpt": "550 no"}), RCPTS, pipelining=True)
    assert isinstance(outcome["error"], fastsmtp.SMTPRecipientsRefused)
    assert outcome["messages"] == []
    assert b"Hello." not in outcome["received"]
    assert _transaction_lines(outcome["received"])[-1] == b"RSET"
    assert outcome["connected"] is True


async def test_all_refused_but_server_says_354_body_still_never_sent() -> None:
    # A buggy server accepts DATA with no valid recipient. The body must not follow;
    # the server now waits for data, so the connection is closed instead of RSET.
    policy = Policy(replies={"rcpt": "550 no"}, lenient_data=True)
    outcome = await _run(policy, RCPTS, pipelining=True)
    assert isinstance(outcome["error"], fastsmtp.SMTPRecipientsRefused)
    assert b"Hello." not in outcome["received"]
    assert outcome["connected"] is False


async def test_concurrent_sendmails_do_not_interleave() -> None:
    async with (
        PolicyServer() as server,
        fastsmtp.SMTP(hostname="127.0.0.1", port=server.port) as client,
    ):
        results = await asyncio.gather(
            *(
                client.sendmail(SENDER, [f"r{i}@example.com"], b"Subject: %d\r\n\r\nx\r\n" % i)
                for i in range(10)
            ),
            client.noop(),
        )
    assert [r for r in results[:10]] == [({}, "queued")] * 10
    assert sorted(server.messages) == sorted(b"Subject: %d\r\n\r\nx\r\n" % i for i in range(10))


async def test_next_transaction_goes_out_before_the_previous_final_reply() -> None:
    # RFC 2920 section 3.1: the server holds message 1's final reply until message 2's
    # MAIL, RCPT and DATA have arrived. A client that waited for it would stall.
    script = [
        GREETING,
        Expect(b"EHLO"),
        ehlo_reply("PIPELINING"),
        Expect(b"MAIL FROM:<sender@example.com>"),
        Expect(b"RCPT TO:<one@example.com>"),
        Expect(b"DATA"),
        reply("250 ok", "250 ok", "354 go"),
        ExpectData(),
        Expect(b"MAIL FROM:<sender@example.com>"),
        Expect(b"RCPT TO:<two@example.com>"),
        Expect(b"DATA"),
        reply("250 queued as 1", "250 ok", "250 ok", "354 go"),
        ExpectData(),
        reply("250 queued as 2"),
        Expect(b"QUIT"),
        reply("221 bye"),
    ]
    async with ScriptedServer(script) as server:
        async with fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5) as client:
            first, second = await asyncio.gather(
                client.sendmail(SENDER, ["one@example.com"], b"Subject: 1\r\n\r\none\r\n"),
                client.sendmail(SENDER, ["two@example.com"], b"Subject: 2\r\n\r\ntwo\r\n"),
            )
        conn = server.connections[0]
    assert first == ({}, "queued as 1")
    assert second == ({}, "queued as 2")
    assert conn.errors == []


async def test_lockstep_transactions_wait_for_the_final_reply() -> None:
    # The control: the same withholding server, but without PIPELINING. The client
    # must not send message 2's MAIL before message 1's final reply, so it stalls.
    script = [
        GREETING,
        Expect(b"EHLO"),
        ehlo_reply("8BITMIME"),
        Expect(b"MAIL"),
        reply("250 ok"),
        Expect(b"RCPT"),
        reply("250 ok"),
        Expect(b"DATA"),
        reply("354 go"),
        ExpectData(),
        Expect(b"MAIL"),
        reply("250 queued as 1", "250 ok"),
    ]
    async with ScriptedServer(script) as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=0.5)
        await client.connect()
        results = await asyncio.gather(
            client.sendmail(SENDER, ["one@example.com"], b"Subject: 1\r\n\r\none\r\n"),
            client.sendmail(SENDER, ["two@example.com"], b"Subject: 2\r\n\r\ntwo\r\n"),
            return_exceptions=True,
        )
        client.close()
        lines = server.connections[0].lines
    assert isinstance(results[0], fastsmtp.SMTPReadTimeoutError)
    assert results[0].outcome_unknown is True
    assert sum(line.startswith(b"MAIL") for line in lines) == 1



async def test_421_inside_a_pipelined_group_closes_even_if_the_server_does_not() -> None:
    # RFC 5321 section 3.8: a 421 means the server is closing the channel. This one
    # answers MAIL with 421 but keeps the connection open and answers the rest of the
    # group: the client raises as lockstep would, sends nothing more (no RSET), and
    # closes the connection itself.
    script = [
        GREETING,
        Expect(b"EHLO"),
        ehlo_reply("PIPELINING"),
        Expect(b"MAIL FROM:<sender@example.com>"),
        Expect(b"RCPT TO:<a@example.com>"),
        Expect(b"DATA"),
        reply("421 4.3.2 shutting down", "250 a ok", "503 5.5.1 no"),
        Hang(),
    ]
    async with ScriptedServer(script) as server:
        client = fastsmtp.SMTP(hostname="127.0.0.1", port=server.port, timeout=5)
        await client.connect()
        with pytest.raises(fastsmtp.SMTPSenderRefused) as info:
            await client.sendmail(SENDER, ["a@example.com"], MESSAGE)
        assert info.value.code == 421
        assert not client.is_connected
        conn = server.connections[0]
        await asyncio.wait_for(conn.eof.wait(), 5)
        client.close()
    assert conn.lines[-1] == b"DATA\r\n"  # nothing after the group
