"""A real Postfix with Dovecot (SASL, submission, LMTP) in a private directory.

:func:`start_servers` configures and starts, as subprocesses it can kill:

* Postfix's ``master`` (Debian's ``postfix``: ``smtpd``, ``cleanup``, ``qmgr``, ``virtual``
  ...) with its own ``config_directory``, queue and data directories, listening on
  127.0.0.1 only: a STARTTLS port, an implicit-TLS port (``smtpd_tls_wrappermode``) and a
  STARTTLS port with a small SIZE limit. AUTH (PLAIN, LOGIN, SCRAM-SHA-1 and SCRAM-SHA-256
  when Dovecot offers them) goes through Dovecot's auth service and only after TLS. Mail for
  ``example.test`` is delivered to the Maildir ``<root>/mail/inbox/`` by ``virtual`` as
  ``nobody``; two recipients are refused (550) and deferred (450) at RCPT; anything
  else is an error (no DNS, no relaying, no local delivery).
* Dovecot (``dovecot -F -c FILE``) with its own base and state directories: the auth
  service Postfix uses, a submission service (STARTTLS + AUTH, relaying into the Postfix
  above) and LMTP on a TCP port and a Unix socket, delivering to
  ``<root>/lmtp/<local part>/Maildir/``; the LMTP user ``lmtp-full`` has a quota of
  1 kB, so a larger message is refused for it after the data (RFC 2033 section 4.2).

Ports come from the OS (bind port 0, then hand the number over; a start that loses the
race is retried with fresh ports). The certificate is issued for ``127.0.0.1`` and
``localhost`` by a CA made with ``trustme``. Nothing outside the root directory is written
or read as configuration: ``/etc/postfix`` and ``/etc/dovecot`` are not used.
:meth:`MailServers.stop` stops everything that was started. No pytest here: the benchmark
imports this module too.

Needs root (Postfix's master and Dovecot drop privileges themselves), the ``postfix``,
``dovecot-core``, ``dovecot-lmtpd`` and ``dovecot-submissiond`` Debian packages, and the
``postfix`` and ``postdrop`` users and groups those create.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import trustme

__all__ = [
    "DOMAIN",
    "MAIL_UID",
    "MailServers",
    "ServerUnavailable",
    "find_free_ports",
    "start_servers",
]

DOMAIN = "example.test"
#: Recipients the Postfix refuses at RCPT (RFC 5321 section 4.2.2 codes; RFC 3463 detail).
REFUSED_LOCAL = "refused"
DEFERRED_LOCAL = "deferred"
#: Accepted at RCPT, then bounced (the whole message goes to the error transport): a
#: delivery status notification of failure (RFC 3464) comes back to the sender.
BOUNCED_LOCAL = "bounced"
LMTP_FULL_LOCAL = "lmtp-full"  # an LMTP mailbox over quota
REFUSED_REPLY = "550 5.1.1 Recipient refused for the fastsmtp interop tests"
DEFERRED_REPLY = "450 4.2.0 Recipient deferred for the fastsmtp interop tests"
MESSAGE_SIZE_LIMIT = 20 * 1024 * 1024
SMALL_SIZE_LIMIT = 64 * 1024
MAIL_UID = 65534  # nobody: Postfix's virtual(8) refuses to deliver as root

POSTFIX_MASTER = Path("/usr/lib/postfix/sbin/master")
POSTFIX_DYNAMICMAPS = Path("/usr/share/postfix/dynamicmaps.cf")
DOVECOT = Path("/usr/sbin/dovecot")
DOVECOT_MODULES = {  # what each feature needs, besides dovecot-core
    "LMTP (dovecot-lmtpd)": Path("/usr/lib/dovecot/lmtp"),
    "submission (dovecot-submissiond)": Path("/usr/lib/dovecot/submission"),
}


class ServerUnavailable(Exception):
    """The servers cannot run here (missing packages, not root) or did not start."""


def find_free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def check_prerequisites() -> None:
    """Raise :class:`ServerUnavailable` saying what is missing, if anything."""
    if os.geteuid() != 0:
        raise ServerUnavailable("needs root (Postfix's master and Dovecot run as root)")
    missing = [
        name
        for name, path in {
            "postfix": POSTFIX_MASTER,
            "dovecot-core": DOVECOT,
            **DOVECOT_MODULES,
        }.items()
        if not path.exists()
    ]
    if missing:
        raise ServerUnavailable("not installed: " + ", ".join(missing))
    for user in ("postfix", "dovecot", "dovenull"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise ServerUnavailable(f"no {user!r} user (package not set up?)") from None
    try:
        grp.getgrnam("postdrop")
    except KeyError:
        raise ServerUnavailable("no 'postdrop' group (postfix not set up?)") from None


@dataclass
class MailServers:
    """The running servers: where they listen and where their mail and logs go."""

    root: Path
    ca_file: Path
    starttls_port: int
    smtps_port: int
    small_port: int
    submission_port: int
    lmtp_port: int
    lmtp_socket: Path
    username: str
    password: str = field(repr=False)
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    hostname = "127.0.0.1"
    domain = DOMAIN
    message_size_limit = MESSAGE_SIZE_LIMIT
    small_size_limit = SMALL_SIZE_LIMIT
    refused = f"{REFUSED_LOCAL}@{DOMAIN}"
    deferred = f"{DEFERRED_LOCAL}@{DOMAIN}"
    bounced = f"{BOUNCED_LOCAL}@{DOMAIN}"
    lmtp_full = f"{LMTP_FULL_LOCAL}@{DOMAIN}"

    def tls_context(self) -> ssl.SSLContext:
        """A client context that trusts only the test CA (hostname checked)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def maildir(self) -> Path:
        """The Maildir Postfix delivers all mail for ``example.test`` to."""
        return self.root / "mail" / "inbox"

    def lmtp_maildir(self, local_part: str) -> Path:
        """Where Dovecot's LMTP delivers mail for ``local_part@example.test``."""
        return self.root / "lmtp" / local_part.lower() / "Maildir"

    def postfix_log(self) -> str:
        return _read_text(self.root / "postfix.log")

    def dovecot_log(self) -> str:
        return _read_text(self.root / "dovecot.log")

    def queue_is_empty(self) -> bool:
        """No message waits in Postfix's queue (so every delivery has been made)."""
        spool = self.root / "postfix-spool"
        for queue in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _dirpath, _dirs, files in os.walk(spool / queue):
                if files:
                    return False
        return True

    def running(self) -> list[str]:
        """The started processes that are still alive."""
        return [name for name, proc in self._processes.items() if proc.poll() is None]

    def stop(self) -> None:
        """Stop Postfix, then Dovecot (SIGTERM to each master, which stops its children;
        SIGKILL to the process group after 10 s)."""
        for name in ("postfix", "dovecot"):
            proc = self._processes.pop(name, None)
            if proc is not None:
                _terminate(proc)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """Stop a master started in its own session (its pid is its process group)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
    # Children the master did not reap (or all of them after a timeout).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.write_text(text)
    path.chmod(mode)


def _mkdir(path: Path, mode: int, user: str = "root", group: str = "root") -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
    path.chmod(mode)


def _make_tls(root: Path) -> tuple[Path, Path, Path]:
    """CA file, server certificate chain, server key (issued for 127.0.0.1, localhost)."""
    tls = root / "tls"
    _mkdir(tls, 0o755)
    ca = trustme.CA(organization_name="fastsmtp interop test CA")
    cert = ca.issue_cert("127.0.0.1", "localhost", "mx.example.test")
    ca_file = tls / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    chain = tls / "server.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key = tls / "server.key"
    key.touch(0o600)
    cert.private_key_pem.write_to_path(str(key))
    return ca_file, chain, key


def _postfix_config(servers: MailServers, auth_socket: Path, chain: Path, key: Path) -> None:
    root = servers.root
    conf = root / "postfix"
    _mkdir(conf, 0o755)
    spool = root / "postfix-spool"
    _mkdir(spool, 0o755)
    for queue in (
        "active",
        "bounce",
        "corrupt",
        "defer",
        "deferred",
        "flush",
        "hold",
        "incoming",
        "private",
        "saved",
        "trace",
    ):
        _mkdir(spool / queue, 0o700, "postfix")
    _mkdir(spool / "maildrop", 0o730, "postfix", "postdrop")
    _mkdir(spool / "public", 0o710, "postfix", "postdrop")
    _mkdir(spool / "pid", 0o755)
    _mkdir(root / "postfix-data", 0o700, "postfix")
    mail = root / "mail"
    mail.mkdir(0o755, exist_ok=True)
    os.chown(mail, MAIL_UID, MAIL_UID)
    if POSTFIX_DYNAMICMAPS.exists():
        shutil.copy(POSTFIX_DYNAMICMAPS, conf / "dynamicmaps.cf")
    else:
        _write(conf / "dynamicmaps.cf", "")
    # Every address of example.test goes to one Maildir (the trailing "/"), so one entry
    # takes any number of recipients; each delivery's Delivered-To says whose it is.
    # (virtual(8) refuses $1 substitutions from a regexp table: no Maildir per address.)
    _write(conf / "virtual_mailbox", f"/@{DOMAIN.replace('.', '[.]')}$/ inbox/\n")
    # texthash: read as is, no postmap.
    _write(
        conf / "recipient_access",
        f"{servers.refused} {REFUSED_REPLY}\n{servers.deferred} {DEFERRED_REPLY}\n"
        f"{servers.bounced} FILTER error:5.1.1 bounced by the fastsmtp interop tests\n",
    )
    main = {
        "compatibility_level": "3.6",
        "queue_directory": str(spool),
        "data_directory": str(root / "postfix-data"),
        "meta_directory": str(conf),
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "syslog_name": "fastsmtp-interop",
        "maillog_file": str(root / "postfix.log"),
        "maillog_file_prefixes": str(root),
        "myhostname": "mx.example.test",
        "mydomain": DOMAIN,
        "myorigin": "$myhostname",
        "mydestination": "",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        # Nothing leaves: no DNS, no relay host, every non-virtual transport is an error.
        "relayhost": "",
        "smtp_dns_support_level": "disabled",
        "default_transport": "error:no relaying from the fastsmtp interop tests",
        "relay_transport": "error:no relaying from the fastsmtp interop tests",
        "local_transport": "error:no local delivery in the fastsmtp interop tests",
        "alias_maps": "",
        "alias_database": "",
        "local_recipient_maps": "",
        "biff": "no",
        "virtual_mailbox_domains": DOMAIN,
        "virtual_mailbox_base": str(mail),
        "virtual_mailbox_maps": f"regexp:{conf / 'virtual_mailbox'}",
        "virtual_uid_maps": f"static:{MAIL_UID}",
        "virtual_gid_maps": f"static:{MAIL_UID}",
        "virtual_mailbox_limit": str(4 * MESSAGE_SIZE_LIMIT),
        "message_size_limit": str(MESSAGE_SIZE_LIMIT),
        "smtputf8_enable": "yes",
        # Deliver what was sent: no header rewriting or added headers for SMTP clients.
        "local_header_rewrite_clients": "",
        "always_add_missing_headers": "no",
        "smtpd_tls_chain_files": f"{key}, {chain}",
        "smtpd_tls_security_level": "may",
        "smtpd_tls_auth_only": "yes",
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "dovecot",
        "smtpd_sasl_path": str(auth_socket),
        "smtpd_relay_restrictions": "reject_unauth_destination",
        "smtpd_recipient_restrictions": (
            f"check_recipient_access texthash:{conf / 'recipient_access'}"
        ),
        "smtpd_client_port_logging": "yes",
        "smtpd_peername_lookup": "no",
        # Fast tests: no pause after an error reply, no throttling of a fast client.
        "smtpd_error_sleep_time": "0",
        "smtpd_soft_error_limit": "1000",
        "smtpd_hard_error_limit": "1000",
        "smtpd_client_connection_count_limit": "0",
        "in_flow_delay": "0",
        "default_process_limit": "40",
    }
    _write(conf / "main.cf", "".join(f"{k} = {v}\n" for k, v in main.items()))
    smtpd = "n       -       n       -       -       smtpd"
    master = f"""\
