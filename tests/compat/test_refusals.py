"""Issue 12: every refusal of bad input raises what aiosmtplib raises in the same situation.

fastsmtp refuses input aiosmtplib would send (security.md), but code written for aiosmtplib
must keep catching it. Each test runs fastsmtp and the installed aiosmtplib 5.1.3 against the
same kind of server (aiosmtpd on 127.0.0.1, one fresh server per client, so each recording
holds one client's bytes) and checks:

* the class: fastsmtp's exception is an instance of the class aiosmtplib raised (by name,
  fastsmtp's class of that name: ``import fastsmtp as aiosmtplib``) and of ``ValueError``,
  which fastsmtp raised for this input before;
* code and message where there is one;
* the wire: a local refusal writes nothing of its command; harmless input is written
  exactly as aiosmtplib writes it.
"""

from __future__ import annotations

import email.errors
import email.message
import email.policy
from collections.abc import Awaitable, Callable
from typing import Any

import aiosmtplib
import pytest
from tests._servers import RecordingServer, ServerConfig
from tests.client.conftest import _collect_garbage  # noqa: F401  (fixture)

import fastsmtp
from fastsmtp import SMTPPool
from fastsmtp.api import send
from fastsmtp.errors import (
    HeaderInjectionError,
    SMTPAuthenticationRefusedLocally,
    SMTPCommandRefusedLocally,
    SMTPRecipientRefusedLocally,
    SMTPRecipientsRefusedLocally,
    SMTPSenderRefusedLocally,
)
from fastsmtp.results import SendStatus

MESSAGE = b"Subject: hi\r\n\r\nbody\r\n"
REFUSE_BAD = {"bad@example.com": "550 5.1.1 no such user"}
Action = Callable[[Any], Awaitable[Any]]


def fastsmtp_class(cls: type[BaseException]) -> type[BaseException]:
    """fastsmtp's counterpart of an exception class aiosmtplib raised."""
    if cls.__module__.startswith("aiosmtplib"):
        counterpart: type[BaseException] = getattr(fastsmtp.errors, cls.__name__)
        return counterpart
    return cls


class Run:
    """What one client did against its own recording server."""

    def __init__(self, result: Any, error: BaseException | None, server: RecordingServer):
        self.result = result
        self.error = error
        self.lines = [line for conn in server.connections for line in conn.raw_lines]
        self.messages = server.messages
        self.auth_attempts = server.auth_attempts


async def run(lib: Any, action: Action, config: ServerConfig | None = None, **options: Any) -> Run:
    """Connect ``lib``'s SMTP to a fresh server, run ``action``, QUIT; record everything."""
    with RecordingServer(config or ServerConfig(refuse_recipients=dict(REFUSE_BAD))) as server:
        client = lib.SMTP(
            hostname=server.host, port=server.port, start_tls=False, timeout=5, **options
        )
        await client.connect()
        result: Any = None
        error: BaseException | None = None
        try:
            result = await action(client)
        except Exception as exc:
            error = exc
        if client.is_connected:
            await client.quit()
        await server.wait_all_closed()
        return Run(result, error, server)


async def both(action: Action, config: ServerConfig | None = None) -> tuple[Run, Run]:
    return await run(fastsmtp, action, config), await run(aiosmtplib, action, config)


def assert_caught_as_before(fast: Run, aio: Run, *, before: type[BaseException] = ValueError):
    """fastsmtp raised an instance of what aiosmtplib raised and of what it raised before."""
    assert fast.error is not None
    assert aio.error is not None, aio.result
    assert isinstance(fast.error, fastsmtp_class(type(aio.error))), (fast.error, aio.error)
    assert isinstance(fast.error, before)


def commands(run_: Run) -> list[bytes]:
    return [line for line in run_.lines if line[:4].upper() in (b"MAIL", b"RCPT", b"DATA")]


# -- invalid recipients: refused locally, recorded as a server refusal ---------------------


