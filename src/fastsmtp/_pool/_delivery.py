"""One message through the pool: attempts on checked-out connections, and retries.

An attempt is one mail transaction on one connection. The connection is held (checked
out) only until the message is out: RFC 2920 section 3.1 lets the next transaction's
commands go out while this one's final reply is on its way, so the connection goes back
to the pool first and the final reply is awaited after (the reply FIFO of the client
keeps the pairing exact).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..results import SendResult
from ..smtp import Submission
from ._job import Job
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

    async def deliver(self, job: Job) -> SendResult:
        """Send one message, retrying what may be retried; never raises an Exception."""
        tally = Tally(job.recipients)
        while True:
            outcome = await self.attempt(job, tally.pending)
            if not tally.add(outcome):
                break
            if tally.result.attempts >= self.policy.max_attempts or not job.replayable:
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
                enhanced, relay = conn.enhanced, conn.relay.name
                if job.before_attempt is not None:  # e.g. fastsmtp.fleet's ledger and limit
                    try:
                        await job.before_attempt()
                    except Exception as exc:  # nothing written: the connection is as it was
                        return Outcome(None, None, exc, enhanced, False, relay)
                try:
                    submission = await job.start(conn.client, recipients)
                except Exception as exc:
                    conn.messages += 1
                    conn.fate = connection_fate(exc, conn.client)
                    return Outcome(None, None, exc, enhanced, False, relay)
                conn.messages += 1
        except Exception as exc:  # from the checkout: the block returns its own
            return Outcome(None, None, exc, False, False)
        # The message is out and the connection back in the pool (RFC 2920 section 3.1).
        # Check-in did not suspend, so no cancellation can come between the end of the
        # block and this await: the final reply is always awaited (else the client's
        # pending awaitable would be dropped un-awaited and the verdict lost).
        try:
            response = await submission.reply()
        except Exception as exc:
            # No RSET: the transaction has ended, and the connection may already carry
            # the next one.
            return Outcome(None, None, exc, enhanced, True, relay)
        return Outcome(submission.refused, response, None, enhanced, True, relay)

    async def _backoff(self, attempt: int) -> bool:
        """Wait before retry ``attempt`` + 1; False if the pool closed meanwhile."""
        closing = self.store.closing()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(closing.wait(), self.policy.delay(attempt))
        return not closing.is_set()
