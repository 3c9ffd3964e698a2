"""fastsmtp._commands without I/O: the command lines built, and what is refused and how.

Found missing by mutation testing (issue #19). The same behaviour is checked on the wire
in tests/client/test_wire_forms.py.
"""

from __future__ import annotations

import pytest

from fastsmtp._commands import (
    check_arguments,
    command_line,
    mail_line,
    message_size,
    rcpt_line,
    validate_local_hostname,
    vrfy_line,
)
from fastsmtp.errors import REFUSED_LOCALLY, SMTPCommandRefusedLocally


@pytest.mark.parametrize("hostname", ["", " ", "\t\r\n"])
def test_empty_local_hostname(hostname: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_local_hostname(hostname)
    assert str(info.value) == "The local_hostname param must not be empty"


@pytest.mark.parametrize("hostname", ["a b", "a\x00b", "a\x7fb", "a\u2028b"])
def test_local_hostname_with_whitespace_or_controls(hostname: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_local_hostname(hostname)
    assert str(info.value) == (
        "The local_hostname param contains prohibited whitespace or control characters"
    )


def test_local_hostname_is_stripped() -> None:
    assert validate_local_hostname("  client.example \r\n") == "client.example"
    assert validate_local_hostname("[192.0.2.1]") == "[192.0.2.1]"


@pytest.mark.parametrize("arg", [b"a\rb", b"\x00", b"a\x1f", b"\x7f"])
def test_control_characters_in_arguments(arg: bytes) -> None:
    with pytest.raises(ValueError) as info:
        command_line(b"NOOP", arg)
    assert str(info.value) == f"Command argument {arg!r} contains prohibited control characters"
    with pytest.raises(ValueError):
        check_arguments((b"fine", arg))


def test_command_line() -> None:
    assert command_line(b"NOOP") == b"NOOP\r\n"
    assert command_line(b"HELP", b"topic") == b"HELP topic\r\n"
    check_arguments((b"\x20~\x80\xff",))  # printable ASCII and 8-bit octets are not controls


def test_mail_and_rcpt_lines() -> None:
    assert mail_line("a@b.example", None, "ascii") == b"MAIL FROM:<a@b.example>\r\n"
    assert mail_line("", None, "ascii") == b"MAIL FROM:<>\r\n"
    assert mail_line("<>", ["RET=HDRS"], "ascii") == b"MAIL FROM:<> RET=HDRS\r\n"
    assert rcpt_line("Postmaster", None, "ascii") == b"RCPT TO:<Postmaster>\r\n"
    assert rcpt_line("x@y.example", ["A", "B=1"], "ascii") == b"RCPT TO:<x@y.example> A B=1\r\n"
    assert rcpt_line("x@y.example", [], "ascii") == b"RCPT TO:<x@y.example>\r\n"
    utf8 = "j\u00f6rg@b\u00fccher.example"
    assert mail_line(utf8, None, "utf-8") == b"MAIL FROM:<" + utf8.encode() + b">\r\n"


@pytest.mark.parametrize("sender", ["Postmaster", "<postmaster>"])
def test_postmaster_is_no_sender(sender: str) -> None:
    with pytest.raises(ValueError, match="Postmaster"):
        mail_line(sender, None, "ascii")


@pytest.mark.parametrize("recipient", ["", "<>"])
def test_null_path_is_no_recipient(recipient: str) -> None:
    with pytest.raises(ValueError, match="null path"):
        rcpt_line(recipient, None, "ascii")


def test_non_ascii_needs_a_utf8_encoding() -> None:
    with pytest.raises(ValueError, match="SMTPUTF8"):
        mail_line("j\u00f6rg@b.example", None, "ascii")
    with pytest.raises(ValueError, match="SMTPUTF8"):
        rcpt_line("j\u00f6rg@b.example", None, "ASCII")


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("alice", b"VRFY alice\r\n"),
        (" alice ", b"VRFY alice\r\n"),
        ("a@b.example", b"VRFY a@b.example\r\n"),
        ("<a@b.example>", b"VRFY a@b.example\r\n"),
        ("Alice <a@b.example>", b"VRFY a@b.example\r\n"),
    ],
)
def test_vrfy_line(argument: str, expected: bytes) -> None:
    assert vrfy_line(b"VRFY", argument, None, False) == expected
    assert vrfy_line(b"EXPN", argument, ["X=1"], False) == b"EXPN" + expected[4:-2] + b" X=1\r\n"


@pytest.mark.parametrize("argument", ["alice>", "<alice", "<a@b.example> X=1"])
def test_vrfy_argument_that_could_inject_is_refused(argument: str) -> None:
    # A stray bracket or a space could carry a second parameter: refused locally (issue 12),
    # as an SMTPResponseException that is also a ValueError.
    with pytest.raises(SMTPCommandRefusedLocally) as info:
        vrfy_line(b"VRFY", argument, None, False)
    assert isinstance(info.value, ValueError)
    assert info.value.code == 501


@pytest.mark.parametrize("argument", ["a@b@c.example", "a@", "@b.example"])
def test_vrfy_harmless_malformed_address_goes_out_as_given(argument: str) -> None:
    # Issue 12: what cannot inject reaches the server as aiosmtplib sends it; the server
    # judges it.
    assert vrfy_line(b"VRFY", argument, None, False) == f"VRFY {argument}\r\n".encode()


