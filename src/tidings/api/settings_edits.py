"""Settings that were add/delete only (issue 18, item 6): outgoing webhooks can be paused,
resumed, changed and deleted; the business-hours editor picks from the IANA time zones."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache
from typing import Any

from fastapi import APIRouter
from pydantic import Field

from tidings.actions import webhook_subscriptions as subs
from tidings.api import schemas as sc
from tidings.api.deps import RT, Who

router = APIRouter(prefix="/api/v1")


class SubscriptionPatch(sc.Strict):
    active: bool | None = Field(default=None, description="false pauses deliveries")
    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = None


@router.patch(
    "/webhook_subscriptions/{subscription_id}",
    response_model=sc.SubscriptionOut,
    tags=["webhooks"],
)
async def update_subscription(
    subscription_id: int, body: SubscriptionPatch, who: Who, rt: RT
) -> dict[str, Any]:
    """Pause (`active: false`) or resume a subscription, or change its URL or events."""
    sub = await subs.check_update_subscription(
        rt, who, subscription_id, active=body.active, url=body.url, events=body.events
    )
    return sc.answer(sc.SubscriptionOut, sub, secret=None)


@router.delete("/webhook_subscriptions/{subscription_id}", status_code=204, tags=["webhooks"])
async def delete_subscription(subscription_id: int, who: Who, rt: RT) -> None:
    """Delete the subscription and its delivery log."""
    await subs.check_delete_subscription(rt, who, subscription_id)


@lru_cache(maxsize=1)
def _zones() -> list[str]:
    return sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC")


@router.get("/timezones", response_model=list[str], tags=["automation"])
async def timezones(who: Who) -> list[str]:
    """IANA time-zone names this server knows (for business hours)."""
    return _zones()
