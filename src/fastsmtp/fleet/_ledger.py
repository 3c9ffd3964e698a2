"""The delivery ledger: which message has gone, shared by every worker through Redis.

One Redis hash per message, keyed by an idempotency key (the caller's, or the
Message-ID). Its state moves only forward, each step one atomic Lua script:

- ``queued`` (optional, by the producer before it hands the message to the queue): a
  task queue can lose a task (Celery's Redis broker, between taking a message from the
  list and recording it as unacknowledged, if the worker is killed there; taskiq-redis's
  stream broker reclaims a dead worker's tasks only when new ones arrive), so
  :meth:`DeliveryLedger.stale` finds the entries not settled in time, to be queued
  again (the ledger still sends each message once).
- ``claimed``: a worker took the message (before the rate limit and the connection).
  The claim is a lease: if the worker dies before it starts the transaction, another
  worker may claim the message ``lease`` seconds later and send it.
- ``sending``: set just before the transaction starts (MAIL), by the claim's owner
  only; from here the server may get the message, so it is never sent again
  automatically. A ``sending`` entry older than ``sending_grace`` (its worker died
  mid-transaction) becomes ``unknown`` when someone next asks for it.
- ``sent`` (final reply 250; the queue id and reply kept), ``unknown`` (the end of the
  message went out and no final reply came: reported, never resent, RFC 1047),
  ``failed`` (permanent, with the reason), ``failed_temporarily`` (nothing delivered;
  a later claim may try again).

Final entries are kept ``retention`` seconds (Redis expiry), so memory grows with the
messages sent in that time (about 200-400 bytes each with a short reply).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from ._redis import Redis

__all__ = ("Claim", "DeliveryLedger", "LeaseLost", "LedgerState")


class LedgerState(str, enum.Enum):
    """A message's state in the ledger."""

    QUEUED = "queued"
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    UNKNOWN = "unknown"
    FAILED = "failed"
    FAILED_TEMPORARILY = "failed_temporarily"


class LeaseLost(Exception):
    """The claim expired (or another worker holds the message now): nothing was sent."""


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: ``won`` (this worker sends), or why not."""

    #: ``claimed`` when won; else the state found (``busy`` while another worker holds
    #: a live claim or is sending).
    state: str
    #: The recorded result of a final entry (plain data), else None.
    record: dict[str, Any] | None

    @property
    def won(self) -> bool:
        return self.state == LedgerState.CLAIMED.value


# Times are the Redis server's (TIME), in milliseconds: one clock for the whole fleet.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1]; ARGV: owner, lease ms, sending grace ms, retention ms. A claim's lease is a
# field (l), not the key's expiry: an entry never vanishes before its retention, so a
# message whose task was lost stays visible to `stale`.
_CLAIM = _NOW + """
local s = redis.call('HGET', KEYS[1], 's')
if s == 'claimed' and now < tonumber(redis.call('HGET', KEYS[1], 'l')) then
  return {'busy', ''}
