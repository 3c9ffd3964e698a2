"""Queue N messages for the workers of mailapp.py and report what happened to each.

    python send_batch.py 10000
"""

from __future__ import annotations

import collections
import sys
import time

import redis
from mailapp import REDIS, send

from fastsmtp.celery import enqueue_send


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    ledger = redis.Redis.from_url(f"{REDIS}/2")
    start = time.monotonic()
    results = [
        enqueue_send(
            send,
            ledger,
            f"Message-ID: <demo{i}.{int(start)}@example.test>\r\n"
            f"From: demo@example.test\r\nTo: user{i}@example.test\r\nSubject: demo {i}\r\n"
            f"\r\nmessage {i}\r\n",
            "demo@example.test",
            [f"user{i}@example.test"],
        )
        for i in range(count)
    ]
    print(f"queued {count} messages in {time.monotonic() - start:.1f} s")
    statuses = collections.Counter(r.get(timeout=3600)["status"] for r in results)
    elapsed = time.monotonic() - start
    print(f"done in {elapsed:.1f} s ({count / elapsed:.0f} msg/s): {dict(statuses)}")


if __name__ == "__main__":
    main()