@pytest.mark.parametrize("argument", ["a\x01b", "a\x7f"])
def test_vrfy_control_characters_are_refused(argument: str) -> None:
    with pytest.raises(SMTPCommandRefusedLocally) as info:
        vrfy_line(b"EXPN", argument, None, False)
    assert isinstance(info.value, ValueError)
    assert info.value.message == (
        f"5.5.4 Invalid EXPN argument {argument!r} (refused by fastsmtp; nothing was sent)"
    )


def test_vrfy_non_ascii_needs_utf8() -> None:
    with pytest.raises(UnicodeEncodeError):
        vrfy_line(b"VRFY", "j\u00f6rg", None, False)
    assert vrfy_line(b"VRFY", "j\u00f6rg", ["SMTPUTF8"], True) == (
        "VRFY j\u00f6rg SMTPUTF8\r\n".encode()
    )


@pytest.mark.parametrize(
    ("data", "terminated", "size"),
    [
        (b"", True, 2),
        (b"", False, 0),
        (b"a", True, 3),
        (b"a", False, 1),
        (b"a\r\n", True, 3),
        (b"a\n", True, 3),
        (b"a\r", True, 3),
        (b"a\r", False, 3),
        (b"a\nb\rc\r\nd", False, 10),
        (b"\r\n\r\n", True, 4),
    ],
)
def test_message_size(data: bytes, terminated: bool, size: int) -> None:
    assert message_size(data, terminated=terminated) == size


@pytest.mark.parametrize("argument", ["", "  ", "\x85"])
def test_vrfy_parameters_without_an_argument_are_refused(argument: str) -> None:
    # Found by hypothesis: "\x85" (NEL) is whitespace to str.strip(), so the argument
    # vanished and "EXPN  SMTPUTF8" put the parameter where the argument belongs.
    assert vrfy_line(b"EXPN", argument, None, True) == b"EXPN \r\n"
    with pytest.raises(SMTPCommandRefusedLocally) as info:
        vrfy_line(b"EXPN", argument, ["SMTPUTF8"], True)
    assert info.value.code == 501
    assert info.value.message == (
        f"5.5.4 EXPN parameters need an argument (got {argument!r}) {REFUSED_LOCALLY}"
    )


def test_vrfy_non_ascii_mailbox_in_angle_brackets_with_utf8() -> None:
    # With SMTPUTF8 the mailbox inside <...> may be UTF-8 (RFC 6531 section 3.3).
    expected = "VRFY j\u00f6rg@b\u00fccher.example\r\n".encode()
    assert vrfy_line(b"VRFY", "<j\u00f6rg@b\u00fccher.example>", None, True) == expected
    assert vrfy_line(b"VRFY", "J\u00f6rg <j\u00f6rg@b\u00fccher.example>", None, True) == expected
    with pytest.raises(UnicodeEncodeError):
        vrfy_line(b"VRFY", "<j\u00f6rg@b\u00fccher.example>", None, False)


def test_local_refusals_of_mail_and_rcpt_are_named_exactly() -> None:
    # RFC 5321 section 4.2.3 codes and RFC 3463 enhanced codes, the address kept on the
    # exception, the reason worded as a server's reply.
    from fastsmtp.errors import (
        REFUSED_LOCALLY,
        SMTPRecipientRefusedLocally,
        SMTPSenderRefusedLocally,
    )

    with pytest.raises(SMTPSenderRefusedLocally) as sender_info:
        mail_line("a b@x.example", None, "ascii")
    assert (sender_info.value.code, sender_info.value.sender) == (553, "a b@x.example")
    assert sender_info.value.message == (
        "5.1.7 Invalid email address 'a b@x.example': local part contains a space outside "
        f"quotes {REFUSED_LOCALLY}"
    )
    with pytest.raises(SMTPSenderRefusedLocally) as param_info:
        mail_line("a@x.example", ["RET=A B"], "ascii")
    assert (param_info.value.code, param_info.value.sender) == (501, "a@x.example")
    assert param_info.value.message.startswith("5.5.4 Invalid ESMTP parameter 'RET=A B'")
    assert param_info.value.message.endswith(REFUSED_LOCALLY)
    with pytest.raises(SMTPRecipientRefusedLocally) as rcpt_info:
        rcpt_line("a b@x.example", None, "ascii")
    assert (rcpt_info.value.code, rcpt_info.value.recipient) == (553, "a b@x.example")
    assert rcpt_info.value.message.startswith("5.1.3 Invalid email address 'a b@x.example'")
    with pytest.raises(SMTPRecipientRefusedLocally) as rparam_info:
        rcpt_line("a@x.example", ["NOTIFY=\r\n"], "ascii")
    assert (rparam_info.value.code, rparam_info.value.recipient) == (501, "a@x.example")
    assert rparam_info.value.message.startswith("5.5.4 Invalid ESMTP parameter")


@pytest.mark.parametrize("option", ["ret=body", "Ret=x", "notify=never,delay", "nOTIFY=sometimes"])
def test_raw_dsn_parameters_are_checked_whatever_their_case(option: str) -> None:
    # ESMTP keywords are case-insensitive (RFC 5321 section 2.4): a lowercase RET or
    # NOTIFY is checked as the uppercase one is.
    with pytest.raises(ValueError) as info:
        if option[0] in "Rr":
            mail_line("a@x.example", [option], "ascii")
        else:
            rcpt_line("a@x.example", [option], "ascii")
    assert info.value.code == 501  # type: ignore[attr-defined]
    assert (
        mail_line("a@x.example", ["ret=hdrs"], "ascii") == b"MAIL FROM:<a@x.example> ret=hdrs\r\n"
    )
    assert rcpt_line("a@x.example", ["notify=never"], "ascii") == (
        b"RCPT TO:<a@x.example> notify=never\r\n"
    )
