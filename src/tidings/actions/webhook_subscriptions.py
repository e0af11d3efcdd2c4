"""Changing an outgoing-webhook subscription: pause/resume, its URL and events, delete.
A paused subscription gets no new deliveries (the outbox only writes for active ones,
`actions/base.py`); deleting it also drops its delivery log."""

from __future__ import annotations

from sqlalchemy import delete

from tidings.access import Principal, require_admin, require_own
from tidings.actions.admin import check_subscription_target
from tidings.actions.base import audit, transaction
from tidings.runtime import Runtime
from tidings.storage.models import WebhookDelivery, WebhookSubscription


async def check_update_subscription(
    rt: Runtime,
    who: Principal,
    subscription_id: int,
    *,
    active: bool | None = None,
    url: str | None = None,
    events: list[str] | None = None,
) -> WebhookSubscription:
    require_admin(who)
    await check_subscription_target(rt, url, events)
    async with transaction(rt) as tx:
        sub = await require_own(
            tx.session, who, WebhookSubscription, subscription_id, "webhook subscription"
        )
        if active is not None:
            sub.active = active
        if url is not None:
            sub.url = url
        if events is not None:
            sub.events = list(dict.fromkeys(events))
        await tx.session.flush()
        audit(tx, who, "webhook.update", "webhook_subscription", sub.id, {"active": sub.active})
        return sub


async def check_delete_subscription(rt: Runtime, who: Principal, subscription_id: int) -> None:
    require_admin(who)
    async with transaction(rt) as tx:
        s = tx.session
        sub = await require_own(
            s, who, WebhookSubscription, subscription_id, "webhook subscription"
        )
        await s.execute(delete(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id))
        await s.delete(sub)
        audit(tx, who, "webhook.delete", "webhook_subscription", subscription_id)
