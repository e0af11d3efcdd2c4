"""The per-campaign send-rate cap.

- The delivery worker counts each send of a capped campaign's message in a sliding window on
  `rt.rate_limiter` (in-process, or Redis-backed when TIDINGS_REDIS_URL is set, so that every
  worker process shares one budget): `campaign:<id>`, at most `floor(rate)` sends per
  `floor(rate)/rate` seconds (`before_send`, its hook). That is "never more than `rate` in any
  one-second window", and — unlike a token bucket of burst 1, which loses every late timer
  and busy moment for good — the achieved rate is the cap.
- The fan-out keeps at most a couple of seconds of the cap queued in the outbox
  (`fanout.run_campaign`), so agent replies are not stuck behind a whole campaign.

The channel account's own window (`channel-window:<id>`, taken by the delivery worker) still
applies, so a campaign never exceeds the provider's limit either.
"""

from __future__ import annotations

from typing import Any

from tidings.ratelimit import window_for
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
        limit, window = window_for(float(rate))
        await rt.rate_limiter.acquire_window(f"campaign:{tag.get('id')}", limit, window)


def queue_batch_size(rate: float | None, batch: int) -> int:
    """Recipients to queue per fan-out step: a batch, or about 0.2 s of the cap."""
    if not rate:
        return batch
    return max(1, min(batch, int(rate / 5)))
