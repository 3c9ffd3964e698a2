"""The SMTP session, sans I/O: what the wire is doing, and every protocol decision.

:class:`SMTPSession` is to fastsmtp what h11's ``Connection`` is to HTTP: it never touches a
socket. The shell (:mod:`fastsmtp.protocol`) tells it what it wrote (:meth:`~SMTPSession.sent`
and friends) and hands it every reply as it is parsed (:meth:`~SMTPSession.received`); the
session keeps, as explicit state,

- the **phase** of the conversation as the client last left it (:class:`Phase`);
- the **replies owed**, in order (RFC 2920 section 3.1: replies come back in the order the
  commands were sent), each tagged with what it answers (:class:`Kind`);
- what the server said in EHLO (:class:`ServerState`), dropped after STARTTLS (RFC 3207
  section 4.2).

Phases, with the events that move between them (``w:`` the client wrote, ``r:`` a reply)::

    GREETING --r:220--> READY
    READY --w:MAIL--> TRANSACTION --w:DATA--> DATA_SENT --r:354--> BODY --w:end--> READY
                      TRANSACTION --w:BDAT--> BODY --w:BDAT LAST--> READY
    TRANSACTION --r:MAIL not 250, w:RSET--> READY      DATA_SENT --r:not 354--> TRANSACTION
    READY --w:AUTH--> AUTH --r:334--> AUTH --r:other--> READY
    READY --w:STARTTLS--> STARTTLS --handshake done--> READY (server state forgotten)
    any --w:QUIT--> QUIT;  any --r:421 / connection lost / aborted--> CLOSED

An LMTP session (RFC 2033, ``SMTPSession(lmtp=True)``) is the same machine with two
differences: LHLO stands for EHLO (section 4.1), and the end of a message (the final dot,
or BDAT LAST) is owed one reply per recipient whose RCPT succeeded, in RCPT order
(section 4.2); the session counts those RCPT replies as it takes them
(:attr:`SMTPSession.final_replies`).

The phase is the *writer's* view: once the end of a message is written the phase is READY
again and the final reply is simply one more reply owed, so the next transaction can be
pipelined behind it.

The one cancellation rule (:meth:`SMTPSession.abandon`): a caller that leaves its turn while
replies it caused are still owed leaves the connection

- as it is, when the wire is in command mode with no transaction open (the owed replies are
  consumed in order and dropped, so later replies still pair with their commands);
- needing RSET, when a transaction is open and no DATA or BDAT was sent;
- unusable (abort the transport), when DATA, a body, BDAT, an AUTH exchange, STARTTLS or
  QUIT is in flight: the server is reading something other than commands, and nothing the
  client could write next would be read as intended.
"""

from __future__ import annotations

import collections
import enum

