"""fastsmtp.compat.install_as_aiosmtplib(), each case in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_install_makes_aiosmtplib_fastsmtp() -> None:
    result = run(
        """
        import sys
        import fastsmtp, fastsmtp.compat
        fastsmtp.compat.install_as_aiosmtplib()
        fastsmtp.compat.install_as_aiosmtplib()  # idempotent

        import aiosmtplib
        from aiosmtplib.errors import SMTPException, SMTPRecipientsRefused
        from aiosmtplib.auth import auth_plain_encode
        from aiosmtplib.email import flatten_message
        from aiosmtplib.esmtp import parse_esmtp_extensions
        from aiosmtplib.response import SMTPResponse
        from aiosmtplib.status import SMTPStatus
        from aiosmtplib.typing import Default
        from aiosmtplib.smtp import SMTP
        from aiosmtplib.api import send
        import aiosmtplib.protocol
        import fastsmtp.errors, fastsmtp.auth, fastsmtp.email, fastsmtp.esmtp, fastsmtp.smtp

        assert aiosmtplib is fastsmtp
        assert SMTPException is fastsmtp.errors.SMTPException
        assert SMTPRecipientsRefused is fastsmtp.errors.SMTPRecipientsRefused
        assert auth_plain_encode is fastsmtp.auth.auth_plain_encode
        assert flatten_message is fastsmtp.email.flatten_message
        assert parse_esmtp_extensions is fastsmtp.esmtp.parse_esmtp_extensions
        assert SMTPResponse is fastsmtp.response.SMTPResponse
        assert SMTPStatus is fastsmtp.typing.SMTPStatus
        assert Default is fastsmtp.typing.Default
        assert SMTP is fastsmtp.smtp.SMTP
        assert send is fastsmtp.api.send
        assert aiosmtplib.protocol is sys.modules["fastsmtp.protocol"]
        assert aiosmtplib.errors is fastsmtp.errors
        for name in ("api", "auth", "email", "errors", "esmtp", "protocol", "response",
                     "smtp", "status", "typing"):
            assert sys.modules["aiosmtplib." + name] is sys.modules["fastsmtp." + name], name
        assert "aiosmtplib.__main__" not in sys.modules
        # the real aiosmtplib package was never loaded
        assert not any("site-packages/aiosmtplib" in (getattr(m, "__file__", "") or "")
                       for m in list(sys.modules.values())), "real aiosmtplib imported"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_exceptions_raised_by_fastsmtp_are_caught_under_aiosmtplib_names() -> None:
    result = run(
        """
        import fastsmtp.compat
        fastsmtp.compat.install_as_aiosmtplib()
        import aiosmtplib
        from fastsmtp._address import envelope_address
        try:
            raise fastsmtp.errors.SMTPSenderRefused(550, "no", "a@b")
        except aiosmtplib.SMTPResponseException as exc:
            print(type(exc).__name__, exc.code)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SMTPSenderRefused", "550"]


def test_refuses_when_real_aiosmtplib_was_imported_first() -> None:
    result = run(
        """
        import sys
        import aiosmtplib
        real = aiosmtplib
        import fastsmtp.compat
        try:
            fastsmtp.compat.install_as_aiosmtplib()
        except RuntimeError as exc:
            print("refused:", exc)
        else:
            raise SystemExit("no RuntimeError")
        assert sys.modules["aiosmtplib"] is real  # nothing was half-installed
        assert sys.modules["aiosmtplib.errors"] is real.errors
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused: 'aiosmtplib' is already imported")


def test_refuses_when_a_real_submodule_was_imported_first() -> None:
    result = run(
        """
        import sys
        import aiosmtplib.errors
        del sys.modules["aiosmtplib"]  # only the submodule stays registered
        import fastsmtp.compat
        try:
            fastsmtp.compat.install_as_aiosmtplib()
        except RuntimeError as exc:
            print("refused:", exc)
        assert "aiosmtplib" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("refused: 'aiosmtplib.")
