"""LMTP's rules in the core (RFC 2033), with bytes alone: LHLO, and one final reply per
accepted recipient, counted by the session and paired by ``_lmtp.judge_deliveries``."""

from __future__ import annotations

from types import ModuleType

import pytest

from fastsmtp._lmtp import judge_deliveries
from fastsmtp._session import Kind, Phase, SMTPSession
from fastsmtp._transaction import MailTransaction
from fastsmtp.errors import LMTPDataError, SMTPDataError
from fastsmtp.response import SMTPResponse

LHLO_REPLY = (
    b"250-lmtp.example.com\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n"
)


def parse(impl: ModuleType, data: bytes) -> list[SMTPResponse]:
    parser = impl.ReplyParser()
    parser.feed(data)
    replies = []
    while (reply := parser.next_reply()) is not impl.NEED_DATA:
        replies.append(reply)
    return replies


def take_batch(session: SMTPSession, replies: list[SMTPResponse]) -> None:
    """Hand over one write's replies at once, as the shell does for a whole batch."""
    session.took(replies, 0)


def take_one_by_one(session: SMTPSession, replies: list[SMTPResponse]) -> list[Kind]:
    return [session.received(reply) for reply in replies]


def greeted(impl: ModuleType, *, lmtp: bool = True) -> SMTPSession:
    session = SMTPSession(lmtp=lmtp)
    take_one_by_one(session, parse(impl, b"220 lmtp.example.com LMTP\r\n"))
    kind = session.kind_of(b"LHLO")
    session.sent((kind,))
    take_one_by_one(session, parse(impl, LHLO_REPLY))
    return session


def test_lhlo_is_the_greeting_of_an_lmtp_session_only(impl: ModuleType) -> None:
    session = greeted(impl)
    assert session.server.greeted
    assert set(session.server.extensions) == {"pipelining", "enhancedstatuscodes", "chunking"}
    assert session.kind_of(b"lhlo") is Kind.EHLO
    # Over SMTP, LHLO is just some command: its reply says nothing about the server.
    smtp = SMTPSession()
    assert smtp.kind_of(b"LHLO") is Kind.COMMAND


@pytest.mark.parametrize("bulk", [False, True])
def test_pipelined_group_owes_one_final_reply_per_accepted_rcpt(
    impl: ModuleType, bulk: bool
) -> None:
    session = greeted(impl)
    kinds = (Kind.MAIL, Kind.RCPT, Kind.RCPT, Kind.RCPT, Kind.DATA)
    session.sent(kinds)
    replies = parse(impl, b"250 ok\r\n250 a\r\n550 5.1.1 b\r\n251 c\r\n354 go\r\n")
    if bulk:
        take_batch(session, replies)
    else:
        assert take_one_by_one(session, replies) == list(kinds)
    assert session.phase is Phase.BODY
    assert session.final_replies == 2
    session.body_sent()
    assert session.phase is Phase.READY
    assert session.owed == [Kind.END, Kind.END]
    finals = parse(impl, b"250 2.0.0 a saved\r\n452 4.2.2 c over quota\r\n")
    assert take_one_by_one(session, finals) == [Kind.END, Kind.END]
    assert session.owed == []
    assert session.received_count == session.sent_count


def test_a_streamed_body_owes_one_final_reply_per_accepted_rcpt(impl: ModuleType) -> None:
    # body_started (a body written in pieces): the final replies are owed from its first
    # byte, and one that comes before the end is an early reply (the server gave up).
    session = greeted(impl)
    session.sent((Kind.MAIL, Kind.RCPT, Kind.RCPT, Kind.DATA))
    take_batch(session, parse(impl, b"250 ok\r\n250 a\r\n250 b\r\n354 go\r\n"))
    session.body_started()
    assert session.owed == [Kind.END, Kind.END]
    assert not session.early_reply
    assert take_one_by_one(session, parse(impl, b"552 5.3.4 a too big\r\n")) == [Kind.END]
    assert session.early_reply and session.phase is Phase.BODY
    assert session.owed == [Kind.END]


