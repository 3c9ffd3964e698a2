"""What EHLO allows a transaction: SIZE checked first (RFC 1870), DSN (RFC 3461) offered or
not, REQUIRETLS (RFC 8689). Bytes in (the EHLO reply, the message), verdicts out."""

from __future__ import annotations

from types import ModuleType

import pytest

from fastsmtp import DSN
from fastsmtp._commands import message_size
from fastsmtp._envelope import Envelope
from fastsmtp._extensions import check_require_tls, check_size, dsn_supported, size_limit
from fastsmtp._session import ServerState
from fastsmtp.errors import (
    SMTPNotSupported,
    SMTPSenderRefused,
    SMTPSenderRefusedLocally,
    SMTPSizeRefusedLocally,
)
from fastsmtp.response import SMTPResponse


def server(*keywords: str) -> ServerState:
    state = ServerState()
    state.record_ehlo(SMTPResponse(250, "\n".join(["mx.example.com", *keywords])))
    return state


@pytest.mark.parametrize(
    ("keywords", "limit"),
    [
        (("SIZE 1000",), 1000),
        (("SIZE 0",), None),  # RFC 1870 section 4: no fixed maximum
        (("SIZE",), None),
        (("SIZE lots",), None),
        ((), None),
    ],
)
def test_size_limit(keywords: tuple[str, ...], limit: int | None) -> None:
    assert size_limit(server(*keywords)) == limit


def wire_size(impl: ModuleType, message: bytes) -> int:
    """The SIZE value of ``message`` sent with DATA, from the core's encoder."""
    encoder = impl.DataEncoder()
    encoder.encode(message)
    encoder.finish()
    size: int = encoder.size
    return size


def test_size_counts_crlf_normalisation_and_not_dot_stuffing(impl: ModuleType) -> None:
    # RFC 1870 section 3: octets with CRLF line ends, not counting the dots added by
    # stuffing nor the end-of-data line; DATA adds a final CRLF when missing.
    message = b"Subject: x\n\n.a\n..b\rc"
    size = wire_size(impl, message)
    assert size == message_size(message) == len(b"Subject: x\r\n\r\n.a\r\n..b\r\nc\r\n")
    limits = server(f"SIZE {size}")
    check_size(limits, size, "s@example.com")  # exactly the limit: sent
    over = server(f"SIZE {size - 1}")
    with pytest.raises(SMTPSizeRefusedLocally) as refused:
        check_size(over, size, "s@example.com")
    error = refused.value
    assert isinstance(error, SMTPSenderRefused) and isinstance(error, SMTPSenderRefusedLocally)
    assert isinstance(error, ValueError)
    assert error.code == 552 and error.sender == "s@example.com"
    assert error.message == (
        f"5.3.4 Message size {size} exceeds the server's fixed maximum message size "
        f"{size - 1} (SIZE, RFC 1870) (refused by fastsmtp; nothing was sent)"
    )


def test_no_limit_no_check() -> None:
    check_size(server("SIZE 0"), 10**12, "s@example.com")
    check_size(server(), 10**12, "s@example.com")
    check_size(server("SIZE 10"), None, "s@example.com")  # a stream without size=


def test_dsn_offered_or_not() -> None:
    assert dsn_supported(server("DSN"), required=True)
    assert not dsn_supported(server("SIZE 10"), required=False)
    with pytest.raises(SMTPNotSupported, match="DSN is not supported"):
        dsn_supported(server("SIZE 10"), required=True)


def test_require_tls() -> None:
    check_require_tls(server("REQUIRETLS"), tls_verified=True)
    with pytest.raises(SMTPNotSupported, match=r"5\.7\.30 REQUIRETLS needs a TLS session"):
        check_require_tls(server("REQUIRETLS"), tls_verified=False)
    with pytest.raises(SMTPNotSupported, match=r"5\.7\.30 REQUIRETLS is not supported"):
        check_require_tls(server("DSN"), tls_verified=True)


def test_envelope_for_server() -> None:
    dsn = DSN(ret="FULL", notify="NEVER")
    envelope = Envelope("s@example.com", ["a@example.com"], None, None, dsn=dsn)
    assert envelope.for_server(server("DSN"), tls_verified=False) is envelope
    with pytest.raises(SMTPNotSupported):
        envelope.for_server(server(), tls_verified=True)
    optional = DSN(ret="FULL", notify="NEVER", required=False)
    envelope = Envelope(
        "s@example.com", ["bad", "a@example.com"], ["BODY=8BITMIME"], None, dsn=optional
    )
    plain = envelope.for_server(server(), tls_verified=False)
    assert plain.plain_mail == b"MAIL FROM:<s@example.com> BODY=8BITMIME\r\n"
    assert plain.rcpt_lines == [b"RCPT TO:<a@example.com>\r\n"]
    assert [e.recipient for e in plain.refused_locally] == ["bad"]


def test_envelope_require_tls() -> None:
    envelope = Envelope("s@example.com", ["a@example.com"], None, None, require_tls=True)
    assert envelope.plain_mail == b"MAIL FROM:<s@example.com> REQUIRETLS\r\n"
    assert envelope.mail_line(7) == b"MAIL FROM:<s@example.com> size=7 REQUIRETLS\r\n"
    assert envelope.for_server(server("REQUIRETLS"), tls_verified=True) is envelope
    with pytest.raises(SMTPNotSupported):
        envelope.for_server(server("REQUIRETLS"), tls_verified=False)
    raw = Envelope("s@example.com", ["a@example.com"], ["REQUIRETLS"], None, require_tls=True)
    assert raw.plain_mail == b"MAIL FROM:<s@example.com> REQUIRETLS\r\n"  # not twice


def test_smtputf8_false_refuses_a_raw_smtputf8() -> None:
    with pytest.raises(ValueError, match="smtputf8=False"):
        Envelope("s@example.com", ["a@example.com"], ["SMTPUTF8"], None, smtputf8=False)


@pytest.mark.parametrize("sender", ["s@example.com", "", "<>", "Postmaster@example.com"])
@pytest.mark.parametrize("options", [None, ["BODY=8BITMIME"], ["SIZE=5"], ["SMTPUTF8"]])
@pytest.mark.parametrize("size", [None, 0, 7, 10**12])
def test_envelope_mail_line_with_size(
    sender: str, options: list[str] | None, size: int | None
) -> None:
    """RFC 1870 section 6: SIZE goes first unless the caller gave one; the line without
    options is built from the checked one, byte for byte what the full path builds."""
    envelope = Envelope(sender, ["a@example.com"], options, None)
    line = envelope.mail_line(size)
    if size is None or options == ["SIZE=5"]:
        assert line == envelope.plain_mail
        return
    params = b" ".join(o.encode() for o in options or ())
    path = envelope.plain_mail[: len(envelope.plain_mail) - 2 - (len(params) + 1 if params else 0)]
    assert line == path + b" size=%d" % size + (b" " + params if params else b"") + b"\r\n"
    assert line.startswith(b"MAIL FROM:<")
