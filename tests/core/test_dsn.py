"""fastsmtp.DSN (RFC 3461): validation when made, encoding of every parameter. Bytes only."""

from __future__ import annotations

import pytest

from fastsmtp import DSN, DSNRecipient
from fastsmtp._envelope import Envelope
from fastsmtp.dsn import orcpt_value, utf8_addr_xtext
from fastsmtp.errors import (
    SMTPRecipientRefusedLocally,
    SMTPRecipientsRefusedLocally,
    SMTPSenderRefusedLocally,
)


def test_message_parameters_are_xtext_encoded() -> None:
    dsn = DSN(ret="hdrs", envid="order+1=2")
    assert dsn.mail_parameters() == ["RET=HDRS", "ENVID=order+2B1+3D2"]
    with pytest.raises(ValueError, match="no spaces"):
        DSN(envid="order 1")


def test_notify_in_rfc_order_and_orcpt_per_recipient() -> None:
    dsn = DSN(
        notify={"delay", "Failure", "SUCCESS"},
        orcpt=True,
        recipients={"b@example.com": DSNRecipient(notify="NEVER", orcpt="list+x@example.org")},
    )
    assert dsn.notify == frozenset({"SUCCESS", "FAILURE", "DELAY"})
    assert dsn.rcpt_parameters("a@example.com", utf8=False) == [
        "NOTIFY=SUCCESS,FAILURE,DELAY",
        "ORCPT=rfc822;a@example.com",
    ]
    assert dsn.rcpt_parameters("b@example.com", utf8=False) == [
        "NOTIFY=NEVER",
        "ORCPT=rfc822;list+2Bx@example.org",
    ]


