"""One message through a pool, once across a fleet: claim, send, record.

``send_once`` is what a task queue's worker runs per message; it returns plain data
(JSON-able), so a task can return it as is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from typing import Any

from .._pool._job import Job, message_job, recipient_list
from .._pool._rate import RateLimiter
from ..pool import SMTPPool
from ..results import SendResult, SendStatus
from ._ledger import DeliveryLedger, LeaseLost, LedgerState

__all__ = ("result_data", "send_once")

_LEDGER_STATE = {
    SendStatus.SENT: LedgerState.SENT,
    SendStatus.PARTIALLY_SENT: LedgerState.SENT,
    SendStatus.FAILED_PERMANENTLY: LedgerState.FAILED,
    SendStatus.FAILED_TEMPORARILY: LedgerState.FAILED_TEMPORARILY,
    SendStatus.OUTCOME_UNKNOWN: LedgerState.UNKNOWN,
}


def result_data(result: SendResult) -> dict[str, Any]:
    """A ``SendResult`` as plain data (str, int, list, dict, None): JSON-able."""
    reply = result.reply
    exc = result.exception
    return {
        "status": result.status.value,
        "accepted": list(result.accepted),
        "refused": {
            rcpt: {"code": r.code, "enhanced_status": r.enhanced_status, "text": r.text}
            for rcpt, r in result.refused.items()
        },
        "reply": None if reply is None else {"code": reply.code, "text": reply.message},
        "queue_id": result.queue_id,
        "attempts": result.attempts,
        "error": None if exc is None else f"{type(exc).__name__}: {exc}",
        "error_code": getattr(exc, "code", None),
    }


def message_key(message: Message | bytes | str) -> str:
    """The Message-ID of ``message`` (the idempotency key when none is given)."""
    if isinstance(message, Message):
        headers: Message = message
    elif isinstance(message, bytes):
        headers = BytesHeaderParser().parsebytes(message)
    else:
        headers = HeaderParser().parsestr(message)
    value = headers.get("Message-ID")
    if not value or not str(value).strip():
        raise ValueError("the message has no Message-ID: pass an idempotency key")
    return str(value).strip()


async def send_once(
    pool: SMTPPool,
    ledger: DeliveryLedger,
    message: Message | bytes | str,
    *,
    sender: str | None = None,
    recipients: str | Sequence[str] | None = None,
    key: str | None = None,
    limiter: RateLimiter | None = None,
    on_result: Callable[[SendResult], None] | None = None,
) -> dict[str, Any]:
    """Send ``message`` through ``pool`` unless some worker of the fleet has (or may
    have) sent it; the outcome as plain data.

    The result is ``result_data``'s dict plus ``key`` and ``ledger``: ``"new"`` when
    this call sent (or tried) it; ``"busy"`` when another worker holds it now (ask
    again later); else the state found, ``"sent"``, ``"unknown"`` or ``"failed"``,
    with that earlier attempt's record. Only a ``failed_temporarily`` entry is tried
    again. Raises (before anything is sent) for a bad message or a Redis error.

    ``limiter`` (e.g. a :class:`RedisRateLimiter` shared by the fleet) is acquired on the
    checked-out connection, right before MAIL, so the relay sees the transactions at
    the limiter's pace (a pool's own ``rate_limiter`` is acquired before the checkout,
    so a connection being opened delays the MAIL after it). ``on_result`` is called
    with the ``SendResult`` when this call sent (or tried) the message.
    """
    key = message_key(message) if key is None else key
    if isinstance(message, Message):
        job = message_job(message, sender, recipients)
    else:
        if sender is None or recipients is None:
            raise ValueError("sender and recipients are required for a bytes or str message")
        job = Job(message, sender, recipient_list(recipients), {})
    owner = uuid.uuid4().hex
    claim = await ledger.claim(key, owner)
    if not claim.won:
        found = dict(claim.record or {"status": None})
        if claim.record is None and claim.state == LedgerState.UNKNOWN.value:
            # Its worker died mid-transaction (the entry outlived sending_grace).
            found.update(status=SendStatus.OUTCOME_UNKNOWN.value, error="sender lost")
        found.update(key=key, ledger=claim.state)
        return found

    async def begin() -> None:
        if limiter is not None:
            await limiter.acquire()
        await ledger.begin(key, owner)  # the last check, right before MAIL

    job.before_attempt = begin
    result = await pool._delivery.deliver(job)
    if on_result is not None:  # e.g. fastsmtp.otel's measure()
        on_result(result)
    data = result_data(result)
    data.update(key=key, ledger="new")
    if isinstance(result.exception, LeaseLost):
        # Nothing was sent (the check comes before the transaction); another worker
        # has the message now, or will.
        data["ledger"] = "busy"
        return data
    await ledger.finish(key, owner, _LEDGER_STATE[result.status], data)
    return data
