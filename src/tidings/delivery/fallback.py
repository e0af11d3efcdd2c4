"""Automatic fallback: "WhatsApp; if it fails, or is not delivered within N minutes → SMS".

A plan (per inbox for replies, per campaign for broadcasts) is a JSON object:

    {"to_channel_id": 7, "after_seconds": 600, "on_failed": true, "on_window_closed": true}

When a message goes out on another channel than `to_channel_id`, a `FallbackTimer` row is
armed for it (unique per message). `run(rt)` fires timers whose message failed (`on_failed`) or
is still not delivered at `due_at`: in one transaction it queues the follow-up text on the
fallback channel in the same conversation — `extra["fallback_of"]` links it to the original,
its cost estimate is recorded — and moves the timer out of `waiting`, so it fires once even if
the process dies and restarts. A timer whose message was delivered or read retires quietly.

If the original is still waiting in the outbox when its timer fires (the provider kept failing
retriably), its delivery is withdrawn first, so the customer does not get both.

A paused campaign sends nothing, its follow-ups included: the timers of its recipients wait
(they are not even read) until it is resumed, and then fire if still due; cancel retires them.

`on_window_closed` applies where a send is planned (campaigns try the fallback channel when
the service window is closed and no template fits); replies do not use it yet.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import and_, exists, or_, select

from tidings.actions import gate
from tidings.actions.base import Tx, transaction
from tidings.actions.campaign_recipients import do_follow_fallback
from tidings.actions.fallback import do_withdraw_original
from tidings.actions.gate import Route
from tidings.actions.outbound import do_queue_message
from tidings.campaigns import content as cc
from tidings.campaigns.plan import address_for
from tidings.domain.campaigns import CampaignState
from tidings.domain.enums import FallbackState, MessageKind, MessageStatus
from tidings.domain.errors import PolicyRefusal
from tidings.domain.numbers import region_of
from tidings.policy import sms
from tidings.runtime import Runtime
from tidings.storage.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    Conversation,
    FallbackTimer,
    Message,
)
from tidings.storage.types import utcnow
from tidings.workers.loop import poll

log = logging.getLogger(__name__)

BATCH = 50
IDLE_SECONDS = 0.5


async def fire_due(rt: Runtime, limit: int = BATCH) -> int:
    """Fire (or retire) the timers that are due. Returns how many were handled."""
    now = utcnow()
    paused = exists().where(
        CampaignRecipient.id == FallbackTimer.campaign_recipient_id,
        Campaign.id == CampaignRecipient.campaign_id,
        Campaign.state == CampaignState.PAUSED,
    )
    ready = and_(
        FallbackTimer.state == FallbackState.WAITING,
        or_(
            FallbackTimer.due_at <= now,
            and_(FallbackTimer.on_failed.is_(True), Message.status == MessageStatus.FAILED),
            Message.status.in_((MessageStatus.DELIVERED, MessageStatus.READ)),
        ),
        or_(FallbackTimer.campaign_recipient_id.is_(None), ~paused),
    )
    join = (Message, Message.id == FallbackTimer.message_id)
    if not await rt.db.has_rows(select(FallbackTimer.id).join(*join).where(ready)):
        return 0
    async with transaction(rt) as tx:
        s = tx.session
        rows = (
            await s.execute(
                select(FallbackTimer, Message)
                .join(*join)
                .where(ready)
                .order_by(FallbackTimer.id)
                .limit(limit)
                .with_for_update(of=FallbackTimer, **rt.db.skip_locked())
            )
        ).all()
        for timer, message in rows:
            await _handle(tx, timer, message)
        return len(rows)


async def _handle(tx: Tx, timer: FallbackTimer, original: Message) -> None:
    timer.updated_at = utcnow()
    status = MessageStatus(original.status)
    if status in (MessageStatus.DELIVERED, MessageStatus.READ):
        timer.state, timer.outcome = FallbackState.NOT_NEEDED, f"original {status}"
        return
    if status == MessageStatus.SENT and original.channel_id is not None:
        # A channel that reports neither delivery nor reading (LINE, Telegram, WeChat: its
        # `receipts` is only "sent") never gets past sent, so "not delivered in time" would
        # fire for every message that went; sent is as far as such a message gets.
        channel = await tx.rt.channels.get(original.channel_id)
        receipts = set(channel.adapter.capabilities.receipts) if channel is not None else set()
        if channel is not None and not receipts & {MessageStatus.DELIVERED, MessageStatus.READ}:
            timer.state = FallbackState.NOT_NEEDED
            timer.outcome = f"original sent ({channel.adapter.label} reports no delivery)"
            return
    why = "failed" if status == MessageStatus.FAILED else "not_delivered_in_time"
    try:
        follow_up = await _queue_follow_up(tx, timer, original, why)
    except PolicyRefusal as refusal:
        timer.state, timer.outcome = FallbackState.REFUSED, refusal.message
        return
    timer.state, timer.fallback_message_id = FallbackState.FIRED, follow_up.id
    timer.outcome = why


async def _queue_follow_up(tx: Tx, timer: FallbackTimer, original: Message, why: str) -> Message:
    # Imported here: outbound imports this module's hook.

    s = tx.session
    channel = await tx.rt.channels.get(timer.to_channel_id)
    if channel is None or not channel.active:
        raise PolicyRefusal("The fallback channel is gone or inactive.", code="no_route")
    conv = await s.get_one(Conversation, original.conversation_id)
    contact = await s.get_one(Contact, conv.contact_id)
    address = await address_for(s, channel, contact)
    if address is None:
        raise PolicyRefusal(f"The customer has no address on {channel.name}.", code="no_identity")
    text = original.body
    recipient = (
        await s.get(CampaignRecipient, timer.campaign_recipient_id)
        if timer.campaign_recipient_id
        else None
    )
    tag = (original.extra or {}).get("campaign")
    if recipient is not None:
        campaign = await s.get(Campaign, recipient.campaign_id)
        if campaign is not None:
            values = cc.variables_for(contact, recipient.variables)
            text = cc.text_for(campaign.content, channel.kind, values) or text
    if not text:
        raise PolicyRefusal(
            f"There is no text to send on {channel.name} (the original was a "
            f"{original.kind} message).",
            code="no_content",
        )
    route = Route(channel, address)
    # The gate every send passes; no Human Agent tag (not a person's reply).
    await gate.check_send(s, conv, route, MessageKind.TEXT, text, person=False)
    # Withdraw the original if it never left: the customer must not get both.
    await do_withdraw_original(tx, original, channel.name)
    extra: dict[str, Any] = {"fallback_of": original.id, "fallback_reason": why}
    if isinstance(tag, dict):
        extra["campaign"] = tag
    priced = (
        sms.estimate_cost(sms.analyse(text), channel.kind, region_of(address))
        if channel.adapter.capabilities.sms
        else None
    )
    message = await do_queue_message(
        tx,
        conv,
        route,
        MessageKind.TEXT,
        text,
        sender_agent_id=original.sender_agent_id,
        extra=extra,
        keep_unread=True,
        cost_estimate=priced[0] if priced else None,
    )
    if recipient is not None:
        await do_follow_fallback(tx, recipient, message, channel.id)
    await s.flush()
    return message


async def _fire_batch(rt: Runtime) -> bool:
    return await fire_due(rt) == BATCH


async def run(rt: Runtime) -> None:
    """The fallback timer loop (one per worker process; safe to run several)."""
    await poll(rt, _fire_batch, queue=None, idle=IDLE_SECONDS, what="fallback timers")
