"""The per-campaign send-rate cap.

Two buckets on `rt.rate_limiter` (in-process, or Redis-backed when TIDINGS_REDIS_URL is set, so
that every worker process shares one budget):

- `campaign-queue:<id>`: the fan-out takes one token per recipient it queues, so messages enter
  the outbox at the cap instead of all at once;
- `campaign:<id>`, burst 1: the delivery worker takes one token right before each send of a
  campaign message (`before_send`, its hook). Burst 1 is what makes "never more than `rate`
  sends in any one-second window" hold even after a stall: tokens are at least 1/rate apart.

The channel account's own bucket (`channel:<id>`, taken by the delivery worker) still applies,
so a campaign never exceeds the provider's limit either.
"""

from __future__ import annotations

from typing import Any

from tidings.runtime import Runtime


def campaign_tag(campaign_id: int, rate: float | None) -> dict[str, Any]:
    """What a campaign message carries in `Message.extra["campaign"]`."""
    tag: dict[str, Any] = {"id": campaign_id}
    if rate:
        tag["rate"] = float(rate)
    return tag


async def before_send(rt: Runtime, extra: dict[str, Any] | None) -> None:
    """Hook for the delivery worker, right before `adapter.send`: wait for the campaign's
    send token, if the message belongs to a capped campaign."""
    tag = (extra or {}).get("campaign")
    if not isinstance(tag, dict):
        return
    rate = tag.get("rate")
    if isinstance(rate, int | float) and rate > 0:
        await rt.rate_limiter.acquire(f"campaign:{tag.get('id')}", float(rate), 1)


def queue_batch_size(rate: float | None, batch: int) -> int:
    """Recipients to queue per fan-out step: a batch, or about 0.2 s of the cap."""
    if not rate:
        return batch
    return max(1, min(batch, int(rate / 5)))


async def take_queue_tokens(rt: Runtime, campaign_id: int, rate: float | None, n: int) -> None:
    if not rate:
        return
    for _ in range(n):
        await rt.rate_limiter.acquire(f"campaign-queue:{campaign_id}", float(rate), max(1, n))