127.0.0.1:{servers.starttls_port} inet {smtpd}
  -o syslog_name=fastsmtp-interop/starttls
127.0.0.1:{servers.smtps_port} inet {smtpd}
  -o syslog_name=fastsmtp-interop/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
127.0.0.1:{servers.small_port} inet {smtpd}
  -o syslog_name=fastsmtp-interop/small
  -o message_size_limit={SMALL_SIZE_LIMIT}
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""
    _write(conf / "master.cf", master)


def _dovecot_config(servers: MailServers, auth_socket: Path, chain: Path, key: Path) -> Path:
    root = servers.root
    base = root / "dovecot"
    _mkdir(base, 0o755)
    users = base / "users"
    # passwd-file with a {PLAIN} password, so every mechanism (SCRAM included) can work.
    _write(users, f"{servers.username}:{{PLAIN}}{servers.password}::::::\n", 0o640)
    os.chown(users, 0, grp.getgrnam("dovecot").gr_gid)
    lmtp = root / "lmtp"
    lmtp.mkdir(0o755, exist_ok=True)
    os.chown(lmtp, MAIL_UID, MAIL_UID)
    # One LMTP user with its own quota rule (1 kB, so a message of a few kB is over it);
    # everyone else comes from the static userdb below, without quota.
    lmtp_users = base / "lmtp-users"
    _write(
        lmtp_users,
        f"{servers.lmtp_full}::{MAIL_UID}:{MAIL_UID}::{lmtp / LMTP_FULL_LOCAL}::"
        "userdb_quota_rule=*:storage=1\n",
    )
    config = base / "dovecot.conf"
    _write(
        config,
        f"""\
# fastsmtp interop tests: a private instance; nothing outside {root} is used.
instance_name = fastsmtp-interop-{root.name}
base_dir = {base / "run"}
state_dir = {base / "state"}
log_path = {root / "dovecot.log"}
protocols = submission lmtp
listen = 127.0.0.1
hostname = mx.example.test
postmaster_address = postmaster@{DOMAIN}
ssl = yes
ssl_cert = <{chain}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain login scram-sha-1 scram-sha-256
auth_username_format = %Lu
auth_failure_delay = 0
auth_verbose = yes
disable_plaintext_auth = yes
first_valid_uid = 100
mail_location = maildir:~/Maildir
submission_relay_host = 127.0.0.1
submission_relay_port = {servers.starttls_port}
submission_relay_ssl = no
submission_relay_trusted = no
passdb {{
  driver = passwd-file
  args = {users}
}}
userdb {{
  driver = passwd-file
  args = {lmtp_users}
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_UID} home={lmtp}/%Ln allow_all_users=yes
}}
service auth {{
  unix_listener {auth_socket} {{
    mode = 0600
    user = postfix
    group = postfix
  }}
}}
service submission-login {{
  inet_listener submission {{
    address = 127.0.0.1
    port = {servers.submission_port}
  }}
}}
mail_plugins = quota
plugin {{
  quota = maildir:User quota
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {servers.lmtp_port}
  }}
  unix_listener {servers.lmtp_socket} {{
    mode = 0666
  }}
}}
""",
    )
    return config


