"""Every ``examples/*.py`` script runs, as a reader would run it, against real servers.

The documentation shows these scripts (``literalinclude``), so a broken example fails here.
Each script is run with this interpreter in a subprocess, its server taken from the
environment (see ``conftest.py``): a STARTTLS submission server and an implicit-TLS one, both
aiosmtpd on 127.0.0.1 with a trustme certificate and AUTH PLAIN/LOGIN. The script must exit 0
and the servers must have received exactly the number of messages its header announces::

    # expect-messages: 2

A script that needs more than these servers says so (``# example-needs: redis``): it is
skipped here and run by its owner's own test. Every message must arrive over TLS, unless the
script talks to a test server on the reader's machine and says so
(``# example-plaintext: why``). A script that reads ``SMTP_USERNAME`` must log in with it
successfully (at least once). The examples are not parametrized over the core or the event
loop: each runs once per pytest run (the subprocess inherits ``FASTSMTP_NO_EXTENSIONS``, so
the CI's pure-core runs use the pure core).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import USERNAME, Submission

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if not EXAMPLES.is_dir():  # cibuildwheel tests the wheel with a copy of tests/ alone
    pytest.skip("examples/ is not beside tests/ here", allow_module_level=True)
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
TIMEOUT = 60

_EXPECT = re.compile(r"^# expect-messages: (\d+)\s*$", re.MULTILINE)
_NEEDS = re.compile(r"^# example-needs: (.+?)\s*$", re.MULTILINE)
_PLAINTEXT = re.compile(r"^# example-plaintext: .+$", re.MULTILINE)


def test_there_are_examples() -> None:
    assert SCRIPTS, f"no examples found in {EXAMPLES}"


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_example_runs(script: Path, submission: Submission) -> None:
    source = script.read_text(encoding="utf-8")
    needs = _NEEDS.search(source)
    if needs:
        pytest.skip(f"needs {needs.group(1)}: run by its own test, not by this harness")
    expect = _EXPECT.findall(source)
    assert len(expect) == 1, f"{script.name} needs exactly one '# expect-messages: N' line"
    expected = int(expect[0])

    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=EXAMPLES,
        env=submission.environ(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 0, f"{script.name} exited {done.returncode}\n{output}"
    received = submission.messages
    assert len(received) == expected, (
        f"{script.name}: the servers received {len(received)} message(s), "
        f"its header says {expected}\n{output}"
    )
    # An example that takes a username from the environment logs in with it (at least once).
    if "SMTP_USERNAME" in source:
        logins = [a for a in submission.auth_attempts if a.login == USERNAME.encode()]
        assert any(a.success for a in logins), f"{script.name} did not log in"
    # The examples submit as applications do: only over TLS (verified against the CA), unless
    # the script says it talks to a test server on the reader's own machine.
    if not _PLAINTEXT.search(source):
        assert all(m.tls for m in received), f"{script.name} sent a message in plaintext"
