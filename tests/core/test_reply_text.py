"""Queue ids and RFC 3463 codes read from reply text: every common final-reply shape, as
bytes parsed by the ``impl`` reply parser, then read through each public way in."""

from __future__ import annotations

import pickle
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastsmtp
from fastsmtp._reply_text import parse_enhanced_status, parse_queue_id
from fastsmtp.errors import SMTPDataError, SMTPRecipientRefused, SMTPResponseException
from fastsmtp.response import SMTPResponse
from fastsmtp.results import RecipientRefusal, SendResult, SendStatus, enhanced_status, queue_id

SHAPES = [
    pytest.param(b"250 2.0.0 Ok: queued as 4Xyz12\r\n", "4Xyz12", id="postfix"),
    pytest.param(
        b"250 2.0.0 Ok: queued as 4bF3Jk0Qm7z9xyZ\r\n", "4bF3Jk0Qm7z9xyZ", id="postfix-long"
    ),
    pytest.param(b"250 OK id=1abcDe-000Abc-Xy\r\n", "1abcDe-000Abc-Xy", id="exim"),
    pytest.param(
        b"250 2.0.0 x9ABC123456 Message accepted for delivery\r\n", "x9ABC123456", id="sendmail"
    ),
    pytest.param(
        b"250 2.6.0 <msgid@host> [InternalId=123, Hostname=EX01.example.com] "
        b"Queued mail for delivery\r\n",
        "123",
        id="exchange",
    ),
    pytest.param(
        b"250 2.6.0 <abc@PR1.eurprd.prod.outlook.com> [InternalId=12345678901234, "
        b"Hostname=AM0PR01MB1234.eurprd01.prod.outlook.com] 9876 bytes in 0.123, "
        b"78.1 KB/sec Queued mail for delivery\r\n",
        "12345678901234",
        id="office365",
    ),
    pytest.param(
        b"250 2.0.0 OK  1700000000 x1si123abc.12 - gsmtp\r\n", "x1si123abc.12", id="gmail"
    ),
    pytest.param(b"250 Ok: queued as AbC123\r\n", "AbC123", id="sendgrid"),
    pytest.param(
        b"250 Ok 0100018abc1234de-5f6a7b8c-1d2e-3f4a-5b6c-7d8e9f0a1b2c-000000\r\n",
        "0100018abc1234de-5f6a7b8c-1d2e-3f4a-5b6c-7d8e9f0a1b2c-000000",
        id="amazon-ses",
    ),
    pytest.param(
        b"250 2.0.0 <user@example.com> EOqBMpJzdGeLCQAAj3n0Dw Saved\r\n",
        "EOqBMpJzdGeLCQAAj3n0Dw",
        id="dovecot-lmtp",
    ),
    pytest.param(
        b"250-2.0.0 message received\r\n250 2.0.0 Ok: queued as 9ZyX\r\n", "9ZyX", id="multiline"
    ),
    pytest.param(b"250 OK\r\n", None, id="aiosmtpd"),
    pytest.param(b"250 2.0.0 Ok\r\n", None, id="plain-ok"),
    pytest.param(b"250 2.0.0 Message accepted for delivery\r\n", None, id="no-id"),
    pytest.param(b"250 2.1.5 Ok\r\n", None, id="rcpt-reply"),
]


def parse_one(impl: ModuleType, data: bytes) -> SMTPResponse:
    parser = impl.ReplyParser()
    parser.feed(data)
    reply = parser.next_reply()
    assert isinstance(reply, SMTPResponse)
    assert parser.next_reply() is impl.NEED_DATA
    return reply


@pytest.mark.parametrize(("data", "expected"), SHAPES)
def test_queue_id_of_each_shape(impl: ModuleType, data: bytes, expected: str | None) -> None:
    reply = parse_one(impl, data)
    assert reply.queue_id == expected
    assert queue_id(reply) == expected
    assert queue_id(reply.message) == expected  # sendmail's returned text
    assert fastsmtp.queue_id is queue_id
    delivered = SendResult(SendStatus.SENT, accepted=["a@x"], reply=reply, attempts=1)
    assert delivered.queue_id == expected


