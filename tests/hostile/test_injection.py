"""security.md §1: command and parameter injection.

Hypothesis drives every string input of the client (sender, recipients, MAIL/RCPT options,
local_hostname, username, VRFY/EXPN argument, OAuth username) with an alphabet heavy in
``\\r \\n \\0 \\x7f < > " space , ; = @ :`` and non-ASCII. Each example runs against a real
(permissive) server and must end one of two ways:

* ``ValueError`` (or a subclass) before anything of that command is written: the server
  then receives only the NOOP the test sends afterwards;
* or every line the server received matches the command grammar, one line per command.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsmtp import SMTP
from tests.conftest import run_coroutine
from tests.hostile.kit import HostileServer, Respond

HOSTILE = [*'\r\n\x00\x7f<>" ,;=@:', "\t", "\x0b", "\x85", "\u2028", "é", "☃", "[", "]"]
ALPHABET = st.sampled_from([*HOSTILE, "a", "b", ".", "-", "x", "\\"]) | st.characters()
hostile_text = st.text(alphabet=ALPHABET, max_size=24)
# Mostly valid shapes with something hostile spliced in, plus free-form text.
inputs = st.one_of(
    hostile_text,
    st.builds(lambda a, b: f"{a}@example.com{b}", hostile_text, hostile_text),
    st.builds(lambda a, b: f"user{a}@{b}example.com", hostile_text, hostile_text),
    st.builds(lambda a: f"a@b.com> {a}", hostile_text),
    st.builds(lambda a, b: f"{a}={b}", hostile_text, hostile_text),
)

# -- the command grammar (RFC 5321 §4.1.1, §4.1.2; RFC 6531 for UTF-8) -----------------------

U = "\u0080-\U0010ffff"
ATEXT = rf"[A-Za-z0-9!#$%&'*+\-/=?^_`{{|}}~{U}]"
DOT_STRING = rf"{ATEXT}+(?:\.{ATEXT}+)*"
QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{U}]|\\[\x20-\x7e])*"'
LABEL = rf"[A-Za-z0-9{U}](?:[A-Za-z0-9\-{U}]*[A-Za-z0-9{U}])?"
DOMAIN = rf"{LABEL}(?:\.{LABEL})*"
LITERAL = r"\[(?:[0-9.]+|IPv6:[0-9A-Fa-f:.]+)\]"
MAILBOX = rf"(?:{DOT_STRING}|{QUOTED})@(?:{DOMAIN}|{LITERAL})"
PARAMS = r"(?: [A-Za-z0-9][A-Za-z0-9-]*(?:=[\x21-\x3c\x3e-\x7e]+)?)*"
TOKEN = r"[\x21-\x7e\u0080-\U0010ffff]+"
B64 = r"[A-Za-z0-9+/]*={0,2}"
GRAMMAR = {
    b"EHLO": re.compile(rf"EHLO {TOKEN}"),
    b"MAIL": re.compile(rf"MAIL FROM:<(?:{MAILBOX})?>{PARAMS}"),
    b"RCPT": re.compile(rf"RCPT TO:<(?:{MAILBOX}|Postmaster)>{PARAMS}", re.IGNORECASE),
    # An empty argument goes out as aiosmtplib sends it, "VRFY " (issue 12): the server
    # refuses it, and it carries no second parameter or command. Nothing else is added.
    b"VRFY": re.compile(rf"VRFY (?:{TOKEN}{PARAMS})?"),
    b"EXPN": re.compile(rf"EXPN (?:{TOKEN}{PARAMS})?"),
    b"AUTH": re.compile(rf"AUTH (?:PLAIN|LOGIN|XOAUTH2) {B64}"),
    b"NOOP": re.compile("NOOP"),
}


def check_lines(received: bytes, verbs: list[bytes]) -> None:
    """``received`` is exactly one CRLF line per expected verb, each matching its grammar."""
    assert received.endswith(b"\r\n"), received
    lines = received[:-2].split(b"\r\n")
    assert len(lines) == len(verbs), (received, verbs)
    for line, verb in zip(lines, verbs, strict=True):
        assert b"\r" not in line and b"\n" not in line and b"\x00" not in line
        if verb == b"B64":  # an AUTH LOGIN continuation: base64 only
            assert re.fullmatch(B64.encode(), line), line
            continue
        text = line.decode("utf-8")  # every byte sent is UTF-8 (or ASCII)
        assert GRAMMAR[verb].fullmatch(text), (verb, text)
        assert not re.search(r"[\x00-\x1f\x7f]", text)


Action = Callable[[SMTP, str], Awaitable[Any]]


async def run(action: Action, value: str, verbs: list[bytes]) -> None:
    async with HostileServer([Respond()]) as server:
        client = SMTP(
            hostname="127.0.0.1",
            port=server.port,
            start_tls=False,
            local_hostname="client.test",
            timeout=3,
        )
        await client.connect()
        await client.ehlo()
        before = len(server.conn.plain)
        try:
            await action(client, value)
        except ValueError:
            refused = True
        else:
            refused = False
        await client.noop()  # a round trip: everything the action wrote has arrived
        received = bytes(server.conn.plain[before:])
        client.close()
        await server.finished()
    if refused:
        assert received == b"NOOP\r\n", (value, received)
    else:
        check_lines(received, [*verbs, b"NOOP"])


def utf8_options(value: str) -> dict[str, Any]:
    return {} if value.isascii() else {"options": ["SMTPUTF8"], "encoding": "utf-8"}


async def mail(client: SMTP, value: str) -> Any:
    return await client.mail(value, **utf8_options(value))


async def rcpt(client: SMTP, value: str) -> Any:
    return await client.rcpt(value, encoding="ascii" if value.isascii() else "utf-8")


async def mail_option(client: SMTP, value: str) -> Any:
    return await client.mail("a@example.com", options=[value])


async def rcpt_option(client: SMTP, value: str) -> Any:
    return await client.rcpt("b@example.com", options=[value])


async def vrfy(client: SMTP, value: str) -> Any:
    return await client.vrfy(value, options=[] if value.isascii() else ["SMTPUTF8"])


async def expn(client: SMTP, value: str) -> Any:
    return await client.expn(value, options=[] if value.isascii() else ["SMTPUTF8"])


async def ehlo(client: SMTP, value: str) -> Any:
    return await client.ehlo(hostname=value)


async def login(client: SMTP, value: str) -> Any:
    return await client.login(value, "pa\r\nss")


async def auth_login(client: SMTP, value: str) -> Any:
    return await client.auth_login(value, "pa\r\nss")


async def oauth(client: SMTP, value: str) -> Any:
    return await client.auth_xoauth2(value, "tok\r\nen")


ACTIONS: dict[str, tuple[Action, list[bytes]]] = {
    "sender": (mail, [b"MAIL"]),
    "recipient": (rcpt, [b"RCPT"]),
    "mail-option": (mail_option, [b"MAIL"]),
    "rcpt-option": (rcpt_option, [b"RCPT"]),
    "vrfy": (vrfy, [b"VRFY"]),
    "expn": (expn, [b"EXPN"]),
    "local-hostname": (ehlo, [b"EHLO"]),
    "username-plain": (login, [b"AUTH"]),
    "username-login": (auth_login, [b"AUTH", b"B64"]),
    "oauth-username": (oauth, [b"AUTH"]),
}


@pytest.mark.parametrize("kind", list(ACTIONS))
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=inputs)
def test_hostile_input_is_refused_or_sent_as_one_well_formed_line(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], kind: str, value: str
) -> None:
    action, verbs = ACTIONS[kind]
    run_coroutine(loop_factory, run(action, value, verbs))


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("sender", "a@b.com> RET=FULL ENVID=x"),
        ("recipient", "b@example.com>\r\nRCPT TO:<evil@example.com"),
        ("recipient", "b@example.com\r\nDATA"),
        ("mail-option", "SIZE=1\r\nRCPT TO:<evil@example.com>"),
        ("mail-option", "RET=FULL ENVID=x"),
        ("vrfy", "alice\r\nEXPN staff"),
        ("local-hostname", "client.test\r\nMAIL FROM:<evil@example.com>"),
        ("sender", "a@b.com\x00"),
        ("sender", "a\x7f@b.com"),
    ],
)
def test_known_injections_are_refused_before_any_write(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], kind: str, value: str
) -> None:
    action, _ = ACTIONS[kind]

    async def refuse(client: SMTP, v: str) -> None:
        with pytest.raises(ValueError):
            await action(client, v)
        raise ValueError("refused")  # let run() check that nothing was written

    run_coroutine(loop_factory, run(refuse, value, []))
