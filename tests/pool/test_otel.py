"""fastsmtp.otel with the OpenTelemetry SDK's in-memory span exporter and metric reader,
against the pool test server: what the spans and the metrics say about real sends."""

from __future__ import annotations

from typing import Any

import pytest

from fastsmtp import SMTPPool
from tests.pool.server import PoolServer, Session

otel_sdk = pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk (test extra)")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from fastsmtp.otel import PoolTelemetry  # noqa: E402


def raw(i: int) -> bytes:
    return f"Message-ID: <o{i}@otel.test>\r\nSubject: {i}\r\n\r\nbody {i}\r\n".encode()


class RefusesBob(PoolServer):
    def reply_rcpt(self, session: Session, address: str) -> str:
        if address.startswith("bob"):
            return "550 5.1.1 no such user"
        return "250 2.1.5 ok"


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


async def test_a_span_per_send_and_metrics_by_outcome() -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    async with RefusesBob() as server:
        port = server.port
        async with SMTPPool(
            hostname="127.0.0.1", port=port, local_hostname="c.test", max_attempts=1
        ) as pool:
            telemetry = PoolTelemetry(
                pool, tracer_provider=tracer_provider, meter_provider=meter_provider
            )
            send = telemetry.send
            ok = await send(raw(1), sender="s@x.test", recipients=["al@x", "cy@x"])
            partial = await send(raw(2), sender="s@x.test", recipients=["al@x", "bob@x"])
            refused = await send(raw(3), sender="s@x.test", recipients=["bob@x"])
            found = points(reader)  # while the pool is open: one connection, idle
    assert [r.status.value for r in (ok, partial, refused)] == [
        "sent", "partially_sent", "failed_permanently",
    ]  # fmt: skip
    finished = spans.get_finished_spans()
    assert [s.name for s in finished] == ["smtp send"] * 3
    first, second, third = (dict(s.attributes or {}) for s in finished)
    assert first == {
        "server.address": "127.0.0.1",
        "server.port": port,
        "smtp.message.size": len(raw(1)),
        "smtp.recipients.count": 2,
        "smtp.outcome": "sent",
        "smtp.attempts": 1,
        "smtp.recipients.refused": 0,
        "smtp.reply.code": 250,
    }
    assert (second["smtp.outcome"], second["smtp.recipients.refused"]) == ("partially_sent", 1)
    assert third["smtp.outcome"] == "failed_permanently"
    assert third["error.type"] == "SMTPRecipientsRefused"
    assert finished[2].status.status_code.name == "ERROR"
    # No addresses unless asked.
    assert not any("@" in str(v) for s in finished for v in (s.attributes or {}).values())

    messages = {
        (p.attributes["smtp.outcome"], p.attributes["smtp.reply.class"]): p.value
        for p in found["fastsmtp.smtp.client.messages"]
    }
    assert messages == {
        ("sent", "2"): 1,
        ("partially_sent", "2"): 1,
        ("failed_permanently", "5"): 1,
    }
    assert [(p.attributes["smtp.reply.class"], p.value)
            for p in found["fastsmtp.smtp.client.recipients.refused"]] == [("5", 2)]  # fmt: skip
    assert [p.value for p in found["fastsmtp.smtp.client.sent.bytes"]] == [
        len(raw(1)) + len(raw(2))
    ]
    durations = found["fastsmtp.smtp.client.operation.duration"]
    assert sum(p.count for p in durations) == 3
    assert sum(p.value for p in found["fastsmtp.smtp.client.operation.count"]) == 3
    assert [p.value for p in found["fastsmtp.smtp.client.connection.count"]] == [1]
    assert [p.value for p in found["fastsmtp.smtp.client.connection.usage"]] == [0]
    assert all(p.attributes["server.port"] == port for p in durations)


async def test_addresses_only_when_asked() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    async with PoolServer() as server, SMTPPool(
        hostname="127.0.0.1", port=server.port, local_hostname="c.test"
    ) as pool:
        telemetry = PoolTelemetry(pool, tracer_provider=provider, record_addresses=True)
        await telemetry.send(raw(4), sender="s@x.test", recipients="al@x.test")
    (span,) = spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["smtp.sender"] == "s@x.test"
    assert tuple(span.attributes["smtp.recipients"]) == ("al@x.test",)