def _banner(servers: MailServers, port: int, tls: bool, deadline: float) -> bool:
    """True once something on ``port`` greets with 220 (through TLS if ``tls``)."""
    while time.monotonic() < deadline:
        try:
            with contextlib.ExitStack() as stack:
                sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), 2))
                if tls:
                    context = servers.tls_context()
                    sock = stack.enter_context(
                        context.wrap_socket(sock, server_hostname="127.0.0.1")
                    )
                if sock.recv(512).startswith(b"220"):
                    sock.sendall(b"QUIT\r\n")
                    with contextlib.suppress(OSError):
                        sock.recv(512)
                    return True
        except OSError:
            pass
        if len(servers.running()) < len(servers._processes):
            return False  # a master exited
        time.sleep(0.05)
    return False


def _start(servers: MailServers, timeout: float) -> None:
    """Write the configurations and start Dovecot, then Postfix; wait for every port."""
    root = servers.root
    auth_socket = root / "dovecot" / "auth-postfix"
    ca_file, chain, key = _make_tls(root)
    servers.ca_file = ca_file
    dovecot_conf = _dovecot_config(servers, auth_socket, chain, key)
    _postfix_config(servers, auth_socket, chain, key)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
    # Own sessions: each master's pid is its process group, which it signals on exit.
    with open(root / "dovecot.stderr", "wb") as err:
        servers._processes["dovecot"] = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(dovecot_conf)],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env=env,
            start_new_session=True,
            cwd=root,
        )
    deadline = time.monotonic() + timeout
    while not auth_socket.exists():
        if servers._processes["dovecot"].poll() is not None or time.monotonic() > deadline:
            raise ServerUnavailable("dovecot did not start")
        time.sleep(0.02)
    with open(root / "postfix.stderr", "wb") as err:
        servers._processes["postfix"] = subprocess.Popen(
            [str(POSTFIX_MASTER), "-c", str(root / "postfix"), "-s"],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env={**env, "MAIL_CONFIG": str(root / "postfix")},
            start_new_session=True,
            cwd=root,
        )
    for name, port, tls in (
        ("postfix STARTTLS", servers.starttls_port, False),
        ("postfix implicit TLS", servers.smtps_port, True),
        ("postfix small SIZE", servers.small_port, False),
        ("dovecot submission", servers.submission_port, False),
        ("dovecot LMTP", servers.lmtp_port, False),
    ):
        if not _banner(servers, port, tls, deadline):
            raise ServerUnavailable(f"{name} on port {port} did not answer")
    if not servers.lmtp_socket.exists():
        raise ServerUnavailable("dovecot LMTP socket missing")


