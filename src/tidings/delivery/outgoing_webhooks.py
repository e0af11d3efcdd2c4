"""Outgoing webhooks for integrators: signed POSTs of our events, retried with backoff, logged
and replayable. Rows are written by `actions.base.Tx` in the transaction of the change itself.

Headers: `X-Tidings-Event`, `X-Tidings-Delivery` (the delivery id: receivers dedupe on it),
`X-Tidings-Timestamp` and `X-Tidings-Signature` (see `tidings.signing`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from tidings import signing
from tidings.domain.enums import Queue
from tidings.egress import EgressRefused
from tidings.runtime import Runtime
from tidings.storage.models import WebhookDelivery, WebhookSubscription
from tidings.storage.types import utcnow
from tidings.workers.loop import poll

log = logging.getLogger(__name__)

BATCH = 50
MAX_ATTEMPTS = 12
IDLE_POLL_SECONDS = 1.0


def backoff(attempts: int) -> float:
    return min(3600.0, 2.0**attempts) * random.uniform(0.75, 1.25)


async def _claim(rt: Runtime) -> list[tuple[int, str, str, str, str]]:
    now = utcnow()
    due = (WebhookDelivery.state == "pending") & (WebhookDelivery.next_attempt_at <= now)
    if not await rt.db.has_rows(select(WebhookDelivery.id).where(due)):
        return []
    async with rt.db.write() as s:
        rows = (
            await s.execute(
                select(
                    WebhookDelivery, WebhookSubscription.url, WebhookSubscription.secret_encrypted
                )
                .join(
                    WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id
                )
                .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.id)
                .limit(BATCH)
                .with_for_update(of=WebhookDelivery, **rt.db.skip_locked())
            )
        ).all()
        out = []
        for d, url, secret in rows:
            d.attempts += 1
            # Lease: if we crash mid-POST the row comes back after a minute (at-least-once).
            d.next_attempt_at = now + timedelta(seconds=60)
            out.append((d.id, url, rt.box.decrypt_str(secret), d.event_type, d.payload))
        return out


async def _post(
    rt: Runtime, delivery_id: int, url: str, secret: str, event_type: str, payload: str
) -> None:
    body = payload.encode()
    headers = signing.webhook_headers(event_type, body, secret)
    headers["X-Tidings-Delivery"] = str(delivery_id)
    status: int | None = None
    error: str | None = None
    try:
        # The target is a URL an admin typed: it goes through the egress policy, so a
        # subscription cannot be pointed at internal services (tidings/egress.py).
        resp, _answer = await rt.egress.post(url, content=body, headers=headers, timeout=10.0)
        status = resp.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except EgressRefused as exc:
        error = f"Refused by the egress policy: {exc.reason}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    async with rt.db.write() as s:
        d = await s.get_one(WebhookDelivery, delivery_id)
        d.last_status, d.last_error = status, error
        if error is None:
            d.state, d.delivered_at = "delivered", utcnow()
        elif d.attempts >= MAX_ATTEMPTS:
            d.state = "failed"
        else:
            d.next_attempt_at = utcnow() + timedelta(seconds=backoff(d.attempts))


async def replay(rt: Runtime, workspace_id: int, delivery_id: int) -> bool:
    async with rt.db.write() as s:
        result = await s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.workspace_id == workspace_id)
            .values(state="pending", attempts=0, next_attempt_at=utcnow(), last_error=None)
        )
    rt.wake(Queue.WEBHOOKS)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def post_batch(rt: Runtime) -> bool:
    """Claim due deliveries and post them; True when there were any."""
    batch = await _claim(rt)
    if batch:
        await asyncio.gather(*(_post(rt, *item) for item in batch))
    return bool(batch)


async def run(rt: Runtime) -> None:
    await poll(
        rt, post_batch, queue=Queue.WEBHOOKS, idle=IDLE_POLL_SECONDS, what="webhook delivery batch"
    )
