"""SMTPSession with bytes alone: no sockets, no event loop, both parser implementations.

The server's side is raw reply bytes, parsed by the ``impl`` parser and handed to the
session as the shell does; the client's side is what the shell tells the session it wrote.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from fastsmtp._session import Kind, Phase, SMTPSession, Verdict
from fastsmtp._transaction import MailTransaction
from fastsmtp.errors import (
    SMTPDataError,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from fastsmtp.response import SMTPResponse

EHLO_ALL = (
    b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-CHUNKING\r\n"
    b"250-BINARYMIME\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN LOGIN\r\n"
)


class Wire:
    """A session fed by the ``impl`` reply parser, as the shell feeds it."""

    def __init__(self, impl: ModuleType) -> None:
        self.impl = impl
        self.parser = impl.ReplyParser()
        self.session = SMTPSession()

    def replies(self, data: bytes) -> list[tuple[Kind, SMTPResponse]]:
        """Feed ``data``; every complete reply, with what the session says it answers."""
        self.parser.feed(data)
        taken = []
        while True:
            reply = self.parser.next_reply()
            if reply is self.impl.NEED_DATA:
                return taken
            assert self.session.owed, f"unsolicited {reply}"
            taken.append((self.session.received(reply), reply))


def ready(impl: ModuleType, ehlo: bytes = EHLO_ALL) -> Wire:
    wire = Wire(impl)
    wire.replies(b"220 mx.example.com ESMTP\r\n")
    wire.session.sent((Kind.EHLO,))
    wire.replies(ehlo)
    assert wire.session.phase is Phase.READY
    return wire


def test_greeting_then_ehlo_records_the_server(impl: ModuleType) -> None:
    wire = Wire(impl)
    assert wire.session.phase is Phase.GREETING
    assert list(wire.session.owed) == [Kind.GREETING]
    assert wire.replies(b"220 hi\r\n")[0][0] is Kind.GREETING
    assert wire.session.phase is Phase.READY
    assert not wire.session.server.greeted
    wire.session.sent((Kind.EHLO,))
    wire.replies(EHLO_ALL)
    server = wire.session.server
    assert server.greeted and server.supports_esmtp
    assert server.supports("pipelining") and server.extensions["size"] == "1000"
    assert server.auth_methods == ["plain", "login"]


def test_refused_ehlo_records_nothing(impl: ModuleType) -> None:
    wire = Wire(impl)
    wire.replies(b"220 hi\r\n")
    wire.session.sent((Kind.EHLO,))
    wire.replies(b"502 no\r\n")
    assert not wire.session.server.greeted
    assert wire.session.server.extensions == {}


def test_lockstep_transaction_phases(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL,))
    assert session.phase is Phase.TRANSACTION
    wire.replies(b"250 ok\r\n")
    session.sent((Kind.RCPT,))
    wire.replies(b"250 ok\r\n")
    session.sent((Kind.DATA,))
    assert session.phase is Phase.DATA_SENT
    wire.replies(b"354 go\r\n")
    assert session.phase is Phase.BODY
    session.body_started()
    session.body_ended()
    # The final reply is owed, but the wire is in command mode again (RFC 2920 3.1).
    assert session.phase is Phase.READY and list(session.owed) == [Kind.END]
    assert wire.replies(b"250 queued\r\n")[0][0] is Kind.END
    assert not session.owed and not session.early_reply


def test_pipelined_group_is_paired_in_order(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT, Kind.RCPT, Kind.DATA))
    kinds = [kind for kind, _ in wire.replies(b"250 a\r\n250 b\r\n550 c\r\n354 d\r\n")]
    assert kinds == [Kind.MAIL, Kind.RCPT, Kind.RCPT, Kind.DATA]
    assert session.phase is Phase.BODY


def test_refused_mail_closes_no_transaction(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL,))
    wire.replies(b"550 no\r\n")
    assert session.phase is Phase.READY


def test_refused_data_returns_to_the_open_transaction(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT, Kind.DATA))
    wire.replies(b"250 a\r\n250 b\r\n554 no\r\n")
    assert session.phase is Phase.TRANSACTION


def test_refused_mail_then_refused_data_is_ready(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT, Kind.DATA))
    wire.replies(b"550 a\r\n503 b\r\n503 c\r\n")
    assert session.phase is Phase.READY


def test_data_without_mail_stays_ready(impl: ModuleType) -> None:
    wire = ready(impl)
    wire.session.sent((Kind.DATA,))
    wire.replies(b"503 need MAIL\r\n")
    assert wire.session.phase is Phase.READY


def test_a_354_after_a_failed_pipelined_transaction_means_a_body_is_awaited(
    impl: ModuleType,
) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT, Kind.DATA))
    wire.replies(b"550 a\r\n550 b\r\n354 c\r\n")
    assert session.phase is Phase.BODY
    assert session.abandon(0) is Verdict.ABORT


def test_early_reply_during_the_body(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT, Kind.DATA))
    wire.replies(b"250 a\r\n250 b\r\n354 c\r\n")
    session.body_started()
    wire.replies(b"554 too much\r\n")
    assert session.early_reply
    assert session.phase is Phase.BODY


def test_bdat_phases(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT))
    wire.replies(b"250 a\r\n250 b\r\n")
    session.bdat_sent(last=False)
    session.chunk_written(last=False)
    assert session.phase is Phase.BODY
    session.bdat_sent(last=True)
    assert session.abandon(0) is Verdict.ABORT  # a chunk half written
    session.chunk_written(last=True)
    assert session.phase is Phase.READY
    kinds = [kind for kind, _ in wire.replies(b"250 x\r\n250 y\r\n")]
    assert kinds == [Kind.BDAT, Kind.BDAT_LAST]


def test_bdat_stopped_after_a_refusal_keeps_the_transaction(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT))
    wire.replies(b"250 a\r\n250 b\r\n")
    session.bdat_sent(last=False)
    session.chunk_written(last=False)
    wire.replies(b"552 too big\r\n")
    session.bdat_stopped()
    assert session.phase is Phase.TRANSACTION


@pytest.mark.parametrize(
    ("reply", "phase"),
    [
        (b"334 VXNlcm5hbWU6\r\n", Phase.AUTH),
        (b"235 ok\r\n", Phase.READY),
        (b"535 no\r\n", Phase.READY),
    ],
)
def test_auth_phase(impl: ModuleType, reply: bytes, phase: Phase) -> None:
    wire = ready(impl)
    wire.session.sent((Kind.AUTH,))
    assert wire.session.phase is Phase.AUTH
    wire.replies(reply)
    assert wire.session.phase is phase


def test_starttls_forgets_the_server(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.STARTTLS,))
    wire.replies(b"220 go ahead\r\n")
    assert session.phase is Phase.STARTTLS
    assert session.abandon(0) is Verdict.ABORT
    session.tls_established()
    assert session.phase is Phase.READY
    assert not session.server.greeted and session.server.extensions == {}


def test_refused_starttls_stays_ready(impl: ModuleType) -> None:
    wire = ready(impl)
    wire.session.sent((Kind.STARTTLS,))
    wire.replies(b"454 not now\r\n")
    assert wire.session.phase is Phase.READY


def test_421_closes_from_any_phase(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT))
    wire.replies(b"421 bye\r\n")
    assert session.phase is Phase.CLOSED
    with pytest.raises(SMTPServerDisconnected):
        session.sent((Kind.RSET,))


def test_quit(impl: ModuleType) -> None:
    wire = ready(impl)
    wire.session.sent((Kind.QUIT,))
    assert wire.session.abandon(0) is Verdict.ABORT
    wire.replies(b"221 bye\r\n")
    assert wire.session.phase is Phase.CLOSED


# -- the cancellation rule ------------------------------------------------------------


def test_abandon_with_nothing_owed_keeps(impl: ModuleType) -> None:
    wire = ready(impl)
    assert wire.session.abandon(wire.session.sent_count) is Verdict.KEEP


def test_abandon_waiting_for_a_plain_command_keeps(impl: ModuleType) -> None:
    wire = ready(impl)
    start = wire.session.sent_count
    wire.session.sent((Kind.COMMAND,))
    assert wire.session.abandon(start) is Verdict.KEEP
    # The reply still comes, in order, and is taken as the answer to that command.
    assert wire.replies(b"250 noop\r\n")[0][0] is Kind.COMMAND


@pytest.mark.parametrize("answered", [0, 1, 2])
def test_abandon_inside_a_transaction_before_data_resets(impl: ModuleType, answered: int) -> None:
    wire = ready(impl)
    session = wire.session
    start = session.sent_count
    session.sent((Kind.MAIL, Kind.RCPT, Kind.RCPT))
    wire.replies(b"250 ok\r\n" * answered)
    assert session.abandon(start) is Verdict.RESET
    session.sent((Kind.RSET,))
    assert session.phase is Phase.READY
    kinds = [kind for kind, _ in wire.replies(b"250 ok\r\n" * (4 - answered))]
    assert kinds[-1] is Kind.RSET and len(kinds) == 4 - answered


def test_abandon_after_all_replies_of_a_transaction_keeps(impl: ModuleType) -> None:
    # rcpt() refused: the caller saw its reply and knows the transaction is open.
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL,))
    wire.replies(b"250 ok\r\n")
    start = session.sent_count
    session.sent((Kind.RCPT,))
    wire.replies(b"550 no\r\n")
    assert session.abandon(start, informed=True) is Verdict.KEEP


def test_cancelled_after_the_replies_came_resets(impl: ModuleType) -> None:
    # Cancelled when the reply had arrived but before the caller could act on it: the
    # caller does not know whether MAIL was taken, so the transaction is reset.
    wire = ready(impl)
    session = wire.session
    start = session.sent_count
    session.sent((Kind.MAIL,))
    wire.replies(b"250 ok\r\n")
    assert session.abandon(start, informed=False) is Verdict.RESET


@pytest.mark.parametrize(
    "kinds", [(Kind.MAIL, Kind.RCPT, Kind.DATA), (Kind.AUTH,), (Kind.STARTTLS,), (Kind.QUIT,)]
)
def test_abandon_with_data_auth_starttls_or_quit_in_flight_aborts(
    impl: ModuleType, kinds: tuple[Kind, ...]
) -> None:
    wire = ready(impl)
    start = wire.session.sent_count
    wire.session.sent(kinds)
    assert wire.session.abandon(start) is Verdict.ABORT


def test_abandon_while_the_previous_final_reply_is_owed(impl: ModuleType) -> None:
    # A pipelined message's final reply is owed from an earlier turn; this turn wrote
    # nothing yet: keep.
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT, Kind.DATA))
    wire.replies(b"250 a\r\n250 b\r\n354 c\r\n")
    session.body_started()
    session.body_ended()
    assert session.abandon(session.sent_count) is Verdict.KEEP
    # The next transaction's turn, cancelled waiting for its MAIL reply: RSET.
    start = session.sent_count
    session.sent((Kind.MAIL,))
    assert session.abandon(start) is Verdict.RESET


def test_abandon_after_close_keeps(impl: ModuleType) -> None:
    wire = ready(impl)
    wire.session.sent((Kind.DATA,))
    wire.session.closed()
    assert wire.session.abandon(0) is Verdict.ABORT  # closed stays closed
    assert not wire.session.owed


# -- judges and plans ------------------------------------------------------------------


def test_unsolicited() -> None:
    closing = SMTPSession.unsolicited(SMTPResponse(421, "bye"))
    assert isinstance(closing, SMTPServerDisconnected)
    assert str(closing) == "Server closed the connection: 421 bye"
    other = SMTPSession.unsolicited(SMTPResponse(250, "x"))
    assert isinstance(other, SMTPResponseException) and other.code == -1


def test_judge_final() -> None:
    session = SMTPSession()
    assert session.judge_final(SMTPResponse(250, "ok")).message == "ok"
    with pytest.raises(SMTPDataError) as info:
        session.judge_final(SMTPResponse(554, "spam"))
    assert (info.value.code, info.value.message) == (554, "spam")


def test_mail_transaction_judges_as_lockstep(impl: ModuleType) -> None:
    wire = ready(impl)
    transaction = MailTransaction("a@x", ["b@x", "c@x"], b"MAIL\r\n", [b"R1\r\n", b"R2\r\n"])
    assert transaction.kinds == (Kind.MAIL, Kind.RCPT, Kind.RCPT, Kind.DATA)
    wire.session.sent(transaction.kinds)
    replies = wire.replies(b"250 a\r\n550 b\r\n250 c\r\n354 d\r\n")
    for _, reply in replies:
        transaction.take(reply)
    assert transaction.data_accepted and list(transaction.refused) == ["b@x"]
    refused = MailTransaction("a@x", ["b@x"], b"M\r\n", [b"R\r\n"])
    with pytest.raises(SMTPSenderRefused):
        refused.take(SMTPResponse(550, "no"))
    nobody = MailTransaction("a@x", ["b@x"], b"M\r\n", [b"R\r\n"])
    nobody.take(SMTPResponse(250, "ok"))
    with pytest.raises(SMTPRecipientsRefused):
        nobody.take(SMTPResponse(550, "no"))


def test_plan(impl: ModuleType) -> None:
    session = ready(impl).session
    plan = session.plan(utf8=True, binary=False, pipelining=None, chunking=None)
    assert plan.pipelined and plan.chunked and plan.announce_size
    plan = session.plan(utf8=False, binary=False, pipelining=False, chunking=False)
    assert not plan.pipelined and not plan.chunked
    assert session.plan(utf8=False, binary=True, pipelining=None, chunking=None).chunked
    with pytest.raises(ValueError, match="BINARYMIME needs BDAT"):
        session.plan(utf8=False, binary=True, pipelining=None, chunking=False)


def test_plan_refuses_what_the_server_lacks(impl: ModuleType) -> None:
    session = ready(impl, b"250-mx\r\n250 8BITMIME\r\n").session
    assert not session.plan(utf8=False, binary=False, pipelining=None, chunking=None).announce_size
    for kwargs, message in [
        ({"utf8": True}, "SMTPUTF8"),
        ({"pipelining": True}, "PIPELINING"),
        ({"chunking": True}, "CHUNKING"),
        ({"binary": True}, "BINARYMIME"),
    ]:
        args = {"utf8": False, "binary": False, "pipelining": None, "chunking": None, **kwargs}
        with pytest.raises(SMTPNotSupported, match=message):
            session.plan(**args)  # type: ignore[arg-type]


# --- found missing by mutation testing (#19) ------------------------------------------------


def test_counts_follow_every_write_and_reply(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    assert (session.sent_count, session.received_count) == (2, 2)  # greeting and EHLO
    session.sent((Kind.MAIL, Kind.RCPT, Kind.RCPT))
    assert session.sent_count == 5
    wire.replies(b"250 a\r\n250 b\r\n250 c\r\n")
    assert session.received_count == 5
    session.bdat_sent(last=False)
    assert session.sent_count == 6
    session.chunk_written(last=False)
    session.bdat_sent(last=True)
    assert session.sent_count == 7
    session.chunk_written(last=True)
    wire.replies(b"250 x\r\n250 y\r\n")
    assert (session.sent_count, session.received_count) == (7, 7)
    assert session.owed == []


def test_bdat_stopped_changes_nothing_outside_a_body(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.bdat_stopped()  # nothing owed, not in a body: still ready
    assert session.phase is Phase.READY
    session.sent((Kind.MAIL, Kind.RCPT))
    wire.replies(b"250 a\r\n250 b\r\n")
    session.bdat_sent(last=False)
    session.chunk_written(last=False)
    session.bdat_stopped()  # its reply is still owed: the body goes on
    assert session.phase is Phase.BODY


def test_transaction_plans() -> None:
    from fastsmtp._session import TransactionPlan

    plan = TransactionPlan(True, False, True)
    assert (plan.pipelined, plan.chunked, plan.announce_size) == (True, False, True)
    plan = TransactionPlan(False, True, False)
    assert (plan.pipelined, plan.chunked, plan.announce_size) == (False, True, False)


def test_data_body_counts(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT, Kind.DATA))
    wire.replies(b"250 a\r\n250 b\r\n354 go\r\n")
    assert session.phase is Phase.BODY
    session.body_started()
    assert session.early_reply is False
    assert (session.sent_count, session.received_count) == (6, 5)
    session.body_ended()
    wire.replies(b"250 queued\r\n")
    assert session.phase is Phase.READY
    session.sent((Kind.MAIL, Kind.RCPT, Kind.DATA))
    wire.replies(b"250 a\r\n250 b\r\n354 go\r\n")
    session.body_sent()
    assert (session.sent_count, session.received_count) == (10, 9)
    assert session.phase is Phase.READY


@pytest.mark.parametrize(
    "write",
    [
        lambda s: s.sent((Kind.COMMAND,)),
        lambda s: s.sent((Kind.MAIL, Kind.RCPT)),
        lambda s: s.body_started(),
        lambda s: s.body_sent(),
        lambda s: s.bdat_sent(last=True),
    ],
)
def test_writing_after_close_is_a_lost_connection(impl: ModuleType, write: Any) -> None:
    session = ready(impl).session
    session.closed()
    with pytest.raises(SMTPServerDisconnected) as info:
        write(session)
    assert str(info.value) == "Connection lost"
    assert session.phase is Phase.CLOSED


def test_abandon_is_uninformed_by_default(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    start = session.sent_count
    session.sent((Kind.MAIL,))
    wire.replies(b"250 ok\r\n")
    assert session.abandon(start) is Verdict.RESET


def test_informed_abandon_with_replies_owed_by_the_turn_resets(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    start = session.sent_count
    session.sent((Kind.MAIL, Kind.RCPT))
    wire.replies(b"250 ok\r\n")  # the RCPT reply is still owed to this turn
    assert session.abandon(start, informed=True) is Verdict.RESET


def test_informed_abandon_of_a_turn_that_wrote_nothing_keeps(impl: ModuleType) -> None:
    # Replies are owed, but to an earlier turn's writes: this turn knows its state.
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL, Kind.RCPT))
    assert session.abandon(session.sent_count, informed=True) is Verdict.KEEP
    assert session.abandon(session.sent_count) is Verdict.RESET


def test_plan_refusals_are_named_exactly(impl: ModuleType) -> None:
    from fastsmtp.errors import SMTPNotSupported as NotSupported

    session = ready(impl, b"250-mx\r\n250 8BITMIME\r\n").session
    for kwargs, message in [
        ({"pipelining": True}, "PIPELINING is not supported by this server"),
        ({"chunking": True}, "CHUNKING is not supported by this server"),
        ({"binary": True}, "BINARYMIME is not supported by this server"),
    ]:
        args = {"utf8": False, "binary": False, "pipelining": None, "chunking": None, **kwargs}
        with pytest.raises(NotSupported) as info:
            session.plan(**args)  # type: ignore[arg-type]
        assert info.value.args == (message,)
    with pytest.raises(ValueError) as refused:
        session.plan(utf8=False, binary=True, pipelining=None, chunking=False)
    assert str(refused.value) == "BODY=BINARYMIME needs BDAT, but chunking=False"


def test_ehlo_and_helo_end_a_transaction(impl: ModuleType) -> None:
    for kind in (Kind.EHLO, Kind.HELO, Kind.RSET):
        wire = ready(impl)
        session = wire.session
        session.sent((Kind.MAIL,))
        wire.replies(b"250 ok\r\n")
        assert session.phase is Phase.TRANSACTION
        session.sent((kind,))
        assert session.phase is Phase.READY


def test_a_write_of_several_kinds_is_judged_in_order(impl: ModuleType) -> None:
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL,))
    wire.replies(b"250 ok\r\n")
    # A plain command, then RSET, in one write: the RSET still ends the transaction.
    session.sent((Kind.COMMAND, Kind.RSET))
    assert session.phase is Phase.READY
    wire.replies(b"250 noop\r\n250 reset\r\n")
    # RSET then MAIL in one write: a new transaction, whose MAIL was not refused.
    session.sent((Kind.RSET, Kind.MAIL))
    assert session.phase is Phase.TRANSACTION
    wire.replies(b"250 reset\r\n250 ok\r\n")
    session.sent((Kind.RCPT,))
    wire.replies(b"250 ok\r\n")
    session.sent((Kind.DATA,))
    wire.replies(b"554 no\r\n")
    assert session.phase is Phase.TRANSACTION  # a refused DATA leaves the transaction open


@pytest.mark.parametrize("count", [8, 9, 20])
def test_many_replies_handed_over_at_once(impl: ModuleType, count: int) -> None:
    # The shell hands over a pipelined group's replies as they arrive, many at once.
    for codes, phase in [
        ([250] * (count + 1), Phase.TRANSACTION),
        ([250] * (count - 2) + [421] + [250] * 2, Phase.CLOSED),
        ([421] + [250] * count, Phase.CLOSED),
        ([250] * count + [421], Phase.CLOSED),
    ]:
        session = ready(impl).session
        session.sent((Kind.MAIL, *([Kind.RCPT] * count)))
        session.took([SMTPResponse(code, "x") for code in codes], 0)
        assert session.phase is phase
        assert session.owed == []
    # Handed over in two parts: the second part alone holds the 421.
    session = ready(impl).session
    session.sent((Kind.MAIL, *([Kind.RCPT] * count)))
    replies = [SMTPResponse(250, "x")] * count + [SMTPResponse(421, "bye")]
    session.took(replies[:1], 0)
    assert session.phase is Phase.TRANSACTION
    session.took(replies, 1)
    assert session.phase is Phase.CLOSED


def test_mail_answered_251_is_refused(impl: ModuleType) -> None:
    # RFC 5321 section 4.1.1.2: MAIL succeeds with 250 only.
    wire = ready(impl)
    session = wire.session
    session.sent((Kind.MAIL,))
    wire.replies(b"251 odd\r\n")
    assert session.phase is Phase.READY


def test_each_reply_of_a_mixed_write_is_judged(impl: ModuleType) -> None:
    session = ready(impl).session
    session.sent((Kind.EHLO, Kind.MAIL))
    assert session.phase is Phase.TRANSACTION
    session.took([SMTPResponse(250, "mx\nSIZE 10"), SMTPResponse(550, "no")], 0)
    assert session.server.extensions == {"size": "10"}
    assert session.phase is Phase.READY  # the MAIL refusal was judged too


def test_a_421_in_a_mixed_write_closes(impl: ModuleType) -> None:
    session = ready(impl).session
    session.sent((Kind.EHLO, Kind.MAIL))
    session.took([SMTPResponse(250, "mx"), SMTPResponse(421, "bye")], 0)
    assert session.phase is Phase.CLOSED


def test_a_refusing_greeting_leaves_the_session_unready(impl: ModuleType) -> None:
    wire = Wire(impl)
    wire.replies(b"554 no service\r\n")
    assert wire.session.phase is Phase.GREETING


def test_a_new_session_knows_nothing() -> None:
    session = SMTPSession()
    assert session.early_reply is False
    assert session.server.supports_esmtp is False
    assert session.server.extensions == {} and session.server.auth_methods == []
    assert session.owed == [Kind.GREETING]


_GROUP = (Kind.MAIL, Kind.RCPT, Kind.DATA)


def test_end_followed_while_the_next_transaction_waits_behind_a_final_reply(
    impl: ModuleType,
) -> None:
    # RFC 2920 section 3.1: the next transaction's commands may follow an end of data
    # before its final reply; the session says so while that reply is owed.
    wire = ready(impl)
    session = wire.session
    session.sent(_GROUP)
    wire.replies(b"250 ok\r\n250 ok\r\n354 go\r\n")
    session.body_sent()
    assert not session.end_followed()  # the final reply owed, nothing behind it
    session.sent(_GROUP)
    assert session.end_followed()
    assert [kind for kind, _ in wire.replies(b"250 queued\r\n")] == [Kind.END]
    assert not session.end_followed()  # answered: what follows is an ordinary batch
    wire.replies(b"250 ok\r\n250 ok\r\n354 go\r\n")
    session.body_sent()
    session.sent((Kind.QUIT,))
    assert session.end_followed()
    session.closed()
    assert not session.end_followed()
