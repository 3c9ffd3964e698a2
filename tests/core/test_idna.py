"""International domains without SMTPUTF8: A-labels in the envelope (RFC 5890/5891), by
UTS #46 with the idna package, else the standard library's IDNA 2003. Bytes only."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from fastsmtp import _address, _commands
from fastsmtp._address import envelope_address, idna_domain
from fastsmtp._commands import mail_line, rcpt_line
from fastsmtp._envelope import prepare_message
from fastsmtp._session import ServerState
from fastsmtp.errors import SMTPRecipientRefusedLocally
from fastsmtp.response import SMTPResponse


@pytest.fixture(params=["uts46", "idna2003"])
def rules(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Both conversions: with the idna package (skipped if absent) and with the stdlib."""
    if request.param == "uts46":
        pytest.importorskip("idna")
    else:
        monkeypatch.setattr(_address, "_idna", None)
    _commands._path.cache_clear()
    yield request.param
    _commands._path.cache_clear()


def test_domain_only_non_ascii_goes_as_a_labels(rules: str) -> None:
    assert mail_line("a@b\u00fccher.de", None, "ascii") == b"MAIL FROM:<a@xn--bcher-kva.de>\r\n"
    assert rcpt_line("Zo\u00eb <z@\u4f8b\u3048.jp>", ["NOTIFY=NEVER"], "ascii") == (
        b"RCPT TO:<z@xn--r8jz45g.jp> NOTIFY=NEVER\r\n"
    )
    # With SMTPUTF8 the address goes as it is (RFC 6531).
    assert (
        mail_line("a@b\u00fccher.de", None, "utf-8") == "MAIL FROM:<a@b\u00fccher.de>\r\n".encode()
    )


def test_the_rules_differ_where_idna_2008_does(rules: str) -> None:
    # UTS #46 nontransitional (IDNA 2008) keeps the sharp s; IDNA 2003 maps it to "ss".
    expected = "xn--fa-hia.de" if rules == "uts46" else "fass.de"
    assert idna_domain("fa\u00df.de") == expected
    assert idna_domain("B\u00fccher.DE").lower() == "xn--bcher-kva.de"
    assert idna_domain("example.com") == "example.com"


def test_non_ascii_local_part_still_needs_smtputf8(rules: str) -> None:
    with pytest.raises(UnicodeEncodeError) as raised:
        envelope_address("j\u00f6rg@b\u00fccher.de", idna=True)
    assert raised.value.object == "j\u00f6rg@b\u00fccher.de" and raised.value.start == 1


def test_a_domain_with_no_idna_form_is_refused(rules: str) -> None:
    with pytest.raises(SMTPRecipientRefusedLocally) as refused:
        rcpt_line("a@\u00fc" + "x" * 70 + ".de", None, "ascii")  # label over 63 octets
    assert refused.value.code == 553
    assert refused.value.message.startswith("5.1.3 Invalid email address")


def test_the_refusal_names_the_domain_with_no_idna_form(rules: str) -> None:
    domain = "\u00fc" + "x" * 70 + ".de"
    with pytest.raises(ValueError) as refused:
        envelope_address(f"a@{domain}", idna=True)
    assert str(refused.value).startswith(
        f"Invalid email address 'a@{domain}': domain {domain!r} has no IDNA form: "
    )


def test_a_non_ascii_display_name_around_the_null_path_or_postmaster(rules: str) -> None:
    # The display name is what is not ASCII; the path inside is the null path or a bare
    # Postmaster, allowed (or not) as without a display name.
    assert envelope_address("J\u00f6rg <>", idna=True, allow_null=True) == ""
    assert mail_line("J\u00f6rg <>", None, "ascii") == b"MAIL FROM:<>\r\n"
    assert envelope_address("J\u00f6rg <Postmaster>", idna=True, allow_postmaster=True) == (
        "Postmaster"
    )
    assert rcpt_line("J\u00f6rg <Postmaster>", None, "ascii") == b"RCPT TO:<Postmaster>\r\n"
    with pytest.raises(ValueError, match="null path"):
        envelope_address("J\u00f6rg <>", idna=True)
    with pytest.raises(ValueError, match="bare Postmaster"):
        envelope_address("J\u00f6rg <Postmaster>", idna=True)


def test_a_quoted_local_part_holding_at_signs(rules: str) -> None:
    # The domain is what follows the last "@": the quoted local part keeps its own.
    assert envelope_address('"a@b"@b\u00fccher.example', idna=True) == (
        '"a@b"@xn--bcher-kva.example'
    )
    assert rcpt_line('<"a@b"@b\u00fccher.example>', None, "ascii") == (
        b'RCPT TO:<"a@b"@xn--bcher-kva.example>\r\n'
    )


def test_without_idna_flag_unchanged() -> None:
    with pytest.raises(UnicodeEncodeError):
        envelope_address("a@b\u00fccher.de")


def test_send_message_headers_follow_the_envelope() -> None:
    """Without SMTPUTF8 the address headers get the same A-labels as the envelope (the
    email package would write an encoded-word in the domain); the caller's message is
    not changed, Bcc is still removed, groups and display names are kept."""
    server = ServerState()
    server.record_ehlo(SMTPResponse(250, "mx.example.com\n8BITMIME"))
    message = EmailMessage()
    message["From"] = "Zo\u00eb <zoe@b\u00fccher.example>"
    message["To"] = "a@example.com, Friends: b@\u4f8b\u3048.jp, c@example.org;"
    message["Bcc"] = "hidden@\u00fc.example"
    message["Subject"] = "x"
    message.set_content("hi")
    before = message.as_bytes()
    flat, options = prepare_message(
        message, "zoe@b\u00fccher.example", ["a@example.com", "b@\u4f8b\u3048.jp"], None, server
    )
    assert flat.startswith(
        b"From: =?utf-8?q?Zo=C3=AB?= <zoe@xn--bcher-kva.example>\r\n"
        b"To: a@example.com, Friends: b@xn--r8jz45g.jp, c@example.org;\r\n"
        b"Subject: x\r\n"
    )
    assert b"hidden" not in flat
    assert options == ["BODY=8BITMIME"]
    assert message.as_bytes() == before
    # With SMTPUTF8 the headers go in UTF-8, as before.
    server.record_ehlo(SMTPResponse(250, "mx.example.com\n8BITMIME\nSMTPUTF8"))
    flat, options = prepare_message(
        message, "zoe@b\u00fccher.example", ["a@example.com"], None, server
    )
    assert flat.startswith("From: Zo\u00eb <zoe@b\u00fccher.example>\r\n".encode())
    assert options == ["SMTPUTF8", "BODY=8BITMIME"]
