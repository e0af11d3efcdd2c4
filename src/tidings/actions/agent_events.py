"""Read receipts and typing indicators towards the customer, on channels that have them
(adapters implementing `channels.optional.ReadReceiptSender` / `TypingSender`: RBM's
READ and IS_TYPING agent events, docs/channels/rbm.md#sending-and-agent-events; Telegram's
"typing" chat action, docs/channels/telegram.md#chat-actions;
WhatsApp's typing indicator, which is a `SignalSender` signal on the customer's last message).

- When an agent opens a conversation with unread messages (`check_mark_read`), each such
  channel gets a READ for the customer's latest message on it — sent after the commit, in the
  background, so reading never waits on a provider.
- When an agent starts replying (presence "replying", which the composer announces), the
  channel the conversation last used gets IS_TYPING, also in the background. Nothing is
  stored.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

from sqlalchemy import select

from tidings.actions.gate import latest_inbound_id, reply_addresses
from tidings.channels.base import OutboundMessage, SendOutcome, Sent
from tidings.channels.interactive import SignalSender
from tidings.channels.optional import ReadReceiptSender, TypingSender
from tidings.domain.enums import Direction, MessageKind
from tidings.runtime import ChannelInfo, Runtime
from tidings.storage.models import Conversation, Message

log = logging.getLogger(__name__)


async def _address(rt: Runtime, contact_id: int, channel: ChannelInfo) -> str | None:
    """The identity a reply on this channel goes to (the latest of its kind): a typing
    indicator or read receipt for the customer a reply would not reach is wasted."""
    async with rt.db.read() as s:
        return (await reply_addresses(s, contact_id)).get(channel.kind)


async def send_read_receipts(rt: Runtime, conversation_id: int) -> int:
    """READ for the customer's latest message on each channel of the conversation that
    supports read receipts. Returns how many went out."""
    async with rt.db.read() as s:
        conv = await s.get(Conversation, conversation_id)
        if conv is None:
            return 0
        rows = (
            await s.execute(
                select(Message.channel_id, Message.provider_message_id)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.direction == Direction.IN,
                    Message.kind != MessageKind.SYSTEM,
                    Message.provider_message_id.is_not(None),
                    Message.channel_id.is_not(None),
                )
                .order_by(Message.id.desc())
                .limit(50)
            )
        ).all()
        contact_id = conv.contact_id
    latest: dict[int, str] = {}
    for channel_id, provider_id in rows:
        if channel_id is not None and provider_id is not None:
            latest.setdefault(channel_id, provider_id)
    sent = 0
    for channel_id, provider_id in latest.items():
        channel = await rt.channels.get(channel_id)
        if channel is None or not isinstance(channel.adapter, ReadReceiptSender):
            continue
        to = await _address(rt, contact_id, channel)
        if to is None:
            continue
        outcome = await channel.adapter.send_read(channel.config, to, provider_id, rt.http)
        if isinstance(outcome, Sent):
            sent += 1
        else:
            log.info("read receipt on channel %s not sent: %s", channel_id, outcome.reason)
    return sent


async def send_signal(
    rt: Runtime, channel: ChannelInfo, conversation_id: int, to: str, action: str, target: str
) -> SendOutcome:
    """A `SignalSender` signal (mark read, typing) about the customer's message `target`, sent
    now: nothing is queued or stored."""
    message = OutboundMessage(
        message_id=0,
        conversation_id=conversation_id,
        to=to,
        kind=MessageKind.SYSTEM,
        extra={"signal": action, "target_provider_id": target},
    )
    return await channel.adapter.send(channel.config, message, rt.http)


def after_read(rt: Runtime, conversation_id: int) -> None:
    """Called once an agent's read has committed: send the read receipts in the background."""
    rt.spawn(send_read_receipts(rt, conversation_id), f"read-receipts-{conversation_id}")


async def send_typing(rt: Runtime, conversation_id: int) -> dict[str, Any]:
    """IS_TYPING on the channel the conversation last used, if it has a typing indicator.
    Returns whether it went out and, if not, why."""
    async with rt.db.read() as s:
        conv = await s.get(Conversation, conversation_id)
        channel_id = conv.last_channel_id if conv is not None else None
        contact_id = conv.contact_id if conv is not None else None
    channel = await rt.channels.get(channel_id) if channel_id else None
    if channel is None or contact_id is None:
        return {"sent": False, "reason": "The conversation has no channel yet."}
    adapter = channel.adapter
    signals = adapter.signals if isinstance(adapter, SignalSender) else frozenset()
    if not isinstance(adapter, TypingSender) and "typing_on" not in signals:
        return {"sent": False, "reason": f"{adapter.label} has no typing indicator."}
    to = await _address(rt, contact_id, channel)
    if to is None:
        return {"sent": False, "reason": "The customer has no address on this channel."}
    if isinstance(adapter, TypingSender):
        outcome = await adapter.send_typing(channel.config, to, rt.http)
    else:
        # WhatsApp: the typing indicator rides on marking the customer's latest message read
        # (docs/channels/whatsapp.md#sending: shown until the reply or for 25 s).
        async with rt.db.read() as s:
            last_in = await latest_inbound_id(s, conversation_id, channel.id)
        if last_in is None:
            return {"sent": False, "reason": "The customer has not written on this channel yet."}
        outcome = await send_signal(rt, channel, conversation_id, to, "typing_on", last_in)
    if isinstance(outcome, Sent):
        return {"sent": True, "channel_id": channel.id}
    log.info("typing indicator on channel %s not sent: %s", channel.id, outcome.reason)
    return {"sent": False, "reason": outcome.reason, "channel_id": channel.id}


# At most one typing indicator per conversation this often, however many agents type and
# however often their composers say so: Telegram's "typing" shows for about five seconds
# (docs/channels/telegram.md), so a longer gap would let it lapse while the agent still types.
TYPING_EVERY_SECONDS = 5.0
# Per runtime (one per process; tests run several): conversation id -> when it was last sent.
# A per-process throttle: with several web processes a conversation may get one from each.
_typing_sent: weakref.WeakKeyDictionary[Runtime, dict[int, float]] = weakref.WeakKeyDictionary()


def after_replying(rt: Runtime, conversation_id: int) -> bool:
    """An agent is composing (presence "replying" while typing): show the customer, in the
    background, where the channel can — unless one went out for this conversation in the last
    `TYPING_EVERY_SECONDS`. Returns whether one was started."""
    now = time.monotonic()
    sent = _typing_sent.setdefault(rt, {})
    if now - sent.get(conversation_id, float("-inf")) < TYPING_EVERY_SECONDS:
        return False
    if len(sent) > 1000:
        for key in [k for k, at in sent.items() if now - at >= TYPING_EVERY_SECONDS]:
            del sent[key]
    sent[conversation_id] = now
    rt.spawn(send_typing(rt, conversation_id), f"typing-{conversation_id}")
    return True