@pytest.mark.parametrize("lmtp", [True, False])
@pytest.mark.parametrize("pieces", [False, True])
def test_a_transaction_after_rset_in_one_write_counts_its_rcpts(
    impl: ModuleType, pieces: bool, lmtp: bool
) -> None:
    # A write that starts with RSET (the session's generic path): MAIL starts the count
    # again, and each accepted RCPT (251 as well as 250) counts once, however the replies
    # arrive; DATA's 354 starts the body (over SMTP too).
    session = greeted(impl, lmtp=lmtp)
    session.sent((Kind.MAIL, Kind.RCPT))
    take_batch(session, parse(impl, b"250 ok\r\n250 a\r\n"))
    kinds = (Kind.RSET, Kind.MAIL, Kind.RCPT, Kind.RCPT, Kind.RCPT, Kind.DATA)
    session.sent(kinds)
    replies = parse(impl, b"250 reset\r\n250 ok\r\n250 a\r\n550 b\r\n251 c\r\n354 go\r\n")
    if pieces:
        session.took(replies[:3], 0)
        session.took(replies[:5], 3)
        session.took(replies, 5)
    else:
        take_batch(session, replies)
    assert session.phase is Phase.BODY
    assert session.rcpt_accepted == 2
    assert session.final_replies == (2 if lmtp else 1)


def test_a_rcpt_a_lax_server_accepts_before_any_mail_is_counted(impl: ModuleType) -> None:
    # No MAIL yet: the count starts at zero (a server that accepts RCPT outside a
    # transaction is not an error here; the shell never writes one).
    session = SMTPSession(lmtp=True)
    assert session.rcpt_accepted == 0
    assert session.final_replies == 1
    take_one_by_one(session, parse(impl, b"220 lmtp.example.com LMTP\r\n"))
    session.sent((Kind.RCPT,))  # not even LHLO first
    take_one_by_one(session, parse(impl, b"250 a\r\n"))
    assert session.rcpt_accepted == 1 and session.final_replies == 1


def test_lockstep_rcpt_251_is_accepted(impl: ModuleType) -> None:
    session = greeted(impl)
    session.sent((Kind.MAIL,))
    take_one_by_one(session, parse(impl, b"250 ok\r\n"))
    for reply in (b"251 will forward\r\n", b"252 cannot verify\r\n", b"250 a\r\n"):
        session.sent((Kind.RCPT,))
        take_one_by_one(session, parse(impl, reply))
    assert session.final_replies == 2


def test_many_rcpts_in_one_batch_are_counted(impl: ModuleType) -> None:
    # More than 8 replies at once take the shell's scanning path.
    session = greeted(impl)
    session.sent((Kind.MAIL, *([Kind.RCPT] * 12), Kind.DATA))
    codes = [250, 550, 250, 450, 250, 250, 251, 550, 250, 250, 503, 250]
    data = b"250 ok\r\n" + b"".join(b"%d r\r\n" % code for code in codes) + b"354 go\r\n"
    take_batch(session, parse(impl, data))
    assert session.final_replies == sum(code in (250, 251) for code in codes) == 8


def test_the_batch_may_arrive_in_pieces(impl: ModuleType) -> None:
    session = greeted(impl)
    session.sent((Kind.MAIL, Kind.RCPT, Kind.RCPT, Kind.DATA))
    replies = parse(impl, b"250 ok\r\n250 a\r\n250 b\r\n354 go\r\n")
    session.took(replies[:2], 0)
    session.took(replies[:3], 2)
    session.took(replies, 3)
    assert session.final_replies == 2 and session.phase is Phase.BODY


def test_lockstep_rcpts_are_counted_and_mail_or_rset_starts_again(impl: ModuleType) -> None:
    session = greeted(impl)
    session.sent((Kind.MAIL,))
    take_one_by_one(session, parse(impl, b"250 ok\r\n"))
    for reply in (b"250 a\r\n", b"550 b\r\n", b"250 c\r\n"):
        session.sent((Kind.RCPT,))
        take_one_by_one(session, parse(impl, reply))
    assert session.final_replies == 2
    session.sent((Kind.RSET,))
    take_one_by_one(session, parse(impl, b"250 reset\r\n"))
    assert session.rcpt_accepted == 0
    session.sent((Kind.MAIL, Kind.RCPT))
    take_batch(session, parse(impl, b"250 ok\r\n250 a\r\n"))
    assert session.final_replies == 1


def test_bdat_last_owes_one_reply_per_recipient(impl: ModuleType) -> None:
    session = greeted(impl)
    session.sent((Kind.MAIL, Kind.RCPT, Kind.RCPT, Kind.RCPT))
    take_batch(session, parse(impl, b"250 ok\r\n250 a\r\n250 b\r\n250 c\r\n"))
    session.bdat_sent(last=False)
    session.chunk_written(last=False)
    session.bdat_sent(last=True)
    session.chunk_written(last=True)
    assert session.owed == [Kind.BDAT, Kind.BDAT_LAST, Kind.BDAT_LAST, Kind.BDAT_LAST]
    kinds = take_one_by_one(session, parse(impl, b"250 chunk\r\n250 a\r\n550 b\r\n250 c\r\n"))
    assert kinds == [Kind.BDAT, Kind.BDAT_LAST, Kind.BDAT_LAST, Kind.BDAT_LAST]
    assert session.phase is Phase.READY and session.owed == []


