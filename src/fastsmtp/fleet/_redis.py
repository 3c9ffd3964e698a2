"""The optional redis-py import, with a clear error naming the extra."""

from __future__ import annotations

try:
    import redis.asyncio as redis_asyncio
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastsmtp.fleet needs redis-py: pip install 'fastsmtplib[redis]'"
    ) from exc

__all__ = ("Redis", "redis_asyncio")

Redis = redis_asyncio.Redis
