"""Traces and metrics for sends through a pool, with OpenTelemetry.

    pip install "fastsmtplib[otel]" opentelemetry-sdk    # the API, and an SDK to export with
    SMTP_HOST=smtp.example.com SMTP_USERNAME=app@example.com SMTP_PASSWORD=... \
        python examples/otel_pool.py

The spans are printed to stdout here (ConsoleSpanExporter); in production, configure the
SDK's OTLP exporter instead. fastsmtp itself needs only the API.
"""
# expect-messages: 2

from __future__ import annotations

import asyncio
import os
from email.message import EmailMessage

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from fastsmtp import SendStatus, SMTPPool
from fastsmtp.otel import PoolTelemetry

HOST = os.environ.get("SMTP_HOST", "smtp.example.com")
PORT = int(os.environ.get("SMTP_PORT", "587"))
USERNAME = os.environ.get("SMTP_USERNAME", "app@example.com")
PASSWORD = os.environ.get("SMTP_PASSWORD", "app-password")

# [sdk]
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)  # PoolTelemetry uses the global providers by default
# [sdk]


def receipt(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = USERNAME
    message["To"] = to
    message["Subject"] = "Your receipt"
    message.set_content("Thank you for your order.")
    return message


# [telemetry]
async def main() -> None:
    async with SMTPPool(
        hostname=HOST, port=PORT, start_tls=True, username=USERNAME, password=PASSWORD
    ) as pool:
        telemetry = PoolTelemetry(pool)  # record_addresses=False: no addresses in spans
        for to in ("alice@example.com", "bob@example.com"):
            result = await telemetry.send(receipt(to))  # a SendResult, never raises
            if result.status is not SendStatus.SENT:
                print(to, result.status, result.exception)


# [telemetry]

if __name__ == "__main__":
    asyncio.run(main())
    provider.shutdown()