def start_servers(timeout: float = 30.0, attempts: int = 3) -> MailServers:
    """Start Postfix and Dovecot in a new temporary directory; see the module docstring.

    Raises :class:`ServerUnavailable` (with the logs' ends) if they cannot run here. The
    caller must call :meth:`MailServers.stop`, then may remove ``root``.
    """
    check_prerequisites()
    problem = ""
    for _ in range(attempts):
        root = Path(tempfile.mkdtemp(prefix="fastsmtp-interop-"))
        root.chmod(0o755)  # the unprivileged daemons (postfix, dovecot, nobody) enter it
        ports = find_free_ports(5)
        servers = MailServers(
            root=root,
            ca_file=root / "tls" / "ca.pem",
            starttls_port=ports[0],
            smtps_port=ports[1],
            small_port=ports[2],
            submission_port=ports[3],
            lmtp_port=ports[4],
            lmtp_socket=root / "lmtp.sock",
            username=f"alice@{DOMAIN}",
            password=secrets.token_urlsafe(18),
        )
        try:
            _start(servers, timeout)
        except BaseException as exc:
            servers.stop()
            logs = "\n".join(
                f"--- {name} (last lines):\n" + "\n".join(text.splitlines()[-15:])
                for name, text in (
                    ("postfix.log", servers.postfix_log()),
                    ("postfix stderr", _read_text(root / "postfix.stderr")),
                    ("dovecot.log", servers.dovecot_log()),
                    ("dovecot stderr", _read_text(root / "dovecot.stderr")),
                )
                if text.strip()
            )
            shutil.rmtree(root, ignore_errors=True)
            if not isinstance(exc, ServerUnavailable):
                raise
            problem = f"{exc}\n{logs}"
            continue
        return servers
    raise ServerUnavailable(problem)
