"""The taskiq broker the fleet tests' worker processes run (``taskiq worker
tests.fleet.taskiq_app:broker``), configured from the environment like celery_app.py.
"""

from __future__ import annotations

import os

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from fastsmtp.fleet import FleetSettings
from fastsmtp.taskiq import register_send_task

SOCKET = os.environ["FLEET_REDIS_SOCKET"]

# A task whose worker died is claimed by another (XAUTOCLAIM) after idle_timeout ms.
broker = RedisStreamBroker(
    f"unix://{SOCKET}?db=3", idle_timeout=3000, xread_block=500
).with_result_backend(RedisAsyncResultBackend(f"unix://{SOCKET}?db=4", result_ex_time=3600))

send = register_send_task(
    broker,
    FleetSettings(
        redis_url=f"unix://{SOCKET}?db=2",
        pool={
            "hostname": "127.0.0.1",
            "port": int(os.environ.get("FLEET_SMTP_PORT", "25")),
            "local_hostname": "worker.test",
            "max_connections": 8,
            "timeout": 5.0,
            "backoff_base": 0.05,
            "backoff_max": 0.2,
        },
        rate_key="fleet-test:rate",
        lease=3.0,
        sending_grace=float(os.environ.get("FLEET_GRACE", "8")),
        loop="asyncio",
    ),
    backoff_base=0.2,
    backoff_max=1.0,
    busy_wait=1.0,
)
