"""The Celery app the fleet tests' worker processes run (``celery -A tests.fleet.celery_app``).

Configured from the environment the test gives each worker: the Redis socket (broker,
results and the fleet's ledger/limiter in separate databases), the SMTP server's port,
the shared rate limit, the ledger's lease and grace, and the event loop.
"""

from __future__ import annotations

import os

from celery import Celery

from fastsmtp.celery import register_send_task
from fastsmtp.fleet import FleetSettings

SOCKET = os.environ["FLEET_REDIS_SOCKET"]
VISIBILITY = float(os.environ.get("FLEET_VISIBILITY_TIMEOUT", "4"))

app = Celery(
    "fleet_test",
    broker=f"redis+socket://{SOCKET}?virtual_host=0",
    backend=f"redis+socket://{SOCKET}?virtual_host=1",
)
app.conf.update(
    # A worker killed with tasks unacknowledged gets them redelivered after this long
    # (checked every second): short, so the tests see it.
    broker_transport_options={
        "visibility_timeout": VISIBILITY,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    result_backend_transport_options={"visibility_timeout": VISIBILITY},
    worker_prefetch_multiplier=2,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
)

rate = os.environ.get("FLEET_RATE")
send = register_send_task(
    app,
    FleetSettings(
        redis_url=f"unix://{SOCKET}?db=2",
        pool={
            "hostname": "127.0.0.1",
            "port": int(os.environ["FLEET_SMTP_PORT"]),
            "local_hostname": "worker.test",
            "max_connections": int(os.environ.get("FLEET_CONNECTIONS", "8")),
            "timeout": 5.0,
            "backoff_base": 0.05,
            "backoff_max": 0.2,
        },
        rate_limit=int(rate) if rate else None,
        rate_burst=int(os.environ.get("FLEET_BURST", "0")),
        rate_key="fleet-test:rate",
        lease=float(os.environ.get("FLEET_LEASE", "3")),
        sending_grace=float(os.environ.get("FLEET_GRACE", "30")),
        loop=os.environ.get("FASTSMTP_TEST_LOOP") or "asyncio",
    ),
    backoff_base=0.2,
    backoff_max=1.0,
    busy_countdown=1.0,
)