@pytest.mark.parametrize("pipelining", [True, False])
async def test_invalid_recipient_is_refused_locally_and_the_others_still_get_the_message(
    pipelining: bool,
) -> None:
    async def action(client: Any) -> Any:
        return await client.sendmail("a@example.com", ["@@", "ok@example.com"], MESSAGE)

    config = ServerConfig(
        refuse_recipients=dict(REFUSE_BAD), extra_ehlo=("PIPELINING",) if pipelining else ()
    )
    fast = await run(fastsmtp, action, config, pipelining=pipelining)
    aio = await run(aiosmtplib, action, config)
    assert fast.error is None and aio.error is None
    fast_refused, fast_reply = fast.result
    aio_refused, aio_reply = aio.result
    # Same shape as aiosmtplib's result: the bad recipient refused with a 5yz, the
    # message delivered to the other one.
    assert set(fast_refused) == set(aio_refused) == {"@@"}
    refusal = fast_refused["@@"]
    assert isinstance(refusal, fastsmtp.SMTPResponse)
    assert refusal.code == 553
    assert refusal.message.startswith("5.1.3 Invalid email address '@@': ")
    assert refusal.message.endswith("(refused by fastsmtp; nothing was sent)")
    assert fast_reply == aio_reply
    assert [m.rcpt_tos for m in fast.messages] == [["ok@example.com"]]
    # Never written: aiosmtplib sends RCPT TO:<@@>, fastsmtp does not.
    assert b"RCPT TO:<@@>" in aio.lines
    assert not any(b"@@" in line for line in fast.lines)


async def test_every_recipient_invalid_raises_recipients_refused_and_writes_nothing() -> None:
    fast, aio = await both(lambda c: c.sendmail("a@example.com", ["@@", "x y@b.com"], MESSAGE))
    # aiosmtplib refuses "x y@b.com" itself (ValueError); fastsmtp's exception is that and
    # the SMTPRecipientsRefused aiosmtplib raises for "@@" alone.
    assert_caught_as_before(fast, aio)
    assert isinstance(fast.error, fastsmtp.SMTPRecipientsRefused)
    assert isinstance(fast.error, SMTPRecipientsRefusedLocally)
    only_at, aio_only_at = await both(lambda c: c.sendmail("a@example.com", ["@@"], MESSAGE))
    assert_caught_as_before(only_at, aio_only_at)
    assert isinstance(aio_only_at.error, aiosmtplib.SMTPRecipientsRefused)
    error = only_at.error
    assert isinstance(error, SMTPRecipientsRefusedLocally)
    assert [type(e) for e in error.recipients] == [SMTPRecipientRefusedLocally]
    (refusal,) = error.recipients
    assert isinstance(refusal, fastsmtp.SMTPRecipientRefused) and isinstance(refusal, ValueError)
    assert (refusal.code, refusal.recipient) == (553, "@@")
    assert error.args == (error.recipients,)
    # Nothing of the transaction was written (aiosmtplib: MAIL, RCPT, RSET).
    assert commands(only_at) == []
    assert [line.split(b" ")[0] for line in commands(aio_only_at)] == [b"MAIL", b"RCPT"]


async def test_local_and_server_refusals_together_are_collected_in_one_exception() -> None:
    fast, aio = await both(
        lambda c: c.sendmail("a@example.com", ["@@", "bad@example.com"], MESSAGE)
    )
    assert_caught_as_before(fast, aio)
    assert isinstance(fast.error, SMTPRecipientsRefusedLocally)
    assert isinstance(aio.error, aiosmtplib.SMTPRecipientsRefused)
    assert sorted(e.recipient for e in fast.error.recipients) == ["@@", "bad@example.com"]
    codes = {e.recipient: e.code for e in fast.error.recipients}
    assert codes == {"@@": 553, "bad@example.com": 550}
    # The server's refusal was real: RCPT for it, then RSET, as aiosmtplib does.
    assert [line.split(b" ")[0] for line in fast.lines[1:]] == [b"MAIL", b"RCPT", b"RSET", b"QUIT"]


