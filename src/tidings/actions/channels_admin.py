"""Admins changing a connected channel: rename, move inbox, change its provider settings,
disable/enable, delete, and "test connection".

What happens to conversations is the same every time and is said before confirming (the
settings page reads `channel_impact`): disabling keeps everything, refuses new replies
on the channel and turns its webhooks away (they answer as for an unknown channel; sends
already queued still go); deleting keeps every conversation and message in its inbox —
messages simply no longer name a channel — and drops what only made sense with the
channel: its templates, its pending sends (their messages are marked failed), its stored
inbound events and its service windows, so the composer no longer offers it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, func, select, update

from tidings.access import Principal, can_see_inbox, require_admin, require_channel
from tidings.actions.admin import do_register_webhook, validate_config
from tidings.actions.base import audit, settings_changed, transaction
from tidings.actions.outbound import do_record_failures
from tidings.channels import webhook_setup
from tidings.channels.base import Permanent
from tidings.channels.message_templates import TemplateSource
from tidings.channels.registry import get_adapter
from tidings.domain.enums import DeliveryState
from tidings.domain.errors import InvalidInput
from tidings.runtime import Runtime
from tidings.storage.models import (
    Channel,
    ConversationChannel,
    Delivery,
    Inbox,
    Message,
)

# A secret field sent back as shown (masked) or empty keeps its stored value: the form never
# receives secrets, so it cannot send them back.
MASK = "••••"
TEST_SECONDS = 8.0


async def channel_impact(rt: Runtime, who: Principal, channel_id: int) -> dict[str, Any]:
    """What disabling or deleting the channel touches, in numbers, for the confirmation."""
    require_admin(who)
    async with rt.db.read() as s:
        channel = await require_channel(s, who, channel_id)
        conversations = await s.scalar(
            select(func.count(func.distinct(Message.conversation_id))).where(
                Message.channel_id == channel.id
            )
        )
        messages = await s.scalar(
            select(func.count()).select_from(Message).where(Message.channel_id == channel.id)
        )
        pending = await s.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.channel_id == channel.id, Delivery.state == "pending")
        )
    return {
        "channel_id": channel.id,
        "conversations": conversations or 0,
        "messages": messages or 0,
        "pending_sends": pending or 0,
        "on_disable": "Conversations and messages stay. Replies on this channel are refused and "
        "the provider's webhooks for it are turned away until it is enabled again; sends "
        "already queued still go.",
        "on_delete": "Conversations and messages stay in their inbox. The channel's templates, "
        "its queued sends (marked failed) and its stored webhook events are deleted; the "
        "provider must stop calling its webhook URL. This cannot be undone.",
    }


async def check_update_channel(
    rt: Runtime,
    who: Principal,
    channel_id: int,
    *,
    name: str | None = None,
    inbox_id: int | None = None,
    config: dict[str, Any] | None = None,
) -> Channel:
    """Change a channel's name, inbox or provider settings. A config is merged over the stored
    one and validated whole; secret fields left masked or empty keep their value."""
    require_admin(who)
    async with transaction(rt) as tx:
        s = tx.session
        channel = await require_channel(s, who, channel_id)
        changed: list[str] = []
        if name is not None:
            if not name.strip():
                raise InvalidInput("name: must not be empty")
            if len(name.strip()) > 200:
                raise InvalidInput("name: at most 200 characters")
            channel.name = name.strip()
            changed.append("name")
        if inbox_id is not None and inbox_id != channel.inbox_id:
            inbox = await s.get(Inbox, inbox_id)
            if inbox is None or not can_see_inbox(who, inbox.workspace_id, inbox.id):
                raise InvalidInput(f"inbox_id: no inbox {inbox_id} in this workspace")
            channel.inbox_id = inbox.id
            changed.append("inbox_id")
        if config is not None:
            stored = rt.box.decrypt_json(channel.config_encrypted)
            secret = get_adapter(channel.kind).secret_fields
            merged = dict(stored)
            for key, value in config.items():
                if key in secret and (value in (None, "", MASK)):
                    continue
                merged[key] = value
            channel.config_encrypted = rt.box.encrypt(validate_config(channel.kind, merged))
            changed.append("config")
        await s.flush()
        audit(tx, who, "channel.update", "channel", channel.id, {"fields": changed})
        settings_changed(tx, who, "channels")
    rt.channels.invalidate(channel.id)
    if "config" in changed:
        info = await rt.channels.get(channel.id)
        if info is not None and isinstance(info.adapter, webhook_setup.WebhookRegistrar):
            await do_register_webhook(rt, info, who.agent_id)
    return channel


async def check_set_active(rt: Runtime, who: Principal, channel_id: int, active: bool) -> Channel:
    require_admin(who)
    async with transaction(rt) as tx:
        channel = await require_channel(tx.session, who, channel_id)
        if channel.active != active:
            channel.active = active
            await tx.session.flush()
            audit(
                tx,
                who,
                "channel.enable" if active else "channel.disable",
                "channel",
                channel.id,
                {},
            )
            settings_changed(tx, who, "channels")
    rt.channels.invalidate(channel.id)
    return channel


async def check_delete_channel(rt: Runtime, who: Principal, channel_id: int) -> None:
    """Delete the channel; see the module docstring for what stays and what goes."""
    require_admin(who)
    async with transaction(rt) as tx:
        s = tx.session
        channel = await require_channel(s, who, channel_id)
        # Sends that have not left (queued, held by a paused campaign, or claimed) can no
        # longer go: they fail through the one failure path, so their messages, campaign
        # recipients and counts say so instead of waiting forever.
        unsent = (
            await s.execute(
                select(Delivery, Message)
                .join(Message, Message.id == Delivery.message_id)
                .where(
                    Delivery.channel_id == channel.id,
                    Delivery.state.in_(
                        [DeliveryState.PENDING, DeliveryState.HELD, DeliveryState.SENDING]
                    ),
                )
            )
        ).all()
        gone = Permanent("the channel was deleted before this was sent", "channel_deleted")
        await do_record_failures(tx, [(d, m, gone) for d, m in unsent])
        await s.execute(
            update(Message).where(Message.channel_id == channel.id).values(channel_id=None)
        )
        await s.execute(
            delete(ConversationChannel).where(ConversationChannel.channel_id == channel.id)
        )
        kind = channel.kind
        await s.delete(channel)
        await s.flush()
        audit(tx, who, "channel.delete", "channel", channel_id, {"kind": kind})
        settings_changed(tx, who, "channels")
    rt.channels.invalidate(channel_id)


async def check_test_connection(rt: Runtime, who: Principal, channel_id: int) -> dict[str, Any]:
    """Ask the provider (or its simulator) whether the channel's credentials work, with the
    calls the adapter has: its account summary (LINE's quota), its template list (WhatsApp),
    or setting its webhook (Viber). `ok` None: the kind has no such call; a message sent to
    the channel is then the test."""
    require_admin(who)
    async with rt.db.read() as s:
        channel = await require_channel(s, who, channel_id)
    rt.channels.invalidate(channel.id)
    info = await rt.channels.get(channel.id)
    if info is None:
        return {"ok": False, "message": "the channel's settings cannot be read"}
    adapter = info.adapter
    try:
        async with asyncio.timeout(TEST_SECONDS):
            summary = getattr(adapter, "health_summary", None)
            if summary is not None:
                text = await summary(info.config, rt.http)
                return {"ok": True, "message": f"Connected: {text}"}
            if isinstance(adapter, TemplateSource):
                found = await adapter.fetch_templates(info.config, rt.http)
                return {
                    "ok": True,
                    "message": f"Connected: the account lists {len(found)} message templates.",
                }
            if isinstance(adapter, webhook_setup.WebhookRegistrar):
                reason = await do_register_webhook(rt, info, who.agent_id)
                if reason:
                    return {"ok": False, "message": f"The provider refused: {reason}"}
                return {"ok": True, "message": "Connected: the provider accepted the webhook."}
    except TimeoutError:
        return {"ok": False, "message": "The provider did not answer in time."}
    except Exception as exc:
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        return {"ok": False, "message": f"The provider refused: {reason}"}
    return {
        "ok": None,
        "message": "This kind of channel has no check call; send it a message from the "
        "customer side to test it.",
    }
