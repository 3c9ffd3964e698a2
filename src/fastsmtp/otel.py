"""OpenTelemetry for sends through a pool: a span per send, and metrics.

Needs the ``otel`` extra (``pip install 'fastsmtplib[otel]'``, the API only: export
is the application's SDK setup). Names follow the mail clients that publish them
(MailKit's ``*.smtp.client.*`` metrics) under the meter and tracer ``fastsmtp``:

- ``fastsmtp.smtp.client.operation.duration`` (histogram, s): each send, retries
  included; attributes ``network.operation`` (``send``), ``smtp.outcome``
  (a ``SendStatus`` value), ``server.address``, ``server.port``.
- ``fastsmtp.smtp.client.operation.count``: sends, with the same attributes.
- ``fastsmtp.smtp.client.messages``: messages by ``smtp.outcome`` and
  ``smtp.reply.class`` (``2``, ``4``, ``5``, or ``none`` when no reply decided).
- ``fastsmtp.smtp.client.recipients.refused``: refused recipients by ``smtp.reply.class``.
- ``fastsmtp.smtp.client.sent.bytes``: the size of the messages accepted.
- ``fastsmtp.smtp.client.connection.count`` (observable): connections open, and
  ``fastsmtp.smtp.client.connection.usage`` (observable): checked out now.

Spans (``smtp send``, kind CLIENT) carry the server, message size, recipient count,
attempts and outcome; never addresses or credentials, unless ``record_addresses=True``
adds the envelope's sender and recipients.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from email.message import Message
from typing import Any

try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import CallbackOptions, Observation
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastsmtp.otel needs opentelemetry-api: pip install 'fastsmtplib[otel]'"
    ) from exc

from ._pool._job import Job, message_job, recipient_list

__all__ = ("PoolTelemetry", "message_size")
from .pool import SMTPPool
from .results import SendResult, SendStatus

_NAME = "fastsmtp"


def message_size(message: Message | bytes | str) -> int:
    """The size of ``message`` in bytes (as sent, before dot-stuffing)."""
    if isinstance(message, bytes):
        return len(message)
    if isinstance(message, str):
        return len(message.encode("utf-8"))
    return len(message.as_bytes())


def _reply_class(result: SendResult) -> str:
    """The class of the reply that decided: the final one, the failure's, or (every
    recipient refused) the refusals'."""
    code = result.reply.code if result.reply is not None else getattr(result.exception, "code", 0)
    if not (isinstance(code, int) and 200 <= code < 600) and result.refused:
        code = max(r.code for r in result.refused.values())
    return str(code // 100) if isinstance(code, int) and 200 <= code < 600 else "none"


class PoolTelemetry:
    """Traces and measures the sends of one :class:`~fastsmtp.SMTPPool`.

    ``await telemetry.send(message, sender=..., recipients=...)`` sends through the pool
    (a ``SendResult``, never an exception, like ``send_many``'s results), or wrap any
    send with ``telemetry.record(...)``.
    """

    def __init__(
        self,
        pool: SMTPPool,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        record_addresses: bool = False,
    ) -> None:
        self.pool = pool
        self.record_addresses = record_addresses
        options = pool._options
        self._server: dict[str, Any] = {
            "server.address": options.hostname or options.socket_path or "localhost",
        }
        if options.port is not None:
            self._server["server.port"] = options.port
        self.tracer = trace.get_tracer(_NAME, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_NAME, meter_provider=meter_provider)
        prefix = "fastsmtp.smtp.client"
        self.duration = meter.create_histogram(
            f"{prefix}.operation.duration", unit="s", description="Send duration, retries included"
        )
        self.count = meter.create_counter(f"{prefix}.operation.count", description="Sends")
        self.messages = meter.create_counter(
            f"{prefix}.messages", description="Messages by outcome and reply class"
        )
        self.refused = meter.create_counter(
            f"{prefix}.recipients.refused", description="Recipients refused"
        )
        self.bytes = meter.create_counter(
            f"{prefix}.sent.bytes", unit="By", description="Size of the messages accepted"
        )
        meter.create_observable_gauge(
            f"{prefix}.connection.count", [self._open], description="Connections open"
        )
        meter.create_observable_gauge(
            f"{prefix}.connection.usage", [self._in_use], description="Connections in use"
        )

    def _open(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self.pool.connection_count, self._server)]

    def _in_use(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self.pool._store.slots.in_use, self._server)]

    async def send(
        self,
        message: Message | bytes | str,
        *,
        sender: str | None = None,
        recipients: str | Sequence[str] | None = None,
    ) -> SendResult:
        """Send through the pool, in a span, measured."""
        job: Job
        if isinstance(message, Message):
            job = message_job(message, sender, recipients)
        else:
            if sender is None or recipients is None:
                raise ValueError("sender and recipients are required for bytes or str")
            job = Job(message, sender, recipient_list(recipients), {})
        with self.measure(message_size(message), job.recipients, job.sender) as done:
            result = await self.pool._delivery.deliver(job)
            done(result)
        return result

    @contextlib.contextmanager
    def measure(
        self, size: int, recipients: Sequence[str], sender: str | None
    ) -> Iterator[Callable[[SendResult], None]]:
        """A span around a send made some other way (``fastsmtp.fleet``); call the
        yielded function with its ``SendResult`` to describe and count it."""
        attributes: dict[str, Any] = {
            **self._server,
            "smtp.message.size": size,
            "smtp.recipients.count": len(recipients),
        }
        if self.record_addresses:
            attributes["smtp.sender"] = sender or ""
            attributes["smtp.recipients"] = list(recipients)
        with self.tracer.start_as_current_span(
            "smtp send", kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            start = time.perf_counter()

            def done(result: SendResult) -> None:
                self.record(result, size, time.perf_counter() - start, span)

            yield done

    def record(
        self, result: SendResult, size: int, seconds: float, span: trace.Span | None = None
    ) -> None:
        """Count one finished send (and describe it on ``span``)."""
        outcome = result.status.value
        reply_class = _reply_class(result)
        operation = {**self._server, "network.operation": "send", "smtp.outcome": outcome}
        self.duration.record(seconds, operation)
        self.count.add(1, operation)
        by_class = {**self._server, "smtp.outcome": outcome, "smtp.reply.class": reply_class}
        self.messages.add(1, by_class)
        for refusal in result.refused.values():
            self.refused.add(1, {**self._server, "smtp.reply.class": str(refusal.code // 100)})
        if result.ok:
            self.bytes.add(size, self._server)
        if span is not None:
            span.set_attribute("smtp.outcome", outcome)
            span.set_attribute("smtp.attempts", result.attempts)
            span.set_attribute("smtp.recipients.refused", len(result.refused))
            if result.reply is not None:
                span.set_attribute("smtp.reply.code", result.reply.code)
            if result.status is not SendStatus.SENT and result.exception is not None:
                span.set_attribute("error.type", type(result.exception).__name__)
                if not result.ok:
                    span.set_status(trace.StatusCode.ERROR, outcome)