async def test_rcpt_refuses_locally_with_recipient_refused_and_writes_nothing() -> None:
    async def action(client: Any) -> Any:
        await client.ehlo()
        await client.mail("a@example.com")
        return await client.rcpt("@@")

    fast, aio = await both(action)
    assert_caught_as_before(fast, aio)
    assert isinstance(fast.error, SMTPRecipientRefusedLocally)
    assert fast.error.recipient == "@@" and fast.error.code == 553
    assert fast.lines[-2].startswith(b"MAIL FROM:<a@example.com>")  # then QUIT, no RCPT
    assert b"RCPT TO:<@@>" in aio.lines


@pytest.mark.parametrize("option", ["a b", "NOTIFY=x\r\nRSET"])
async def test_bad_rcpt_option_refuses_every_recipient_before_anything_is_written(
    option: str,
) -> None:
    with RecordingServer() as server:
        async with fastsmtp.SMTP(hostname=server.host, port=server.port, start_tls=False) as c:
            with pytest.raises(SMTPRecipientsRefusedLocally) as info:
                await c.sendmail("a@example.com", ["b@example.com"], MESSAGE, rcpt_options=[option])
        await server.wait_all_closed()
    assert isinstance(info.value, ValueError)
    assert info.value.recipients[0].code == 501
    assert "MAIL" not in server.verbs


# -- invalid senders ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.sendmail("@@", ["ok@example.com"], MESSAGE),
        lambda c: c.mail("@@"),
    ],
    ids=["sendmail", "mail"],
)
async def test_invalid_sender_raises_sender_refused_before_anything_is_written(call: Action):
    fast, aio = await both(call)
    assert_caught_as_before(fast, aio)
    assert isinstance(aio.error, aiosmtplib.SMTPSenderRefused)  # the server's refusal
    error = fast.error
    assert isinstance(error, SMTPSenderRefusedLocally)
    assert (error.code, error.sender) == (553, "@@")
    assert error.message.startswith("5.1.7 Invalid email address '@@': ")
    assert error.args == (553, error.message, "@@")
    assert commands(fast) == []
    assert any(line.startswith(b"MAIL FROM:<@@>") for line in aio.lines)


async def test_send_message_with_an_invalid_sender_writes_nothing_at_all() -> None:
    message = email.message.EmailMessage()
    message["To"] = "ok@example.com"
    message.set_content("hi")
    fast, aio = await both(lambda c: c.send_message(message, sender="a b@example.com"))
    assert_caught_as_before(fast, aio)  # aiosmtplib: ValueError from parse_address
    assert isinstance(fast.error, fastsmtp.SMTPSenderRefused)
    assert fast.lines == [b"QUIT"]  # not even EHLO


async def test_bad_mail_option_is_a_sender_refusal() -> None:
    fast, aio = await both(lambda c: c.mail("a@example.com", options=["SIZE=1\r\nRSET"]))
    assert_caught_as_before(fast, aio)  # aiosmtplib: ValueError (control character)
    assert isinstance(fast.error, SMTPSenderRefusedLocally)
    assert fast.error.code == 501 and fast.error.message.startswith("5.5.4 ")
    assert commands(fast) == []


# -- non-ASCII mailboxes without SMTPUTF8: UnicodeEncodeError, as aiosmtplib -------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.mail("tést@exåmple.com"),
        lambda c: c.rcpt("tést@exåmple.com"),
        lambda c: c.sendmail("tést@exåmple.com", ["ok@example.com"], MESSAGE),
        lambda c: c.sendmail("a@example.com", ["ok@example.com", "tést@exåmple.com"], MESSAGE),
    ],
    ids=["mail", "rcpt", "sendmail-sender", "sendmail-recipient"],
)
async def test_non_ascii_mailbox_without_smtputf8_raises_unicode_encode_error(call: Action):
    fast, aio = await both(call)
    assert type(aio.error) is UnicodeEncodeError
    assert_caught_as_before(fast, aio)
    error = fast.error
    assert isinstance(error, UnicodeEncodeError)
    assert error.encoding == "ascii" and error.object == "tést@exåmple.com"
    assert error.object[error.start : error.end] == "é"
    assert "SMTPUTF8" in error.reason
    assert commands(fast) == []


# -- VRFY / EXPN: harmless input goes out as aiosmtplib sends it --------------------------