from .errors import (
    SMTPDataError,
    SMTPException,
    SMTPNotSupported,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from .esmtp import parse_esmtp_extensions
from .response import SMTPResponse

__all__ = ("Kind", "Phase", "ServerState", "SMTPSession", "TransactionPlan", "Verdict")

SMTPUTF8_NOT_SUPPORTED = "SMTPUTF8 is not supported by this server"


class Phase(enum.Enum):
    """Where the conversation is, as the client last left it."""

    GREETING = "waiting for the greeting"
    READY = "command mode, no transaction open"
    TRANSACTION = "MAIL sent, no DATA or BDAT yet"
    DATA_SENT = "DATA sent, waiting for 354"
    BODY = "the server is reading a message body"
    AUTH = "in an AUTH exchange"
    STARTTLS = "STARTTLS sent or TLS handshake running"
    QUIT = "QUIT sent"
    CLOSED = "closed or closing"


class Kind(enum.IntEnum):
    """What a reply owed answers."""

    GREETING = 1
    COMMAND = 2  # NOOP, VRFY, EXPN, HELP, or anything raw: no state change
    EHLO = 3
    HELO = 4
    MAIL = 5
    RCPT = 6
    DATA = 7
    END = 8  # the final reply to a DATA body
    BDAT = 9
    BDAT_LAST = 10  # the final reply to a BDAT transfer
    AUTH = 11  # AUTH and each SASL response
    STARTTLS = 12
    QUIT = 13
    RSET = 14


class Verdict(enum.Enum):
    """What :meth:`SMTPSession.abandon` decides for a caller that left mid-exchange."""

    KEEP = "keep the connection"
    RESET = "write RSET before the next command"
    ABORT = "abort the transport"


# Module-level names for the members the per-reply path compares against: an enum
# member looked up through its class costs more than the rest of that path.
_GREETING, _COMMAND, _EHLO, _HELO = Kind.GREETING, Kind.COMMAND, Kind.EHLO, Kind.HELO
_MAIL, _RCPT, _DATA, _END = Kind.MAIL, Kind.RCPT, Kind.DATA, Kind.END
_BDAT, _BDAT_LAST, _AUTH, _STARTTLS = Kind.BDAT, Kind.BDAT_LAST, Kind.AUTH, Kind.STARTTLS
_QUIT, _RSET = Kind.QUIT, Kind.RSET
# What a raw command's reply answers, by its verb (BDAT is not here: a BDAT chunk is not a
# command line, so a raw BDAT is only a COMMAND to the session).
_VERB_KINDS = {
    b"EHLO": _EHLO,
    b"HELO": _HELO,
    b"MAIL": _MAIL,
    b"RCPT": _RCPT,
    b"DATA": _DATA,
    b"RSET": _RSET,
    b"QUIT": _QUIT,
    b"STARTTLS": _STARTTLS,
    b"AUTH": _AUTH,
}
_END_WRITE, _BDAT_WRITE, _BDAT_LAST_WRITE = (_END,), (_BDAT,), (_BDAT_LAST,)
_P_GREETING, _P_READY, _P_TRANSACTION = Phase.GREETING, Phase.READY, Phase.TRANSACTION
_P_DATA_SENT, _P_BODY, _P_AUTH = Phase.DATA_SENT, Phase.BODY, Phase.AUTH
_P_STARTTLS, _P_QUIT, _P_CLOSED = Phase.STARTTLS, Phase.QUIT, Phase.CLOSED


class ServerState:
    """What the server said about itself in EHLO/HELO (RFC 5321 section 4.1.1.1)."""

    __slots__ = (
        "auth_methods",
        "extensions",
        "last_ehlo_response",
        "last_helo_response",
        "supports_esmtp",
    )

    def __init__(self) -> None:
        self.extensions: dict[str, str] = {}
        self.auth_methods: list[str] = []
        self.supports_esmtp = False
        self.last_ehlo_response: SMTPResponse | None = None
        self.last_helo_response: SMTPResponse | None = None

    def record_ehlo(self, response: SMTPResponse | None) -> None:
        """Take the extensions from a successful EHLO reply (``None`` forgets it)."""
        self.last_ehlo_response = response
        if response is None:
            return
        self.extensions, self.auth_methods = parse_esmtp_extensions(response.message)
        self.supports_esmtp = True

    def supports(self, extension: str) -> bool:
        """True if ``extension`` (lower case) was advertised."""
        return extension in self.extensions

    @property
    def greeted(self) -> bool:
        """True once EHLO or HELO has succeeded on this connection."""
        return self.last_ehlo_response is not None or self.last_helo_response is not None


class TransactionPlan:
    """How one message goes out: the decisions :meth:`SMTPSession.plan` made."""

    __slots__ = ("announce_size", "chunked", "pipelined")

    def __init__(self, pipelined: bool, chunked: bool, announce_size: bool) -> None:
        self.pipelined = pipelined
        self.chunked = chunked
        #: Announce the message size on MAIL (RFC 1870: the server advertises SIZE).
        self.announce_size = announce_size


# Every plan there can be: a plan is never changed, so each is made once.
_PLANS = {
    (p, c, a): TransactionPlan(p, c, a)
    for p in (False, True)
    for c in (False, True)
    for a in (False, True)
}


class SMTPSession:
    """The state of one SMTP (or LMTP) connection and the judge of every reply. No I/O."""

    __slots__ = (
        "_before_data",
        "_mail_refused",
        "_taken",
        "_writes",
        "early_reply",
        "lmtp",
        "phase",
        "rcpt_accepted",
        "received_count",
        "sent_count",
        "server",
    )

    def __init__(self, *, lmtp: bool = False) -> None:
        #: LMTP (RFC 2033) rather than SMTP: LHLO, and a final reply per recipient.
        self.lmtp = lmtp
        #: RCPT commands of the open transaction answered 250/251 so far (what an LMTP
        #: session owes a reply each after the message).
        self.rcpt_accepted = 0
        self.phase = _P_GREETING
        # The greeting is the first reply the server owes (RFC 5321 section 3.1).
        # What each write's replies answer, one tuple per write, oldest first; the
        # shell hands over each write's replies in order, and ``_taken`` of the oldest
        # write's have been taken so far.
        self._writes: collections.deque[tuple[Kind, ...]] = collections.deque(((_GREETING,),))
        self._taken = 0
        # Commands written and replies taken since the connection opened: a caller's
        # turn owes replies exactly when received_count < sent_count after its writes.
        self.sent_count = 1
        self.received_count = 0
        self.server = ServerState()
        # The MAIL of the open transaction was refused: the server has no transaction.
        self._mail_refused = False
        # The phase DATA was sent in (DATA without MAIL is refused and changes nothing).
        self._before_data = _P_READY
        #: The server answered a DATA body before its end was written (it gave up on
        #: the message); the wire is no longer in a known state.
        self.early_reply = False

    # -- the writer's side ----------------------------------------------------------------

    def sent(self, kinds: tuple[Kind, ...]) -> None:
        """The commands ``kinds`` were just written, in one write, in this order."""
        if self.phase is _P_CLOSED:
            raise SMTPServerDisconnected("Connection lost")
        phase = self.phase
        if kinds[0] is _MAIL:
            # One transaction's commands (MailTransaction: MAIL, RCPT..., maybe DATA),
            # pipelined or MAIL alone: only the ends can change the phase.
            self._mail_refused = False
            self.rcpt_accepted = 0
            if kinds[-1] is _DATA:
                self._before_data = _P_TRANSACTION
                self.phase = _P_DATA_SENT
            else:
                self.phase = _P_TRANSACTION
            self._writes.append(kinds)
            self.sent_count += len(kinds)
            return
        for kind in kinds:
            if kind is _RCPT or kind is _COMMAND:
                continue  # no change of phase
            if kind is _MAIL:
                phase = _P_TRANSACTION
                self._mail_refused = False
                self.rcpt_accepted = 0
            elif kind is _DATA:
                self._before_data = phase
                phase = _P_DATA_SENT
            elif kind is _RSET or kind is _EHLO or kind is _HELO:
                # RFC 5321 sections 4.1.1.5 and 4.1.4: RSET, EHLO and HELO end any
                # transaction.
                phase = _P_READY
                self.rcpt_accepted = 0
            elif kind is _AUTH:
                phase = _P_AUTH
            elif kind is _STARTTLS:
                phase = _P_STARTTLS
            elif kind is _QUIT:
                phase = _P_QUIT
        self.phase = phase
        self._writes.append(kinds)
        self.sent_count += len(kinds)

    def body_started(self) -> None:
        """The DATA body is about to be written (after its 354).

        Its final reply is owed from the first byte: a server that gives up on the
        message may answer before the end (see :attr:`early_reply`).
        """
        self._check_body()
        self.early_reply = False
        if self.lmtp:
            self._owe_final(_END)
        else:
            self._writes.append(_END_WRITE)
            self.sent_count += 1

    def body_sent(self) -> None:
        """A whole DATA body, ``CRLF.CRLF`` included, was written in one write
        (:meth:`body_started` and :meth:`body_ended` in one call)."""
        if self.phase is not _P_BODY:
            self._check_body()
        self.early_reply = False
        if self.lmtp:
            self._owe_final(_END)
        else:
            self._writes.append(_END_WRITE)
            self.sent_count += 1
        if self.phase is _P_BODY:
            self.phase = _P_READY

    def body_ended(self) -> None:
        """The last byte of the DATA body (``CRLF.CRLF``) was written."""
        if self.phase is _P_BODY:
            self.phase = _P_READY

    def bdat_sent(self, last: bool) -> None:
        """A BDAT command line was written; its chunk follows (RFC 3030 section 2)."""
        self._check_open()
        self.phase = _P_BODY
        if last and self.lmtp:
            self._owe_final(_BDAT_LAST)
        else:
            self._writes.append(_BDAT_LAST_WRITE if last else _BDAT_WRITE)
            self.sent_count += 1

    @property
    def final_replies(self) -> int:
        """How many replies the end of the message being sent is owed: one over SMTP;
        over LMTP one per successful RCPT, in RCPT order (RFC 2033 section 4.2; with
        none, DATA must fail, so a server that reads a body anyway is owed one)."""
        if not self.lmtp:
            return 1
        return self.rcpt_accepted or 1

    def _owe_final(self, kind: Kind) -> None:
        """LMTP: the end of the message is owed one ``kind`` reply per accepted RCPT."""
        count = self.final_replies
        self._writes.append((kind,) * count)
        self.sent_count += count

    def chunk_written(self, last: bool) -> None:
        """The chunk announced by the last BDAT is written in full."""
        if last and self.phase is _P_BODY:
            self.phase = _P_READY

    def bdat_stopped(self) -> None:
        """The client stopped a BDAT transfer after a refusal, every chunk announced
        written in full and every reply taken: the server is in command mode, with the
        transaction open (RFC 3030 section 2: RSET clears it)."""
        if self.phase is _P_BODY and not self._writes:
            self.phase = _P_TRANSACTION

    def tls_established(self) -> None:
        """The STARTTLS handshake is done: forget everything learnt before it."""
        self.phase = _P_READY
        self.server = ServerState()

    def closed(self) -> None:
        """The connection is gone (lost, aborted or closed after QUIT)."""
        self.phase = _P_CLOSED
        self._writes.clear()
        self._taken = 0

    def end_followed(self) -> bool:
        """True while the final reply to a message is owed and more was written after
        its end: the next transaction pipelined behind it (RFC 2920 section 3.1)."""
        writes = self._writes
        for index, kinds in enumerate(writes):
            if kinds is _END_WRITE:
                return index + 1 < len(writes)
        return False

    # -- the reader's side ----------------------------------------------------------------

    @property
    def owed(self) -> list[Kind]:
        """What each reply still owed answers, in order."""
        owed: list[Kind] = []
        for index, kinds in enumerate(self._writes):
            owed.extend(kinds[self._taken :] if index == 0 else kinds)
        return owed

    def received(self, reply: SMTPResponse) -> Kind:
        """Take the next reply owed; returns what it answers. The caller checks that a
        reply is owed (:meth:`unsolicited` says what to do otherwise)."""
        kind = self._writes[0][self._taken]
        self.took([*([reply] * (self._taken + 1))], self._taken)
        return kind

    def took(self, replies: list[SMTPResponse], start: int) -> None:
        """Take ``replies[start:]``: more replies to the oldest write still owed, in
        order (the shell hands over each write's replies as they arrive, ``start``
        being how many of them it handed over before)."""
        kinds = self._writes[0]
        end = len(replies)
        first = kinds[0]
        if first is _MAIL:
            # A transaction's group (MAIL, RCPT..., maybe DATA): only a 421 anywhere, a
            # refused MAIL and the reply to DATA change anything. (A write that starts
            # otherwise, say RSET then a transaction, is judged reply by reply below.)
            if end - start > 8:  # (many RCPT replies: their codes scanned in one go)
                closing = 421 in [reply.code for reply in replies[start:]]
            else:
                closing = False
                for index in range(start, end):
                    if replies[index].code == 421:
                        closing = True
                        break
            if closing:
                # RFC 5321 section 3.8: the server is closing the channel.
                self.phase = _P_CLOSED
            else:
                if start == 0 and replies[0].code != 250:
                    self._transition(_MAIL, replies[0], replies[0].code)
                if self.lmtp:
                    self._count_rcpts(kinds, replies, start, end)
                last = len(kinds) - 1
                if end > last and kinds[last] is _DATA:
                    self._transition(_DATA, replies[last], replies[last].code)
        elif end == 1:  # a write of one command (or a body) and its one reply
            reply = replies[0]
            code = reply.code
            if code == 421:
                self.phase = _P_CLOSED  # RFC 5321 section 3.8
            else:
                self._transition(first, reply, code)
        else:
            for index in range(start, end):
                reply = replies[index]
                code = reply.code
                if code == 421:
                    self.phase = _P_CLOSED  # RFC 5321 section 3.8
                else:
                    self._transition(kinds[index], reply, code)
        self.received_count += end - start
        if end == len(kinds):
            self._writes.popleft()
            self._taken = 0
        else:
            self._taken = end

    def _count_rcpts(
        self, kinds: tuple[Kind, ...], replies: list[SMTPResponse], start: int, end: int
    ) -> None:
        for index in range(max(start, 1), end):
            if kinds[index] is _RCPT and replies[index].code in (250, 251):
                self.rcpt_accepted += 1

    def _transition(self, kind: Kind, reply: SMTPResponse, code: int) -> None:
        phase = self.phase
        if kind is _MAIL:
            if code != 250:
                # RFC 5321 section 4.1.1.2: a refused MAIL opens no transaction.
                self._mail_refused = True
                if phase is _P_TRANSACTION:
                    self.phase = _P_READY
        elif kind is _DATA:
            if phase is _P_DATA_SENT:
                if code == 354:
                    # Even when the transaction has failed (a pipelining server that
                    # answers DATA anyway): the server now reads a body.
                    self.phase = _P_BODY
                else:
                    self.phase = _P_READY if self._mail_refused else self._before_data
        elif kind is _END:
            if phase is _P_BODY:
                self.early_reply = True
        elif kind is _EHLO:
            if code == 250:
                self.server.record_ehlo(reply)
        elif kind is _HELO:
            if code == 250:
                self.server.last_helo_response = reply
        elif kind is _GREETING:
            if code == 220 and phase is _P_GREETING:
                self.phase = _P_READY
        elif kind is _AUTH:
            if code != 334 and phase is _P_AUTH:
                self.phase = _P_READY
        elif kind is _STARTTLS:
            if code != 220 and phase is _P_STARTTLS:
                self.phase = _P_READY
        elif kind is _QUIT:
            self.phase = _P_CLOSED
        elif kind is _RCPT and (code == 250 or code == 251):
            # A RCPT sent on its own (lockstep): what an LMTP session owes a reply for.
            self.rcpt_accepted += 1

    @staticmethod
    def unsolicited(reply: SMTPResponse | None) -> Exception:
        """What bytes that arrive while no reply is owed mean: the connection ends.

        An unsolicited 421 is the server closing (RFC 5321 section 3.8); anything else
        is an injected or duplicated reply that must never be paired with a later
        command.
        """
        if reply is not None and reply.code == 421:
            return SMTPServerDisconnected(f"Server closed the connection: {reply}")
        return SMTPResponseException(-1, "Unsolicited data from server; connection closed")

    # -- decisions ----------------------------------------------------------------------

    def abandon(self, turn_start: int, *, informed: bool = False) -> Verdict:
        """A caller is leaving its turn early (exception, timeout, cancellation).

        ``turn_start`` is :attr:`sent_count` when the turn began; ``informed`` is True
        when the caller leaves because of a reply it judged (a refusal), so it knows
        the state it leaves. See the module docstring for the rule; comments below say
        why each case is what it is.
        """
        phase = self.phase
        if phase is _P_CLOSED:
            # The server said 421 (or the connection is gone): make sure it is closed.
            return Verdict.ABORT
        if phase in (_P_BODY, _P_DATA_SENT, _P_AUTH, _P_STARTTLS, _P_QUIT):
            # The server reads a body, a SASL response or a TLS handshake (or may, once
            # its 354 arrives); a command written now would be read as one of those.
            return Verdict.ABORT
        owed_by_turn = self.sent_count > turn_start and self.received_count < self.sent_count
        if phase is _P_TRANSACTION and (owed_by_turn or not informed):
            # MAIL/RCPT replies still on their way, or a caller cancelled after they
            # came but before it could act on them: whatever they said, RSET (RFC 5321
            # section 4.1.1.5) returns the server to a state the next caller knows.
            return Verdict.RESET
        # Command mode. Replies still owed are consumed in order and dropped. A caller
        # that saw all its replies and raised (a refused RCPT, say) left a transaction
        # it knows about (aiosmtplib does not RSET after rcpt() either).
        return Verdict.KEEP

    def kind_of(self, verb: bytes) -> Kind:
        """What the reply to a command line starting with ``verb`` will answer.

        In the middle of an AUTH exchange every line is a SASL response (RFC 4954
        section 4), whatever it looks like.
        """
        if self.phase is _P_AUTH:
            return _AUTH
        verb = verb.upper()
        if self.lmtp and verb == b"LHLO":
            return _EHLO  # RFC 2033 section 4.1: LHLO is LMTP's EHLO
        return _VERB_KINDS.get(verb, _COMMAND)

    def plan(
        self,
        utf8: bool,
        binary: bool,
        pipelining: bool | None,
        chunking: bool | None,
    ) -> TransactionPlan:
        """Decide how a message goes out, from the options and what EHLO said.

        ``pipelining``/``chunking``: None uses an extension when advertised, False
        never, True requires it (SMTPNotSupported otherwise). The message size is
        announced only when the server advertises SIZE (RFC 1870).
        """
        extensions = self.server.extensions
        if utf8 and "smtputf8" not in extensions:
            raise SMTPNotSupported(SMTPUTF8_NOT_SUPPORTED)
        advertised = "pipelining" in extensions
        if pipelining and not advertised:
            raise SMTPNotSupported("PIPELINING is not supported by this server")
        pipelined = advertised and pipelining is not False
        chunk_advertised = "chunking" in extensions
        if binary:
            # RFC 3030 section 3: a BINARYMIME body can only be sent with BDAT.
            if chunking is False:
                raise ValueError("BODY=BINARYMIME needs BDAT, but chunking=False")
            if not (chunk_advertised and "binarymime" in extensions):
                raise SMTPNotSupported("BINARYMIME is not supported by this server")
            chunked = True
        else:
            if chunking and not chunk_advertised:
                raise SMTPNotSupported("CHUNKING is not supported by this server")
            chunked = chunk_advertised and chunking is not False
        return _PLANS[pipelined, chunked, "size" in extensions]

    def judge_final(self, reply: SMTPResponse) -> SMTPResponse:
        """The reply to a whole message (after ``CRLF.CRLF`` or BDAT LAST): 250, or
        SMTPDataError (RFC 5321 section 4.1.1.4; a 421 also closes, section 3.8)."""
        if reply.code != 250:
            raise SMTPDataError(reply.code, reply.message)
        return reply

    # -- internals ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.phase is _P_CLOSED:
            raise SMTPServerDisconnected("Connection lost")

    def _check_body(self) -> None:
        # Only a 354 read from this connection lets a body go: a 354 made up elsewhere (a
        # subclass's execute_command answering DATA itself) would put the body's lines in
        # front of a server that reads them as commands.
        self._check_open()
        if self.phase is not _P_BODY:
            raise SMTPException(
                "The server has not answered DATA with 354 on this connection; "
                "the message body was not sent"
            )
