"""The real Postfix and Dovecot of :mod:`tests.interop.servers`, once per test session.

Without root, the Debian packages or a working start, the interop tests are skipped with
the reason; with ``FASTSMTP_REQUIRE_INTEROP=1`` (as CI sets) they fail instead. When a
test here fails, the end of each server's log is added to its report.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterator

import pytest

from .kit import Maildir
from .servers import MailServers, ServerUnavailable, start_servers

REQUIRE_INTEROP = os.environ.get("FASTSMTP_REQUIRE_INTEROP") == "1"


@pytest.fixture(scope="session")
def mail_servers() -> Iterator[MailServers]:
    """Postfix (+ Dovecot SASL), Dovecot submission and LMTP, started for the session."""
    try:
        servers = start_servers()
    except ServerUnavailable as exc:
        if REQUIRE_INTEROP:
            pytest.fail(f"FASTSMTP_REQUIRE_INTEROP=1 but the mail servers are unavailable: {exc}")
        pytest.skip(f"real mail servers unavailable: {exc}")
    try:
        yield servers
    finally:
        servers.stop()
        shutil.rmtree(servers.root, ignore_errors=True)


@pytest.fixture(scope="session")
def inbox(mail_servers: MailServers) -> Maildir:
    """The Maildir Postfix delivers everything to (split by Delivered-To)."""
    return Maildir(mail_servers.maildir, mail_servers)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    servers = getattr(item, "funcargs", {}).get("mail_servers")
    if report.failed and isinstance(servers, MailServers):
        for name, text in (("postfix", servers.postfix_log()), ("dovecot", servers.dovecot_log())):
            report.sections.append(
                (f"{name} log (last 40 lines)", "\n".join(text.splitlines()[-40:]))
            )
