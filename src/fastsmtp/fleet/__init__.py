"""Sending from a fleet of workers: a shared rate limit and a delivery ledger on Redis.

Needs the ``redis`` extra (``pip install 'fastsmtplib[redis]'``): redis-py's asyncio
client. ``fastsmtp.celery`` and ``fastsmtp.taskiq`` build on these.

- :class:`RedisRateLimiter`: one limit for every worker (``SMTPPool(rate_limiter=...)``).
- :class:`DeliveryLedger`: claimed / sending / sent / unknown / failed per message.
- :func:`send_once`: claim, send through a pool, record; returns plain data.
- :class:`FleetRuntime`: one loop thread with one pool per worker process (for
  synchronous workers such as Celery's), built from :class:`FleetSettings`.
"""

from __future__ import annotations

from ._ledger import Claim, DeliveryLedger, LeaseLost, LedgerState
from ._limiter import RedisRateLimiter
from ._runtime import Fleet, FleetRuntime, FleetSettings
from ._send import message_key, result_data, send_once

__all__ = (
    "Claim",
    "DeliveryLedger",
    "Fleet",
    "FleetRuntime",
    "FleetSettings",
    "LeaseLost",
    "LedgerState",
    "RedisRateLimiter",
    "message_key",
    "result_data",
    "send_once",
)