@pytest.mark.parametrize(
    "data",
    [
        b"550 5.7.1 id=1abcDe-000Abc-Xy rejected\r\n",
        b"451 4.3.0 queued as 4Xyz12 but deferred\r\n",
        b"354 End data with <CR><LF>.<CR><LF> queued as X\r\n",
    ],
)
def test_a_reply_that_is_not_a_2yz_has_no_queue_id(impl: ModuleType, data: bytes) -> None:
    reply = parse_one(impl, data)
    assert reply.queue_id is None and queue_id(reply) is None
    assert queue_id(SMTPDataError(reply.code, reply.message)) is None
    failed = SendResult(SendStatus.FAILED_PERMANENTLY, reply=reply, attempts=1)
    assert failed.queue_id is None


def test_the_reply_keeps_aiosmtplibs_shape() -> None:
    reply = SMTPResponse(250, "2.0.0 Ok: queued as 4Xyz12")
    assert reply._fields == ("code", "message")
    assert tuple(reply) == (250, "2.0.0 Ok: queued as 4Xyz12")
    assert repr(reply) == "SMTPResponse(code=250, message='2.0.0 Ok: queued as 4Xyz12')"
    assert pickle.loads(pickle.dumps(reply)) == reply
    with pytest.raises(AttributeError):
        reply.queue_id = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"250 2.0.0 Ok\r\n", "2.0.0"),
        (b"550 5.1.1 <a@x>: Recipient address rejected\r\n", "5.1.1"),
        (b"452 4.2.2 Mailbox full\r\n", "4.2.2"),
        (b"250-2.1.0 first\r\n250 2.1.0 second\r\n", "2.1.0"),
        (b"250 OK\r\n", None),
        (b"550 5.1 short\r\n", None),
        (b"550 5.1.1000 too long a detail\r\n", None),
        (b"550 6.1.1 no such class\r\n", None),
        (b"550 5.1.1x glued\r\n", None),
    ],
)
def test_enhanced_status_everywhere(impl: ModuleType, data: bytes, expected: str | None) -> None:
    reply = parse_one(impl, data)
    assert reply.enhanced_status == expected
    assert enhanced_status(reply) == expected
    assert enhanced_status(reply.message) == expected
    assert fastsmtp.enhanced_status is enhanced_status
    for error in (
        SMTPResponseException(reply.code, reply.message),
        SMTPDataError(reply.code, reply.message),
        SMTPRecipientRefused(reply.code, reply.message, "a@x"),
        fastsmtp.SMTPSenderRefused(reply.code, reply.message, "s@x"),
    ):
        assert error.enhanced_status == expected
        assert enhanced_status(error) == expected
    refusal = RecipientRefusal.from_response(reply, enhanced=True)
    assert refusal.enhanced_status == expected
    assert enhanced_status(None) is None and queue_id(None) is None


def test_an_exceptions_args_are_unchanged() -> None:
    error = SMTPRecipientRefused(550, "5.1.1 gone", "a@x")
    assert error.args == (550, "5.1.1 gone", "a@x")
    assert pickle.loads(pickle.dumps(error)).enhanced_status == "5.1.1"


_TEXT = st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=0x2FF), max_size=200)


@given(
    prefix=st.sampled_from(["", "2.0.0 ", "Ok: queued as ", "OK id=", "Ok ", "<a@b> "]),
    text=_TEXT,
)
def test_whatever_the_text_a_queue_id_is_a_word_of_it(prefix: str, text: str) -> None:
    # A hostile or odd reply text never raises, and what is returned was in the text.
    whole = prefix + text
    found = parse_queue_id(whole)
    assert found is None or (found in whole and found.strip() == found and found)
    status = parse_enhanced_status(whole)
    assert status is None or whole.startswith(status)
