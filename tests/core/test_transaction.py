"""fastsmtp._transaction without I/O: the reply judge and the BDAT line-ending normaliser.

Found missing by mutation testing (issue #19): each test here fails on a mutant of the
module that the rest of the suite let through.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastsmtp._session import Kind
from fastsmtp._transaction import DATA, LineEndings, MailTransaction
from fastsmtp.errors import (
    SMTPDataError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from fastsmtp.response import SMTPResponse

OK = SMTPResponse(250, "ok")
GO = SMTPResponse(354, "go ahead")


def transaction(recipients: list[str], *, data: bool = True) -> MailTransaction:
    rcpts = [f"RCPT TO:<{r}>\r\n".encode() for r in recipients]
    return MailTransaction("s@x", recipients, b"MAIL FROM:<s@x>\r\n", rcpts, data=data)


# --- the commands and their kinds ----------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2, 16, 17, 40])
def test_commands_and_kinds(count: int) -> None:
    recipients = [f"r{i}@x" for i in range(count)]
    for data in (True, False):
        t = transaction(recipients, data=data)
        rcpts = [f"RCPT TO:<{r}>\r\n".encode() for r in recipients]
        with_data = data and count > 0
        assert t.commands == [b"MAIL FROM:<s@x>\r\n", *rcpts, *([DATA] if with_data else [])]
        assert t.kinds == (
            Kind.MAIL,
            *([Kind.RCPT] * count),
            *([Kind.DATA] if with_data else []),
        )
        # Asked again (the shapes are cached): the same answer.
        assert transaction(recipients, data=data).kinds == t.kinds
        assert (t.refused, t.server_closing, t.data_accepted) == ({}, False, False)
    assert DATA == b"DATA\r\n"


# --- the judge -----------------------------------------------------------------------------


def test_refused_data_raises_the_data_error() -> None:
    t = transaction(["a@x"])
    t.take(OK)
    t.take(OK)
    with pytest.raises(SMTPDataError) as info:
        t.take(SMTPResponse(554, "5.7.1 no thanks"))
    assert info.value.args == (554, "5.7.1 no thanks")
    assert not t.data_accepted


def test_accepted_data() -> None:
    t = transaction(["a@x"])
    t.take(OK)
    t.take(OK)
    t.take(GO)
    assert t.data_accepted
    assert t.refused == {}


@pytest.mark.parametrize("code", [251, 421, 451, 550])
def test_refused_sender(code: int) -> None:
    t = transaction(["a@x"])
    with pytest.raises(SMTPSenderRefused) as info:
        t.take(SMTPResponse(code, "no"))
    assert info.value.args == (code, "no", "s@x")


def test_no_recipients_fails_after_mail() -> None:
    t = transaction([])
    with pytest.raises(SMTPRecipientsRefused) as info:
        t.take(OK)
    assert info.value.recipients == []


def test_recipient_codes() -> None:
    t = transaction(["a@x", "b@x", "c@x", "d@x"])
    t.take(OK)
    t.take(SMTPResponse(250, "fine"))
    t.take(SMTPResponse(251, "forwarded"))
    t.take(SMTPResponse(252, "cannot verify"))
    t.take(SMTPResponse(550, "unknown"))
    assert t.refused == {
        "c@x": SMTPResponse(252, "cannot verify"),
        "d@x": SMTPResponse(550, "unknown"),
    }
    t.take(GO)
    assert t.data_accepted


def test_every_recipient_refused_raises_once_all_answered() -> None:
    t = transaction(["a@x", "b@x"])
    t.take(OK)
    t.take(SMTPResponse(550, "first"))  # one of two: nothing raised yet
    with pytest.raises(SMTPRecipientsRefused) as info:
        t.take(SMTPResponse(451, "second"))
    errors = info.value.recipients
    assert [type(e) for e in errors] == [SMTPRecipientRefused, SMTPRecipientRefused]
    assert [e.args for e in errors] == [(550, "first", "a@x"), (451, "second", "b@x")]


def test_last_recipient_refused_alone_does_not_raise() -> None:
    t = transaction(["a@x", "b@x"])
    t.take(OK)
    t.take(OK)
    t.take(SMTPResponse(550, "no"))
    assert list(t.refused) == ["b@x"]


def test_421_is_reported_as_the_next_command_finding_no_connection() -> None:
    # The reply itself is judged (a 421 to RCPT is a refusal), then every later
    # command finds the connection gone, named as lockstep sending names it.
    t = transaction(["a@x", "b@x"])
    t.take(OK)
    t.take(SMTPResponse(421, "closing"))
    assert t.server_closing
    assert t.refused == {"a@x": SMTPResponse(421, "closing")}
    with pytest.raises(SMTPServerDisconnected) as info:
        t.take(OK)
    assert str(info.value) == "Server not connected"
    with pytest.raises(SMTPServerDisconnected, match=r"^Server not connected$"):
        t.check_open()


def test_421_to_the_last_rcpt_then_data_is_a_lost_connection() -> None:
    # SMTP.data() after a 421 to the last RCPT: the DATA command finds the connection lost.
    t = transaction(["a@x", "b@x"], data=False)
    t.take(OK)
    t.take(OK)
    t.take(SMTPResponse(421, "closing"))
    with pytest.raises(SMTPServerDisconnected) as info:
        t.check_open()
    assert str(info.value) == "Connection lost"


def test_421_to_mail() -> None:
    t = transaction(["a@x"])
    with pytest.raises(SMTPSenderRefused):
        t.take(SMTPResponse(421, "closing"))
    assert t.server_closing
    with pytest.raises(SMTPServerDisconnected, match=r"^Server not connected$"):
        t.check_open()


def test_check_open_is_quiet_while_open() -> None:
    t = transaction(["a@x"])
    t.check_open()
    t.take(OK)
    t.check_open()
    t.take(OK)
    t.check_open()


# --- BDAT line endings (RFC 3030 section 3; no dot-stuffing) -------------------------------


def normalise(chunks: list[bytes]) -> list[bytes]:
    endings = LineEndings()
    return [endings.normalise(chunk) for chunk in chunks]


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"a\r\nb"], [b"a\r\nb"]),
        ([b"a\nb"], [b"a\r\nb"]),
        ([b"a\rb"], [b"a\r\nb"]),
        ([b"a\r\r\nb\n\rc"], [b"a\r\n\r\nb\r\n\r\nc"]),
        ([b"\n.\n"], [b"\r\n.\r\n"]),
        # CR at the end of one chunk, LF at the start of the next: one line break.
        ([b"a\r", b"\nb"], [b"a\r\n", b"b"]),
        ([b"a\r", b"\n"], [b"a\r\n", b""]),
        ([b"a\r", b"\n\nb"], [b"a\r\n", b"\r\nb"]),
        ([b"a\r", b"\r\nb"], [b"a\r\n", b"\r\nb"]),
        ([b"a\r", b"b"], [b"a\r\n", b"b"]),
        # A chunk that starts with LF after one that did not end in CR: its own break.
        ([b"a", b"\nb"], [b"a", b"\r\nb"]),
        ([b"a\n", b"\nb"], [b"a\r\n", b"\r\nb"]),
        # An empty chunk between the CR and the LF changes nothing.
        ([b"a\r", b"", b"\nb"], [b"a\r\n", b"", b"b"]),
        ([b"", b"a"], [b"", b"a"]),
        ([b"a\r", b"\n", b"\nb"], [b"a\r\n", b"", b"\r\nb"]),
        # The pending CR is forgotten once a chunk has been seen.
        ([b"a\r", b"b", b"\nc"], [b"a\r\n", b"b", b"\r\nc"]),
        ([b"\r", b"\r", b"\n"], [b"\r\n", b"\r\n", b""]),
    ],
)
def test_line_endings(chunks: list[bytes], expected: list[bytes]) -> None:
    assert normalise(chunks) == expected


@given(st.lists(st.binary(max_size=12).map(lambda b: b.translate(bytes.maketrans(b"ab", b"\r\n")))))
def test_line_endings_do_not_depend_on_the_chunking(chunks: list[bytes]) -> None:
    whole = b"".join(chunks)
    joined = b"".join(normalise(chunks))
    assert joined == b"".join(normalise([whole]))
    # The one-shot form: every CRLF, bare CR and bare LF is one CRLF.
    assert joined == whole.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def test_recipients_refused_locally_are_in_refused_with_their_reply() -> None:
    # sendmail() returns them in its refused dict, as a server's refusal would be.
    from fastsmtp.errors import SMTPRecipientRefusedLocally, SMTPRecipientsRefusedLocally

    bad = SMTPRecipientRefusedLocally(553, "5.1.3 bad address", "bad@")
    t = MailTransaction("s@x", ["r@x"], b"MAIL FROM:<s@x>\r\n", [b"RCPT TO:<r@x>\r\n"], local=[bad])
    assert t.refused == {"bad@": SMTPResponse(553, "5.1.3 bad address")}
    t.take(OK)
    t.take(OK)
    t.take(GO)
    assert t.refused == {"bad@": SMTPResponse(553, "5.1.3 bad address")}
    # All refused (the server refuses the other one): the local exception, both inside.
    t = MailTransaction("s@x", ["r@x"], b"MAIL FROM:<s@x>\r\n", [b"RCPT TO:<r@x>\r\n"], local=[bad])
    t.take(OK)
    no = SMTPResponse(550, "no")
    with pytest.raises(SMTPRecipientsRefusedLocally) as info:
        t.take(no)
    assert [(e.recipient, e.code) for e in info.value.recipients] == [("bad@", 553), ("r@x", 550)]
    assert t.refused == {"bad@": SMTPResponse(553, "5.1.3 bad address"), "r@x": no}