@pytest.mark.parametrize("verb", ["vrfy", "expn"])
@pytest.mark.parametrize("argument", ["", "  ", "@@", "<x@example.com>", "Name <x@example.com>"])
async def test_harmless_vrfy_expn_arguments_reach_the_server_as_aiosmtplib_sends_them(
    verb: str, argument: str
) -> None:
    fast, aio = await both(lambda c: getattr(c, verb)(argument))
    assert fast.lines == aio.lines  # byte for byte, "VRFY " for an empty argument included
    if aio.error is None:
        assert fast.error is None and fast.result == aio.result
    else:
        assert type(aio.error) is aiosmtplib.SMTPResponseException
        assert type(fast.error) is fastsmtp.SMTPResponseException
        assert fast.error.args == aio.error.args  # the server's own code and text


@pytest.mark.parametrize(
    "argument", ["a\r\nRSET", "a\nb", "a\x00b", "a\tb", "a b", "x@example.com> SMTPUTF8"]
)
async def test_vrfy_arguments_that_could_inject_are_refused_locally(argument: str) -> None:
    fast, aio = await both(lambda c: c.vrfy(argument))
    error = fast.error
    assert isinstance(error, SMTPCommandRefusedLocally)
    assert isinstance(error, ValueError) and isinstance(error, fastsmtp.SMTPResponseException)
    assert error.code == 501 and error.message.startswith("5.5.4 ")
    if aio.error is not None:  # aiosmtplib refuses control bytes itself: with ValueError
        assert isinstance(error, fastsmtp_class(type(aio.error)))
    assert not any(line.startswith(b"VRFY") for line in fast.lines)


# -- headers: HeaderWriteError where Python has it, ValueError always ---------------------

HEADER_WRITE_ERROR = getattr(email.errors, "HeaderWriteError", None)
ENVELOPE_HEADERS = ["From", "To", "Cc", "Bcc", "Sender", "Resent-From", "Resent-To"]


def injected_message(header: str) -> email.message.Message:
    message = email.message.Message()  # compat32: values are not checked on assignment
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    if header.startswith("Resent-"):
        message["Resent-Date"] = "Mon, 30 Nov 2026 08:00:00 +0000"
        message["Resent-From"] = "a@example.com"
        message["Resent-To"] = "b@example.com"
    del message[header]
    message[header] = "c@example.com\r\nRCPT TO:<x@example.com>"
    message.set_payload("hi\n")
    return message


def assert_header_refusal(error: BaseException | None) -> None:
    assert isinstance(error, HeaderInjectionError)
    assert isinstance(error, ValueError)  # what fastsmtp raised before
    if HEADER_WRITE_ERROR is not None:
        assert isinstance(error, HEADER_WRITE_ERROR)  # what aiosmtplib code there suppresses
    else:
        assert not isinstance(error, fastsmtp.SMTPException)


@pytest.mark.parametrize("header", ENVELOPE_HEADERS)
async def test_header_value_injection_raises_header_write_error_and_value_error(
    header: str,
) -> None:
    fast = await run(fastsmtp, lambda c: c.send_message(injected_message(header)))
    assert_header_refusal(fast.error)
    assert fast.lines == [b"QUIT"]
    aio = await run(aiosmtplib, lambda c: c.send_message(injected_message(header)))
    if aio.error is not None:  # HeaderWriteError where this Python's generator raises it
        assert_caught_as_before(fast, aio)


def named(name: str, kind: str) -> email.message.Message:
    if kind == "compat32":
        message = email.message.Message()
        message["From"] = "a@example.com"
        message["To"] = "b@example.com"
        message[name] = "v"
        message.set_payload("hi\n")
        return message
    modern = email.message.EmailMessage()
    modern["From"] = "a@example.com"
    modern["To"] = "b@example.com"
    modern.set_content("hi")
    if kind == "set_raw":
        modern.set_raw(name, "v")  # type: ignore[arg-type]
    else:  # a policy whose header_store_parse keeps the name as given
        modern.policy = email.policy.SMTP.clone(raise_on_defect=False)
        modern._headers.append(modern.policy.header_store_parse(name, "v"))
    return modern