end
if (not s) or s == 'queued' or s == 'claimed' or s == 'failed_temporarily' then
  redis.call('HSET', KEYS[1], 's', 'claimed', 'o', ARGV[1], 't', now,
             'l', now + tonumber(ARGV[2]), 'r', '')
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'claimed', ''}
end
if s == 'sending' then
  if now - tonumber(redis.call('HGET', KEYS[1], 't')) < tonumber(ARGV[3]) then
    return {'busy', ''}
  end
  redis.call('HSET', KEYS[1], 's', 'unknown', 't', now, 'r', '')
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'unknown', ''}
end
return {s, redis.call('HGET', KEYS[1], 'r') or ''}
"""

# KEYS[1]; ARGV: retention ms. 1 if the entry was new (now `queued`).
_ENQUEUE = _NOW + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 's', 'queued', 't', now)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# KEYS[1]; ARGV: owner, retention ms. 1 if the owner may start a transaction now.
_BEGIN = _NOW + """
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return 0 end
local s = redis.call('HGET', KEYS[1], 's')
if s ~= 'claimed' and s ~= 'sending' then return 0 end
redis.call('HSET', KEYS[1], 's', 'sending', 't', now)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS[1]; ARGV: owner, state, record (JSON), retention ms. The owner records the truth
# even over an `unknown` set meanwhile by another worker's claim (it was slow, not dead).
_FINISH = _NOW + """
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 's', ARGV[2], 't', now, 'r', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""


class DeliveryLedger:
    """Claims and records messages in Redis under ``prefix``; see the module docs.

    ``lease`` must cover the wait for the rate limit and a connection (a too-short
    lease is safe: the worker gives the message up, ``LeaseLost``, before sending);
    ``sending_grace`` must exceed the longest transaction (retries included) a live
    worker can take; ``retention`` is how long final entries are kept.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "fastsmtp:ledger",
        lease: float = 300.0,
        sending_grace: float = 900.0,
        retention: float = 7 * 86400.0,
    ) -> None:
        if min(lease, sending_grace, retention) <= 0:
            raise ValueError("lease, sending_grace and retention must be positive")
        self.redis = redis
        self.prefix = prefix
        self.lease_ms = max(1, round(lease * 1000))
        self.grace_ms = max(1, round(sending_grace * 1000))
        self.retention_ms = max(1, round(retention * 1000))
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._begin = redis.register_script(_BEGIN)
        self._finish = redis.register_script(_FINISH)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    async def enqueue(self, key: str) -> bool:
        """Note ``key`` as ``queued`` (producer side); False if it has an entry already."""
        return bool(await self._enqueue(keys=[self._key(key)], args=[self.retention_ms]))

    async def stale(self, older_than: float) -> list[str]:
        """Keys ``queued``, ``claimed`` or ``sending`` unchanged for ``older_than``
        seconds: their tasks were lost (or their workers died); queue them again, and
        the ledger sends each at most once (a ``sending`` one is reported ``unknown``).

        A SCAN of the whole prefix: run it as a periodic sweep, not per message.
        """
        seconds, micros = await self.redis.time()
        limit = int(seconds) * 1000 + int(micros) // 1000 - round(older_than * 1000)
        found = []
        start = len(self.prefix) + 1
        async for raw in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000):
            state, at = await self.redis.hmget(raw, ["s", "t"])
            if state in (b"queued", b"claimed", b"sending") and at and int(at) <= limit:
                found.append((raw.decode() if isinstance(raw, bytes) else raw)[start:])
        return found

    async def claim(self, key: str, owner: str) -> Claim:
        """Take the message for ``owner``, or say who has it (one round trip)."""
        state, raw = await self._claim(
            keys=[self._key(key)],
            args=[owner, self.lease_ms, self.grace_ms, self.retention_ms],
        )
        state = state.decode() if isinstance(state, bytes) else str(state)
        record = json.loads(raw) if raw else None
        return Claim(state, record)

    async def begin(self, key: str, owner: str) -> None:
        """Mark the message ``sending`` before its transaction; LeaseLost if not ours."""
        if not await self._begin(keys=[self._key(key)], args=[owner, self.retention_ms]):
            raise LeaseLost(f"the claim on {key!r} was lost before sending")

    async def finish(
        self, key: str, owner: str, state: LedgerState, record: dict[str, Any]
    ) -> bool:
        """Record the final state; False if the entry is no longer ``owner``'s."""
        done = await self._finish(
            keys=[self._key(key)],
            args=[owner, state.value, json.dumps(record), self.retention_ms],
        )
        return bool(done)

    async def state(self, key: str) -> tuple[str | None, dict[str, Any] | None]:
        """The state and record of ``key`` now (None, None if absent)."""
        state, raw = await self.redis.hmget(self._key(key), ["s", "r"])
        text = state.decode() if isinstance(state, bytes) else state
        return text, (json.loads(raw) if raw else None)