def test_an_smtp_session_owes_one_final_reply_whatever_the_rcpts(impl: ModuleType) -> None:
    session = greeted(impl, lmtp=False)
    session.sent((Kind.MAIL, Kind.RCPT, Kind.RCPT, Kind.DATA))
    take_batch(session, parse(impl, b"250 ok\r\n250 a\r\n250 b\r\n354 go\r\n"))
    assert session.final_replies == 1
    session.body_sent()
    assert session.owed == [Kind.END]


def test_a_421_among_the_final_replies_closes(impl: ModuleType) -> None:
    session = greeted(impl)
    session.sent((Kind.MAIL, Kind.RCPT, Kind.RCPT, Kind.DATA))
    take_batch(session, parse(impl, b"250 ok\r\n250 a\r\n250 b\r\n354 go\r\n"))
    session.body_sent()
    take_one_by_one(session, parse(impl, b"250 a\r\n421 4.3.2 shutting down\r\n"))
    assert session.phase is Phase.CLOSED


def test_transaction_lists_the_accepted_recipients_in_rcpt_order(impl: ModuleType) -> None:
    recipients = ["a@x", "b@x", "a@x", "c@x"]
    transaction = MailTransaction(
        "s@x",
        recipients,
        b"MAIL FROM:<s@x>\r\n",
        [b"RCPT TO:<%s>\r\n" % r.encode() for r in recipients],
    )
    for reply in parse(impl, b"250 ok\r\n250 a\r\n550 b\r\n251 a\r\n250 c\r\n354 go\r\n"):
        transaction.take(reply)
    assert transaction.accepted == ["a@x", "a@x", "c@x"]
    assert list(transaction.refused) == ["b@x"]


# -- judge_deliveries ---------------------------------------------------------------------


def test_mixed_replies_are_paired_with_their_recipients(impl: ModuleType) -> None:
    replies = parse(impl, b"250 2.0.0 a ok\r\n452 4.2.2 b full\r\n550 5.1.1 c gone\r\n250 d ok\r\n")
    deliveries = judge_deliveries(["a@x", "b@x", "c@x", "d@x"], replies)
    assert deliveries.delivered == {"a@x": replies[0], "d@x": replies[3]}
    assert deliveries.refused == {"b@x": replies[1], "c@x": replies[2]}
    assert deliveries.reply == replies[0]


def test_nobody_delivered_raises_with_every_refusal(impl: ModuleType) -> None:
    replies = parse(impl, b"452 4.2.2 a full\r\n550 5.1.1 b gone\r\n")
    before = {"z@x": SMTPResponse(550, "5.1.1 unknown")}
    with pytest.raises(LMTPDataError) as info:
        judge_deliveries(["a@x", "b@x"], replies, before)
    error = info.value
    assert isinstance(error, SMTPDataError)
    assert (error.code, error.message) == (452, "4.2.2 a full")
    assert error.refused == {"z@x": before["z@x"], "a@x": replies[0], "b@x": replies[1]}
    assert error.enhanced_status == "4.2.2"
    assert error.args == (452, "4.2.2 a full", error.refused)


def test_a_single_recipient_refused_is_smtps_data_error(impl: ModuleType) -> None:
    with pytest.raises(SMTPDataError) as info:
        judge_deliveries(["a@x"], parse(impl, b"554 5.6.0 rejected\r\n"))
    assert (info.value.code, info.value.message) == (554, "5.6.0 rejected")


def test_a_recipient_named_twice_and_refused_once_is_refused(impl: ModuleType) -> None:
    replies = parse(impl, b"250 a ok\r\n550 a again\r\n250 b ok\r\n")
    deliveries = judge_deliveries(["a@x", "a@x", "b@x"], replies)
    assert deliveries.refused == {"a@x": replies[1]}
    assert deliveries.delivered == {"b@x": replies[2]}


@pytest.mark.parametrize("count", [0, 1, 3])
def test_a_count_that_does_not_match_is_never_guessed(impl: ModuleType, count: int) -> None:
    replies = parse(impl, b"250 ok\r\n" * count)
    with pytest.raises(ValueError, match="replies after the message"):
        judge_deliveries(["a@x", "b@x"] if count != 0 else [], replies)