BAD_NAMES = ["X-A: 1\r\nX-Injected", "X-A\nBcc", "X-A\rB", "X:Y", "X Y", "X-\x00", "Sübject", ""]


@pytest.mark.parametrize("kind", ["compat32", "set_raw", "policy"])
@pytest.mark.parametrize("name", BAD_NAMES)
async def test_header_names_outside_rfc5322_are_refused_before_anything_is_written(
    kind: str, name: str
) -> None:
    message = named(name, kind)
    fast = await run(fastsmtp, lambda c: c.send_message(message))
    assert_header_refusal(fast.error)
    assert fast.lines == [b"QUIT"]
    aio = await run(aiosmtplib, lambda c: c.send_message(message))
    if aio.error is not None:  # HeaderWriteError where this Python's generator raises it
        assert_caught_as_before(fast, aio)


@pytest.mark.parametrize("name", ["X-A: 1\r\nX-Injected", "X:Y"])
async def test_header_names_are_checked_by_send_and_the_pool(name: str) -> None:
    message = named(name, "set_raw")
    with RecordingServer() as server:
        with pytest.raises(HeaderInjectionError):
            await send(message, hostname=server.host, port=server.port, start_tls=False)
        async with SMTPPool(hostname=server.host, port=server.port, start_tls=False) as pool:
            with pytest.raises(HeaderInjectionError):
                await pool.send_message(message)
            (result,) = await pool.send_many([message])
        await server.wait_all_closed()
    assert result.status is SendStatus.FAILED_PERMANENTLY
    assert isinstance(result.exception, HeaderInjectionError)
    assert server.messages == []
    assert "MAIL" not in server.verbs and "DATA" not in server.verbs


async def test_well_formed_header_names_still_go_out() -> None:
    message = named("X-Custom_Header.1!~", "compat32")
    fast = await run(fastsmtp, lambda c: c.send_message(message))
    assert fast.error is None
    assert b"X-Custom_Header.1!~: v" in fast.messages[0].content


# -- extract_recipients: a sequence assigned to an address header -------------------------


async def test_extract_recipients_of_a_tuple_header_matches_aiosmtplib() -> None:
    message = email.message.EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = ("me@example.com", "you")
    message.set_content("hi")
    assert fastsmtp.email.extract_recipients(message) == ["me@example.com", "you"]
    assert fastsmtp.email.extract_recipients(message) == aiosmtplib.email.extract_recipients(
        message
    )
    # Sent: aiosmtplib writes RCPT TO:<you> (this lenient server even takes it);
    # fastsmtp refuses "you" locally and reports it, and "me" gets the message.
    fast, aio = await both(lambda c: c.send_message(message))
    assert fast.error is None and aio.error is None
    assert list(fast.result[0]) == ["you"] and fast.result[0]["you"].code == 553
    assert [m.rcpt_tos for m in fast.messages] == [["me@example.com"]]
    assert [m.rcpt_tos for m in aio.messages] == [["me@example.com", "you"]]
    assert not any(b"<you>" in line for line in fast.lines)


# -- AUTH credentials that would add SASL fields ------------------------------------------

AUTH = ServerConfig(
    auth_mechanisms=("PLAIN", "LOGIN", "XOAUTH2", "CRAM-MD5"),
    users={"user": "secret"},
    oauth_tokens={"user": "token"},
)


