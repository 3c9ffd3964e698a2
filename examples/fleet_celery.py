"""Send mail from Celery workers, with Redis: a shared rate limit, each message once.

Start one or more workers (each keeps one event loop and one SMTPPool for its life), then
queue from any process::

    pip install "fastsmtplib[celery]"
    cd examples
    celery -A fleet_celery worker --pool threads --concurrency 16    # as many as you like
    python fleet_celery.py                                           # queue 3, wait for them

CELERY_BROKER_URL (the broker and the results), FLEET_REDIS_URL (the fleet's ledger and
limiter), SMTP_HOST, SMTP_PORT, SMTP_USERNAME, SMTP_PASSWORD from the environment (the
workers need them too). Run by tests/docs/test_fleet_celery_example.py with a real
redis-server and a real Celery worker.
"""

# expect-messages: 3
# example-needs: redis

from __future__ import annotations

import os
import sys
from email.message import EmailMessage
from email.utils import make_msgid

import redis
from celery import Celery

from fastsmtp.celery import enqueue_send, register_send_task
from fastsmtp.fleet import FleetSettings

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
FLEET_REDIS_URL = os.environ.get("FLEET_REDIS_URL", "redis://127.0.0.1:6379/2")

# [app]
app = Celery("mail", broker=CELERY_BROKER_URL, backend=CELERY_BROKER_URL)
send = register_send_task(
    app,
    FleetSettings(
        redis_url=FLEET_REDIS_URL,  # the ledger and the shared rate limit
        pool={
            "hostname": HOST,
            "port": PORT,
            "start_tls": True,
            "username": USERNAME,
            "password": PASSWORD,
            "max_connections": 16,
        },
        rate_limit=100,  # per second, for every worker together
    ),
)
# celery -A fleet_celery worker --pool threads --concurrency 16   (on as many machines as you like)
# [app]


def welcome(n: int) -> str:
    message = EmailMessage()
    message["From"] = "hello@example.com"
    message["To"] = f"member{n}@example.org"
    message["Subject"] = "Welcome"
    message["Message-ID"] = make_msgid(domain="example.com")  # the idempotency key
    message.set_content("Welcome to the club.\n")
    return message.as_string()


def main() -> int:
    ledger = redis.Redis.from_url(FLEET_REDIS_URL)
    failed = 0
    for n in range(3):
        message_text = welcome(n)
        # [enqueue]
        result = enqueue_send(
            send, ledger, message_text, "hello@example.com", [f"member{n}@example.org"]
        )
        # a dict: {"status": "sent", "queue_id": ..., "reply": {...}, "ledger": "new", ...}
        outcome = result.get(timeout=60)
        # [enqueue]
        print(outcome["key"], outcome["ledger"], outcome["status"], outcome["queue_id"])
        failed += outcome["status"] != "sent"
    ledger.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
