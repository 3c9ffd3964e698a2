"""Throughput of fastsmtp.celery: one Celery worker process against two, to smtp-sink.

Starts its own redis-server (Unix socket, as tests/fleet does), Postfix's ``smtp-sink``
(``roundtrips.start_sink``) and ``celery worker --pool threads`` processes running
``tests/fleet/celery_app.py``; queues N messages through ``enqueue_send`` and times from
the first enqueue to the last result. Redis cost per message: the calls and the server
time of the fleet's scripts (``INFO commandstats``: EVALSHA/EVAL on the ledger and
limiter database), divided by N.

    .venv/bin/python benchmarks/fleet.py --messages 5000 --workers 1 2 [--rate 0]

Run from the repository root (the workers import ``tests.fleet.celery_app``).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import redis  # noqa: E402
from tests.fleet.redis_server import start_redis  # noqa: E402
from tests.fleet.workers import start_celery_worker  # noqa: E402

import roundtrips  # noqa: E402


def script_stats(client: redis.Redis) -> tuple[int, int, int]:
    """(calls, microseconds) of EVAL/EVALSHA since the last reset, and every command's
    calls (Celery's broker and result traffic included)."""
    stats = client.info("commandstats")
    calls = usec = 0
    for name in ("cmdstat_evalsha", "cmdstat_eval"):
        if name in stats:
            calls += int(stats[name]["calls"])
            usec += int(stats[name]["usec"])
    return calls, usec, sum(int(v["calls"]) for v in stats.values())


def run(
    socket: str, port: int, workers: int, messages: int, rate: int, concurrency: int
) -> dict[str, float]:
    env = {
        "FLEET_REDIS_SOCKET": socket,
        "FLEET_SMTP_PORT": str(port),
        "FLEET_CONNECTIONS": str(concurrency),
        "FLEET_VISIBILITY_TIMEOUT": "60",
    }
    if rate:
        env["FLEET_RATE"] = str(rate)
    os.environ.update(env)
    from tests.fleet.celery_app import send

    from fastsmtp.celery import enqueue_send

    producer = redis.Redis(unix_socket_path=socket, db=2)
    producer.flushall()
    started = [start_celery_worker(f"b{i}", env, concurrency) for i in range(workers)]
    try:
        for w in started:
            w.wait_ready()
        producer.config_resetstat()
        t0 = time.perf_counter()
        results = [
            enqueue_send(send, producer, f"Message-ID: <b{i}@bench>\r\n\r\nx\r\n",
                         "s@bench.test", ["r@bench.test"])
            for i in range(messages)
        ]  # fmt: skip
        enqueued = time.perf_counter() - t0
        statuses = [r.get(timeout=600)["status"] for r in results]
        elapsed = time.perf_counter() - t0
        calls, usec, everything = script_stats(producer)
    finally:
        for w in started:
            w.stop()
        producer.close()
    assert statuses.count("sent") == messages, "not every message was sent"
    return {
        "msg_per_s": messages / elapsed,
        "enqueue_s": enqueued,
        "elapsed_s": elapsed,
        # the producer's own ENQUEUE script is one of these calls
        "scripts_per_msg": calls / messages,
        "script_us_per_msg": usec / messages,
        "commands_per_msg": everything / messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rate", type=int, default=0, help="shared limit per second (0: none)")
    parser.add_argument("--concurrency", type=int, default=8, help="threads and connections")
    args = parser.parse_args()
    print(
        "| workers | msg/s | enqueue s | total s | fleet scripts/msg | script time/msg "
        "| all Redis commands/msg |"
    )
    print("|---|---|---|---|---|---|---|")
    server = start_redis()
    assert server.process.stdout is not None
    threading.Thread(target=server.process.stdout.read, daemon=True).start()
    try:
        with roundtrips.start_sink("smtp-sink") as (_, port):
            for n in args.workers:
                r = run(server.socket, port, n, args.messages, args.rate, args.concurrency)
                print(
                    f"| {n} | {r['msg_per_s']:.0f} | {r['enqueue_s']:.1f} | "
                    f"{r['elapsed_s']:.1f} | {r['scripts_per_msg']:.2f} | "
                    f"{r['script_us_per_msg']:.0f} µs | {r['commands_per_msg']:.1f} |",
                    flush=True,
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
