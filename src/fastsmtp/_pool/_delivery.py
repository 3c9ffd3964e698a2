"""One message through the pool: attempts on checked-out connections, and retries.

An attempt is one mail transaction on one connection. The connection is held (checked
out) only until the message is out: RFC 2920 section 3.1 lets the next transaction's
commands go out while this one's final reply is on its way, so the connection goes back
to the pool first and the final reply is awaited after (the reply FIFO of the client
keeps the pairing exact). To a host that broke on that (:mod:`._pipelining`), the
connection is held until the final reply instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..protocol import SMTPProtocol
from ..results import SendResult
from ..smtp import SMTP, Submission
from ._job import Job
from ._pipelining import Pipelining, unanswered
from ._policy import Outcome, RetryPolicy, Tally, connection_fate
from ._rate import RateLimiter
from ._store import ConnectionStore

__all__ = ("Delivery",)

log = logging.getLogger("fastsmtp")


class Delivery:
    """Sends jobs through ``store`` under ``policy``; ``message_rate`` limits the
    transactions started."""

    def __init__(
        self, store: ConnectionStore, policy: RetryPolicy, message_rate: RateLimiter | None
    ) -> None:
        self.store = store
        self.policy = policy
        self._message_rate = message_rate
        self.pipelining = Pipelining()

    async def deliver(self, job: Job) -> SendResult:
        """Send one message, retrying what may be retried; never raises an Exception."""
        tally = Tally(job.recipients)
        allowed = self.policy.max_attempts
        while True:
            outcome = await self.attempt(job, tally.pending)
            if outcome.unanswered and allowed == self.policy.max_attempts and job.replayable:
                # Lost behind another message's end of data, none of its commands
                # answered: nothing of it was accepted. Again at once, once, and not
                # counted against max_attempts (the pool's pipelining cost it).
                tally.result.attempts += 1
                allowed += 1
                log.info(
                    "fastsmtp pool: sending a message again at once: none of its "
                    "commands was answered before the connection was lost"
                )
                continue
            if not tally.add(outcome):
                break
            if tally.result.attempts >= allowed or not job.replayable:
                break
            log.debug("pool: attempt %d failed transiently; retrying", tally.result.attempts)
            if not await self._backoff(tally.result.attempts):
                break
        return tally.finish()

    async def attempt(self, job: Job, recipients: list[str]) -> Outcome:
        """One transaction on one connection; exceptions are returned, not raised."""
        if self._message_rate is not None:
            await self._message_rate.acquire()
        submission: Submission
        try:
            async with self.store.checkout() as conn:
                client = conn.client
                enhanced, relay = conn.enhanced, conn.relay.name
                protocol = client._link.protocol
                across = self.pipelining.across(client)
                if job.before_attempt is not None:  # e.g. fastsmtp.fleet's ledger and limit
                    try:
                        await job.before_attempt()
                    except Exception as exc:  # nothing written: the connection is as it was
                        return Outcome(None, None, exc, enhanced, False, relay)
                try:
                    submission = await job.start(
                        client, recipients, self.store.slots.waiting if across else None
                    )
                except Exception as exc:
                    conn.messages += 1
                    conn.fate = connection_fate(exc, client)
                    lost = unanswered(protocol, exc)
                    if lost:
                        self.pipelining.broke(client)
                    return Outcome(None, None, exc, enhanced, False, relay, unanswered=lost)
                conn.messages += 1
                if not across:
                    # The next transaction waits for this one's final reply.
                    outcome = await self._final(submission, enhanced, protocol, client, relay)
                    if outcome.exception is not None:
                        conn.fate = connection_fate(outcome.exception, client)
                    return outcome
        except Exception as exc:  # from the checkout: the block returns its own
            return Outcome(None, None, exc, False, False)
        # The message is out and the connection back in the pool (RFC 2920 section 3.1).
        # Check-in did not suspend, so no cancellation can come between the end of the
        # block and this await: the final reply is always awaited (else the client's
        # pending awaitable would be dropped un-awaited and the verdict lost).
        return await self._final(submission, enhanced, protocol, client, relay)

    async def _final(
        self,
        submission: Submission,
        enhanced: bool,
        protocol: SMTPProtocol | None,
        client: SMTP,
        relay: str,
    ) -> Outcome:
        """The outcome of a message that is out: its final reply, or why none came."""
        try:
            response = await submission.reply()
        except Exception as exc:
            # No RSET: the transaction has ended, and the connection may already carry
            # the next one.
            if protocol is not None and protocol.lost_behind_end:
                self.pipelining.broke(client)
            return Outcome(None, None, exc, enhanced, True, relay)
        return Outcome(submission.refused, response, None, enhanced, True, relay)

    async def _backoff(self, attempt: int) -> bool:
        """Wait before retry ``attempt`` + 1; False if the pool closed meanwhile."""
        closing = self.store.closing()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(closing.wait(), self.policy.delay(attempt))
        return not closing.is_set()
