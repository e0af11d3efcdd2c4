"""Prometheus metrics. Each process exposes its own at `/metrics`; queue depths and ages are
read from the database at scrape time, so any process reports the whole system's queues."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response

from tidings.storage.models import Delivery, InboundEvent, WebhookDelivery
from tidings.storage.types import as_utc, utcnow

REGISTRY = CollectorRegistry(auto_describe=True)

WEBHOOKS = Counter(
    "tidings_webhook_requests_total",
    "Provider webhook requests by channel kind and outcome",
    ["kind", "outcome"],
    registry=REGISTRY,
)
EVENTS_STORED = Counter(
    "tidings_inbound_events_stored_total",
    "Inbound events committed (group commit), duplicates included",
    registry=REGISTRY,
)
GROUP_COMMIT = Histogram(
    "tidings_group_commit_seconds",
    "Webhook group commits: waiting for the write turn (wait) and insert + COMMIT (commit)",
    ["phase"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
INGESTED = Counter(
    "tidings_ingest_events_total", "Inbound events processed", ["outcome"], registry=REGISTRY
)
DELIVERIES = Counter(
    "tidings_delivery_outcomes_total",
    "Outbound send attempts by channel kind and outcome",
    ["kind", "outcome"],
    registry=REGISTRY,
)
PROVIDER_LATENCY = Histogram(
    "tidings_provider_latency_seconds",
    "Time a provider took to answer a send",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
SSE_CLIENTS = Gauge("tidings_sse_clients", "Connected live-event clients", registry=REGISTRY)
QUEUE_DEPTH = Gauge("tidings_queue_depth", "Rows waiting per queue", ["queue"], registry=REGISTRY)
QUEUE_AGE = Gauge(
    "tidings_queue_oldest_age_seconds",
    "Age of the oldest waiting row",
    ["queue"],
    registry=REGISTRY,
)
INBOUND_LAG = Gauge(
    "tidings_inbound_lag_seconds",
    "Age of the oldest due, unprocessed inbound event per lane (customer | status)",
    ["lane"],
    registry=REGISTRY,
)
INBOUND_PENDING = Gauge(
    "tidings_inbound_pending",
    "Due, unprocessed inbound events per lane (customer | status)",
    ["lane"],
    registry=REGISTRY,
)


def _age(oldest: datetime | None) -> float:
    return max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0


async def metrics_endpoint(request: Request) -> Response:
    from tidings.runtime import Runtime

    rt: Runtime = request.app.state.runtime
    queues = {
        "inbound": (InboundEvent, InboundEvent.state == "pending", InboundEvent.received_at),
        "delivery": (Delivery, Delivery.state.in_(("pending", "sending")), Delivery.created_at),
        "webhooks": (
            WebhookDelivery,
            WebhookDelivery.state == "pending",
            WebhookDelivery.created_at,
        ),
    }
    async with rt.db.read() as s:
        for name, (_model, condition, created) in queues.items():
            count, oldest = (
                await s.execute(select(func.count(), func.min(created)).where(condition))
            ).one()
            QUEUE_DEPTH.labels(name).set(count)
            QUEUE_AGE.labels(name).set(_age(as_utc(oldest)))
    for lane in (await rt.lag.read()).values():
        INBOUND_LAG.labels(lane.lane).set(lane.seconds)
        INBOUND_PENDING.labels(lane.lane).set(lane.pending)
    SSE_CLIENTS.set(rt.bus.subscriber_count())
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
