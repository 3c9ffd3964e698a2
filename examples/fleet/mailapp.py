"""A Celery app that sends mail through fastsmtp from a fleet of workers.

Every worker process keeps one loop and one SMTPPool; a rate limit in Redis holds for the
whole fleet; a delivery ledger in Redis sends each message at most once and reports the
ones that may have gone (``outcome_unknown``). See README.md beside this file.

Environment: REDIS_URL (default redis://127.0.0.1:6379), SMTP_HOST, SMTP_PORT (default
127.0.0.1:2525), RATE (messages per second for the fleet, default 100).
"""

from __future__ import annotations

import os

from celery import Celery

from fastsmtp.celery import register_send_task
from fastsmtp.fleet import FleetSettings

REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")

app = Celery("mailapp", broker=f"{REDIS}/0", backend=f"{REDIS}/1")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=4,
    # A task whose worker died is queued again after this long (the ledger keeps it once).
    broker_transport_options={"visibility_timeout": 300},
)

send = register_send_task(
    app,
    FleetSettings(
        redis_url=f"{REDIS}/2",
        pool={
            "hostname": os.environ.get("SMTP_HOST", "127.0.0.1"),
            "port": int(os.environ.get("SMTP_PORT", "2525")),
            "max_connections": 16,
        },
        rate_limit=int(os.environ.get("RATE", "100")),
        rate_key="mailapp:rate:relay1",
    ),
)
