"""SMTPSession at edges found by mutation testing (#19): what a raw verb's reply answers,
the attribute a whole-body write leaves, and the refusal of a body without a 354."""

from __future__ import annotations

from types import ModuleType

import pytest

from fastsmtp._session import Kind, Phase, SMTPSession
from fastsmtp.errors import SMTPException

from .test_session import ready

NO_354 = (
    "The server has not answered DATA with 354 on this connection; the message body was not sent"
)


@pytest.mark.parametrize(
    ("verb", "kind"),
    [
        (b"NOOP", Kind.COMMAND),
        (b"VRFY", Kind.COMMAND),
        (b"BDAT", Kind.COMMAND),  # a raw BDAT is only a command to the session
        (b"XCLIENT", Kind.COMMAND),
        (b"", Kind.COMMAND),
        (b"ehlo", Kind.EHLO),
        (b"Mail", Kind.MAIL),
        (b"STARTTLS", Kind.STARTTLS),
        (b"quit", Kind.QUIT),
    ],
)
def test_kind_of_a_raw_verb(verb: bytes, kind: Kind) -> None:
    assert SMTPSession().kind_of(verb) is kind


def test_a_raw_command_owes_a_command_reply(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((session.kind_of(b"XFOO"),))
    assert session.owed == [Kind.COMMAND]
    assert [kind for kind, _ in wire.replies(b"502 unknown\r\n")] == [Kind.COMMAND]
    assert session.phase is Phase.READY


def test_every_line_in_an_auth_exchange_is_a_sasl_response(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.AUTH,))
    wire.replies(b"334 VXNlcm5hbWU6\r\n")
    assert session.kind_of(b"QUIT") is Kind.AUTH
    assert session.kind_of(b"dXNlcg==") is Kind.AUTH


def test_body_sent_leaves_early_reply_false(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT, Kind.DATA))
    wire.replies(b"250 a\r\n250 b\r\n354 go\r\n")
    session.body_started()
    wire.replies(b"554 no thanks\r\n")  # answered before the end was written
    assert session.early_reply is True
    session.body_ended()
    session.sent((Kind.RSET,))
    wire.replies(b"250 reset\r\n")
    session.sent((Kind.MAIL, Kind.RCPT, Kind.DATA))
    wire.replies(b"250 a\r\n250 b\r\n354 go\r\n")
    session.body_sent()
    assert session.early_reply is False


@pytest.mark.parametrize("write", ["body_started", "body_sent"])
def test_a_body_without_354_is_refused_with_its_reason(impl: ModuleType, write: str) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT, Kind.DATA))
    wire.replies(b"250 a\r\n250 b\r\n")  # the 354 has not come
    with pytest.raises(SMTPException) as info:
        getattr(session, write)()
    assert str(info.value) == NO_354
    assert session.phase is Phase.DATA_SENT


def test_helo_accepted_is_recorded_refused_is_not(impl: ModuleType) -> None:
    from .test_session import Wire

    wire = Wire(impl)
    session = wire.session
    wire.replies(b"220 mx.example.com\r\n")
    session.sent((Kind.HELO,))
    wire.replies(b"501 bad name\r\n")
    assert session.server.last_helo_response is None
    assert not session.server.greeted
    session.sent((Kind.HELO,))
    [(kind, reply)] = wire.replies(b"250 mx.example.com\r\n")
    assert kind is Kind.HELO
    assert session.server.last_helo_response is reply
    assert session.server.greeted
    assert session.server.last_ehlo_response is None
    assert not session.server.supports_esmtp
