"""Sending mail from Celery workers: one loop and one pool per worker process, once.

Needs the ``celery`` extra (``pip install 'fastsmtplib[celery]'``)::

    from celery import Celery
    from fastsmtp.celery import register_send_task
    from fastsmtp.fleet import FleetSettings

    app = Celery("mail", broker="redis://localhost:6379/0", backend="redis://localhost:6379/1")
    send = register_send_task(app, FleetSettings(
        redis_url="redis://localhost:6379/2",
        pool={"hostname": "smtp.example.com", "port": 587, "start_tls": True},
        rate_limit=50,  # per second, for the whole fleet
    ))
    send.delay(message_text, "from@example.com", ["to@example.com"])

Each worker process keeps one :class:`fastsmtp.fleet.FleetRuntime` (a loop thread with
one ``SMTPPool``) for its life; run the worker with ``--pool threads`` (many tasks feed
the one pool) or prefork (a runtime per child). The task returns
:func:`fastsmtp.fleet.send_once`'s plain data. Retries by reply class: a temporary failure
(4yz, a connection lost before the message was out) is retried by Celery with exponential
backoff; a permanent one (5yz) and an unknown outcome are returned, never retried; a
message another worker holds is retried later. The task is ``acks_late``: a message
redelivered after a worker died is checked against the delivery ledger, so it is sent at
most once, and a message that may have gone out is reported ``unknown``.
"""

from __future__ import annotations

import random
from typing import Any

try:
    from celery import Celery, Task, signals
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("fastsmtp.celery needs Celery: pip install 'fastsmtplib[celery]'") from exc

from .fleet._ledger import _ENQUEUE
from .fleet._runtime import FleetRuntime, FleetSettings, close_runtimes, runtime_for
from .fleet._send import message_key

__all__ = ("enqueue_send", "register_send_task", "worker_runtime")

_settings: dict[str, FleetSettings] = {}


def worker_runtime(name: str = "fastsmtp.send") -> FleetRuntime:
    """This worker process's runtime for the task ``name`` (made on first use)."""
    return runtime_for(name, _settings[name])


def _closing(**_: Any) -> None:
    close_runtimes()


# Quit the pool's connections when a worker (or a prefork child) stops.
signals.worker_process_shutdown.connect(_closing, weak=False)
signals.worker_shutdown.connect(_closing, weak=False)


def register_send_task(
    app: Celery,
    settings: FleetSettings,
    *,
    name: str = "fastsmtp.send",
    max_retries: int = 8,
    backoff_base: float = 30.0,
    backoff_max: float = 3600.0,
    busy_countdown: float = 5.0,
    busy_max_retries: int = 1000,
) -> Task:
    """Register the send task on ``app``: ``send(message, sender, recipients, key=None)``.

    ``message`` is the RFC 5322 text (str); ``key`` the idempotency key (default: its
    Message-ID). A temporary failure is retried up to ``max_retries`` times after
    ``backoff_base * 2**n`` seconds (capped at ``backoff_max``, 50-100 % jitter; RFC 5321
    section 4.5.4.1 asks for 30 minutes or more between tries of deferred mail, so do not
    set it lower for real relays); a message another worker holds (``busy``) is asked
    for again after ``busy_countdown`` seconds.
    """
    _settings[name] = settings

    def send(
        self: Task,
        message: str,
        sender: str,
        recipients: list[str],
        key: str | None = None,
        deferrals: int = 0,
    ) -> dict[str, Any]:
        runtime = runtime_for(name, settings)
        data = runtime.run(
            runtime.fleet.send(message, sender=sender, recipients=recipients, key=key)
        )
        if data["ledger"] == "busy":
            raise self.retry(countdown=busy_countdown, max_retries=busy_max_retries)
        if data["status"] == "failed_temporarily" and deferrals < max_retries:
            # Counted apart from the busy retries (Celery counts every retry).
            delay = min(backoff_max, backoff_base * 2**deferrals)
            raise self.retry(
                args=(message, sender, recipients, key),
                kwargs={"deferrals": deferrals + 1},
                countdown=delay * random.uniform(0.5, 1.0),
                max_retries=None,
            )
        return data

    task: Task = app.task(
        send,
        bind=True,
        name=name,
        acks_late=True,
        reject_on_worker_lost=True,
        max_retries=busy_max_retries,
    )
    return task


def enqueue_send(
    task: Task,
    redis_client: Any,
    message: str,
    sender: str,
    recipients: list[str],
    *,
    key: str | None = None,
    settings: FleetSettings | None = None,
) -> Any:
    """Note the message ``queued`` in the ledger (a synchronous ``redis.Redis`` on the
    fleet's database), then queue the task; the ``AsyncResult``.

    Celery's Redis broker can lose a task whose worker is killed at the wrong instant;
    an entry still ``queued`` later (``DeliveryLedger.stale``) shows which, so
    the producer can queue them again (the ledger still sends each once).
    """
    key = message_key(message) if key is None else key
    prefix = settings.ledger_prefix if settings is not None else "fastsmtp:ledger"
    retention = settings.retention if settings is not None else 7 * 86400.0
    redis_client.eval(_ENQUEUE, 1, f"{prefix}:{key}", round(retention * 1000))
    return task.apply_async((message, sender, recipients, key))