@pytest.mark.parametrize(
    ("call", "secret"),
    [
        (lambda c: c.auth_plain("us\x00er", "secret"), "us\x00er"),
        (lambda c: c.auth_plain("user", "sec\x00ret"), "sec\x00ret"),
        (lambda c: c.auth_xoauth2("user\x01auth=Bearer x", "token"), "user\x01auth"),
        (lambda c: c.auth_xoauth2("user", "tok\x01en"), "tok\x01en"),
        (lambda c: c.login("us\x00er", "secret"), "us\x00er"),
        (lambda c: c.login("user", b"sec\x00ret"), "sec\x00ret"),
        (lambda c: c.auth_login("us\x00er", "secret"), "us\x00er"),
        (lambda c: c.auth_crammd5("user", "sec\x00ret"), "sec\x00ret"),
    ],
    ids=[
        "plain-user",
        "plain-password",
        "xoauth2-user",
        "xoauth2-token",
        "login-user",
        "login-password",
        "auth-login",
        "cram-md5",
    ],
)
async def test_credentials_with_a_field_separator_are_refused_before_auth_is_written(
    call: Action, secret: str
) -> None:
    async def action(client: Any) -> Any:
        await client.ehlo()
        return await call(client)

    fast = await run(fastsmtp, action, AUTH)
    error = fast.error
    assert isinstance(error, SMTPAuthenticationRefusedLocally)
    # What aiosmtplib code catches around login, and a ValueError like any bad input.
    assert isinstance(error, fastsmtp.SMTPAuthenticationError) and isinstance(error, ValueError)
    assert error.code == 501 and "refused by fastsmtp; nothing was sent" in error.message
    assert secret not in str(error) and secret not in repr(error.args)
    assert not any(line.upper().startswith(b"AUTH") for line in fast.lines)
    assert fast.auth_attempts == []


async def test_good_credentials_still_log_in() -> None:
    async def action(client: Any) -> Any:
        await client.ehlo()
        return await client.login("user", "secret")

    fast = await run(fastsmtp, action, AUTH)
    assert fast.error is None and fast.result.code == 235


# -- the pool reports local refusals per recipient ----------------------------------------


async def test_pool_reports_a_locally_refused_recipient_and_sender() -> None:
    with RecordingServer(ServerConfig(refuse_recipients=dict(REFUSE_BAD))) as server:
        async with SMTPPool(hostname=server.host, port=server.port, start_tls=False) as pool:
            results = await pool.send_many(
                [
                    (MESSAGE, "a@example.com", ["@@", "ok@example.com", "bad@example.com"]),
                    (MESSAGE, "@@", ["ok@example.com"]),
                    (MESSAGE, "a@example.com", ["@@"]),
                ]
            )
            with pytest.raises(SMTPSenderRefusedLocally):
                await pool.sendmail("@@", ["ok@example.com"], MESSAGE)
        await server.wait_all_closed()
    partial, bad_sender, no_recipient = results
    assert partial.status is SendStatus.PARTIALLY_SENT
    assert partial.accepted == ["ok@example.com"]
    assert set(partial.refused) == {"@@", "bad@example.com"}
    local = partial.refused["@@"]
    assert local.code == 553 and local.permanent
    assert local.text.endswith("(refused by fastsmtp; nothing was sent)")
    assert partial.refused["bad@example.com"].code == 550
    assert bad_sender.status is SendStatus.FAILED_PERMANENTLY
    assert isinstance(bad_sender.exception, SMTPSenderRefusedLocally)
    assert no_recipient.status is SendStatus.FAILED_PERMANENTLY
    assert isinstance(no_recipient.exception, SMTPRecipientsRefusedLocally)
    assert no_recipient.refused["@@"].code == 553
    assert [m.rcpt_tos for m in server.messages] == [["ok@example.com"]]
    assert not any(b"@@" in line for conn in server.connections for line in conn.raw_lines)


def test_new_classes_keep_every_class_fastsmtp_raised_before() -> None:
    for cls, before in [
        (SMTPSenderRefusedLocally, (fastsmtp.SMTPSenderRefused, ValueError)),
        (SMTPRecipientRefusedLocally, (fastsmtp.SMTPRecipientRefused, ValueError)),
        (SMTPRecipientsRefusedLocally, (fastsmtp.SMTPRecipientsRefused, ValueError)),
        (SMTPCommandRefusedLocally, (fastsmtp.SMTPResponseException, ValueError)),
        (SMTPAuthenticationRefusedLocally, (fastsmtp.SMTPAuthenticationError, ValueError)),
        (HeaderInjectionError, (ValueError,)),
    ]:
        assert issubclass(cls, before)
    # Not added to aiosmtplib's __all__ (the surface stays aiosmtplib's).
    assert not {"SMTPSenderRefusedLocally", "HeaderInjectionError"} & set(fastsmtp.errors.__all__)