def test_no_settings_no_parameters() -> None:
    assert DSN().mail_parameters() == []
    assert DSN().rcpt_parameters("a@example.com", utf8=False) == []
    assert DSN(ret="FULL").rcpt_parameters("a@example.com", utf8=True) == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"ret": "BODY"}, "FULL' or 'HDRS"),
        ({"notify": {"NEVER", "FAILURE"}}, "'NEVER' alone"),
        ({"notify": set()}, "'NEVER' alone"),
        ({"notify": "SOMETIMES"}, "'NEVER' alone"),
        ({"envid": "x" * 101}, "at most 100"),
        ({"envid": "+" * 34}, "at most 100"),  # 102 once encoded
        ({"envid": "caf\u00e9"}, "printable ASCII"),
        ({"envid": "a\r\nRCPT TO:<x@y>"}, "printable ASCII"),
        ({"envid": ""}, "printable ASCII"),
    ],
)
def test_bad_values_are_refused_when_made(kwargs: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        DSN(**kwargs)  # type: ignore[arg-type]


def test_limits_are_inclusive() -> None:
    assert DSN(envid="x" * 100).mail_parameters() == ["ENVID=" + "x" * 100]
    assert DSN(envid="+" * 33).mail_parameters() == ["ENVID=" + "+2B" * 33]


def test_types_are_checked() -> None:
    with pytest.raises(TypeError):
        DSN(orcpt="a@example.com")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        DSN(recipients={"a@example.com": {"notify": "NEVER"}})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        DSN(notify=[1])  # type: ignore[list-item]


def test_frozen_hashable_and_recipients_read_only() -> None:
    dsn = DSN(ret="FULL", recipients={"a@example.com": DSNRecipient(notify="NEVER")})
    with pytest.raises(AttributeError):
        dsn.ret = "HDRS"  # type: ignore[misc]
    with pytest.raises(TypeError):
        dsn.recipients["b@example.com"] = DSNRecipient()  # type: ignore[index]
    assert hash(dsn) == hash(DSN(ret="FULL", recipients={}))
    assert dsn == DSN(ret="full", recipients={"a@example.com": DSNRecipient(notify=["never"])})


def test_orcpt_forms() -> None:
    # RFC 3461 4.2: rfc822 + xtext for ASCII; IDNA for a non-ASCII domain without
    # SMTPUTF8 (as RCPT TO sends it); RFC 6533 utf-8-addr-xtext otherwise.
    assert orcpt_value("Name <a=b@example.com>", utf8=False) == "rfc822;a+3Db@example.com"
    assert orcpt_value("a@b\u00fccher.de", utf8=False) == "rfc822;a@xn--bcher-kva.de"
    assert orcpt_value("a@b\u00fccher.de", utf8=True) == "utf-8;a@b\\x{FC}cher.de"
    assert orcpt_value("j\u00f6rg@example.com", utf8=False) == "utf-8;j\\x{F6}rg@example.com"
    assert utf8_addr_xtext("a+b=c\\\u4f60@x") == "a\\x{2B}b\\x{3D}c\\x{5C}\\x{4F60}@x"
    with pytest.raises(ValueError, match="Invalid email address"):
        orcpt_value("not an address", utf8=False)
    with pytest.raises(ValueError):
        DSNRecipient(orcpt="a@@b")


def test_orcpt_over_500_characters_refuses_that_recipient_only() -> None:
    # A legal address (246 octets of UTF-8) whose every CJK character is 8 characters
    # as utf-8-addr-xtext (RFC 6533): 657 in all.
    long = "\u4f60" * 21 + "@" + ".".join(["\u597d" * 20] * 3)
    assert len(long.encode()) == 246
    assert len(orcpt_value("short@example.com", utf8=False)) < 500
    with pytest.raises(ValueError, match="at most 500"):
        orcpt_value(long, utf8=True)
    envelope = Envelope(
        "s@example.com", ["ok@example.com", long], ["SMTPUTF8"], None, dsn=DSN(orcpt=True)
    )
    assert envelope.recipients == ["ok@example.com"]
    assert envelope.rcpt_lines == [b"RCPT TO:<ok@example.com> ORCPT=rfc822;ok@example.com\r\n"]
    (refusal,) = envelope.refused_locally
    assert isinstance(refusal, SMTPRecipientRefusedLocally)
    assert refusal.code == 501 and refusal.message.startswith("5.5.4 DSN ORCPT")
    assert refusal.message.endswith("(refused by fastsmtp; nothing was sent)")


def test_envelope_lines_with_dsn() -> None:
    dsn = DSN(ret="HDRS", envid="E1", notify={"FAILURE"}, orcpt=True)
    envelope = Envelope("s@example.com", ["a@example.com"], ["BODY=8BITMIME"], None, dsn=dsn)
    assert envelope.plain_mail == b"MAIL FROM:<s@example.com> BODY=8BITMIME RET=HDRS ENVID=E1\r\n"
    assert envelope.mail_line(42) == (
        b"MAIL FROM:<s@example.com> size=42 BODY=8BITMIME RET=HDRS ENVID=E1\r\n"
    )
    assert envelope.rcpt_lines == [
        b"RCPT TO:<a@example.com> NOTIFY=FAILURE ORCPT=rfc822;a@example.com\r\n"
    ]


@pytest.mark.parametrize(
    ("mail_options", "rcpt_options"),
    [(["RET=FULL"], None), (["envid=x"], None), (None, ["NOTIFY=NEVER"]), (None, ["orcpt=x"])],
)
def test_raw_dsn_parameters_and_dsn_do_not_mix(
    mail_options: list[str] | None, rcpt_options: list[str] | None
) -> None:
    with pytest.raises(ValueError, match="not both"):
        Envelope("s@example.com", ["a@example.com"], mail_options, rcpt_options, dsn=DSN())


def test_raw_dsn_parameters_still_work_and_are_validated() -> None:
    envelope = Envelope(
        "s@example.com",
        ["a@example.com"],
        ["RET=FULL", "ENVID=x+2By"],
        ["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;a@example.com"],
    )
    assert envelope.plain_mail == b"MAIL FROM:<s@example.com> RET=FULL ENVID=x+2By\r\n"
    assert envelope.rcpt_lines == [
        b"RCPT TO:<a@example.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a@example.com\r\n"
    ]
    with pytest.raises(SMTPSenderRefusedLocally) as bad_ret:
        Envelope("s@example.com", ["a@example.com"], ["RET=BODY"], None)
    assert bad_ret.value.code == 501 and "RET=FULL or RET=HDRS" in bad_ret.value.message
    with pytest.raises(SMTPRecipientsRefusedLocally) as bad_notify:
        Envelope("s@example.com", ["a@example.com"], None, ["NOTIFY=NEVER,DELAY"])
    assert "'NEVER' alone" in bad_notify.value.recipients[0].message


def test_dsn_must_be_a_dsn() -> None:
    with pytest.raises(TypeError, match=r"fastsmtp\.DSN"):
        Envelope("s@example.com", ["a@example.com"], None, None, dsn="RET=FULL")  # type: ignore[arg-type]
