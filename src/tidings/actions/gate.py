"""The outbound gate: may this go out now, through which channel, and with which tag?

One decision for every writer and every reader. Writers — an agent's reply, retry, template,
choices and reaction; automation texts; CSAT questions; fallback follow-ups; the SMS HELP reply
— call `check_send` before they queue; campaigns plan a whole batch with `decide` over facts
fetched once (`opted_out_pairs`); the composer's channel picker (`GET
/api/v1/ui/conversations/{id}/ context`) and the reply options (`GET
/api/v1/conversations/{id}/channels`) both serve `reply_options`. Before, each had its own copy
of these checks, and the copies had drifted (the UI refused a reply the API then sent).

A verdict covers what the channel and the customer decide (identity, service window with Meta's
HUMAN_AGENT extension for a person, consent). What depends on the message itself (empty, too
long, too many SMS parts) is checked only when there is a message (`with_message`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.actions import preference
from tidings.actions.base import Tx
from tidings.channels.optional import PricedMessages
from tidings.domain.enums import ConsentStatus, Direction, MessageKind
from tidings.domain.errors import InvalidInput, PolicyRefusal
from tidings.policy import (
    OutboundContext,
    Window,
    check_consent,
    check_outbound,
    check_window,
    service_window,
)
from tidings.runtime import ChannelInfo, Runtime
from tidings.serialize import ts
from tidings.storage.models import (
    Channel,
    Consent,
    ContactIdentity,
    Conversation,
    ConversationChannel,
    Message,
)
from tidings.storage.types import utcnow

# The checks that depend on the channel and the customer, in `policy.CHECKS` order.
_CHANNEL_CHECKS = (check_window, check_consent)


@dataclass(frozen=True, slots=True)
class Route:
    channel: ChannelInfo
    recipient: str


@dataclass(frozen=True, slots=True)
class Verdict:
    channel: ChannelInfo
    # Where the message would go (the customer's latest identity of the channel's kind).
    address: str | None
    last_inbound_at: datetime | None
    window: Window
    refusal: PolicyRefusal | None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def tag(self) -> str | None:
        """The message tag the send must carry (HUMAN_AGENT after Meta's standard window)."""
        return self.window.tag if self.allowed else None


async def latest_address(s: AsyncSession, contact_id: int, kind: str) -> str | None:
    """The contact's newest address on channels of `kind` (None: they have none)."""
    address: str | None = await s.scalar(
        select(ContactIdentity.address)
        .where(ContactIdentity.contact_id == contact_id, ContactIdentity.channel_kind == kind)
        .order_by(ContactIdentity.id.desc())
        .limit(1)
    )
    return address


async def latest_inbound_id(s: AsyncSession, conversation_id: int, channel_id: int) -> str | None:
    """The provider's id of the customer's latest message on the channel (what WhatsApp marks
    read, with everything before it)."""
    provider_id: str | None = await s.scalar(
        select(Message.provider_message_id)
        .where(
            Message.conversation_id == conversation_id,
            Message.channel_id == channel_id,
            Message.direction == Direction.IN,
            # Not a provider's notice (an id change): no message of theirs to mark.
            Message.kind != MessageKind.SYSTEM,
            Message.provider_message_id.is_not(None),
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    )
    return provider_id


def has_human_agent(channel: ChannelInfo) -> bool:
    """A channel config with `human_agent: true` has Meta's Human Agent feature: a person's
    reply may use the HUMAN_AGENT tag after the standard window (docs/channels/messenger.md).
    Automation never gets it (docs/architecture.md, automation)."""
    return getattr(channel.config, "human_agent", False) is True


def no_identity(channel: ChannelInfo) -> PolicyRefusal:
    return PolicyRefusal(
        f"This customer has no {channel.adapter.label} identity, so {channel.name!r} "
        "cannot reach them.",
        code="no_identity",
    )


def decide(
    channel: ChannelInfo,
    address: str | None,
    last_inbound_at: datetime | None,
    opted_out: bool,
    now: datetime,
    *,
    kind: MessageKind = MessageKind.TEXT,
    text: str | None = None,
    with_message: bool = False,
    person: bool = True,
) -> Verdict:
    """The verdict for one channel, from facts already known (pure). `with_message`: also check
    the message (`kind`, `text`) with every policy check, as a send does. `person`: a person
    writes it (automation, campaigns and CSAT never have the Human Agent extension)."""
    human = person and has_human_agent(channel)
    caps = channel.adapter.capabilities
    window = service_window(caps, last_inbound_at, now, human_agent=human)
    refusal: PolicyRefusal | None = None
    if address is None:
        refusal = no_identity(channel)
    else:
        ctx = OutboundContext(
            channel_kind=channel.kind,
            channel_label=channel.adapter.label,
            capabilities=caps,
            kind=kind,
            text=text,
            last_inbound_at=last_inbound_at,
            opted_out=opted_out,
            now=now,
            human_agent=human,
        )
        try:
            if with_message:
                check_outbound(ctx)
            else:
                for check in _CHANNEL_CHECKS:
                    check(ctx)
        except PolicyRefusal as r:
            refusal = r
    return Verdict(channel, address, last_inbound_at, window, refusal)


# --- facts ---------------------------------------------------------------------------------


async def opted_out_pairs(s: AsyncSession, contact_ids: Iterable[int]) -> set[tuple[int, str]]:
    """(contact, channel kind) pairs with an opt-out of any purpose — a marketing one
    (WhatsApp's "stop promotions") or a blanket one (SMS STOP sets every purpose) — for a
    whole batch in one query."""
    ids = list(contact_ids)
    if not ids:
        return set()
    rows = await s.execute(
        select(Consent.contact_id, Consent.channel_kind).where(
            Consent.contact_id.in_(ids), Consent.status == ConsentStatus.OPTED_OUT
        )
    )
    return {(cid, kind) for cid, kind in rows}


async def opted_out(s: AsyncSession, contact_id: int, kind: str) -> bool:
    return (contact_id, kind) in await opted_out_pairs(s, [contact_id])


async def last_inbound(s: AsyncSession, conv: Conversation, channel_id: int) -> datetime | None:
    """When the customer last wrote in this conversation through this channel."""
    window = await s.get(ConversationChannel, (conv.id, channel_id))
    return window.last_inbound_at if window else None


async def reply_addresses(s: AsyncSession, contact_id: int) -> dict[str, str]:
    """The customer's latest identity per channel kind: where a reply goes, and so where
    typing indicators and read receipts go too (`actions/agent_events.py`)."""
    rows = await s.execute(
        select(ContactIdentity.channel_kind, ContactIdentity.address)
        .where(ContactIdentity.contact_id == contact_id)
        .order_by(ContactIdentity.id)
    )
    return {kind: address for kind, address in rows}


# --- writers ---------------------------------------------------------------------------------


async def choose_route(tx: Tx, conv: Conversation, channel_id: int | None) -> Route:
    """Which channel and address a message goes to: the one asked for, else the first of the
    inbox's active channels on which the contact has an identity, in the contact's preferred
    order (`preference.reply_order`: explicit, else learned), then the conversation's last
    channel, then the others."""
    s = tx.session
    candidates = (
        await s.scalars(
            select(Channel).where(Channel.inbox_id == conv.inbox_id, Channel.active.is_(True))
        )
    ).all()
    by_id = {c.id: c for c in candidates}
    if channel_id is not None and channel_id not in by_id:
        raise InvalidInput(
            f"channel_id {channel_id} is not an active channel of this conversation's inbox"
        )
    order = [channel_id] if channel_id is not None else []
    if channel_id is None:
        if conv.last_channel_id in by_id:
            order.append(conv.last_channel_id)
        order += [c.id for c in candidates if c.id != conv.last_channel_id]
        order = await preference.reply_order(s, conv.contact_id, [c for c in order if c])
    for cid in order:
        assert cid is not None
        row = by_id[cid]
        address = await latest_address(s, conv.contact_id, row.kind)
        if address is not None:
            info = await tx.rt.channels.get(cid)
            assert info is not None
            return Route(info, address)
    if channel_id is not None:
        asked = await tx.rt.channels.get(channel_id)
        assert asked is not None
        raise no_identity(asked)
    raise PolicyRefusal("No channel of this inbox can reach this customer.", code="no_route")


async def check_send(
    s: AsyncSession,
    conv: Conversation,
    route: Route,
    kind: MessageKind,
    text: str | None,
    *,
    person: bool,
    now: datetime | None = None,
) -> str | None:
    """Raise the refusal if this message may not go to `route` now; else return the message
    tag it must carry (None, or HUMAN_AGENT for a person's reply after Meta's window)."""
    verdict = decide(
        route.channel,
        route.recipient,
        await last_inbound(s, conv, route.channel.id),
        await opted_out(s, conv.contact_id, route.channel.kind),
        now or utcnow(),
        kind=kind,
        text=text,
        with_message=True,
        person=person,
    )
    if verdict.refusal is not None:
        raise verdict.refusal
    return verdict.tag


# --- readers ---------------------------------------------------------------------------------


async def verdicts(
    rt: Runtime, s: AsyncSession, conv: Conversation, now: datetime
) -> list[Verdict]:
    """An agent's verdict for every active channel of the conversation's inbox, in id order."""
    channel_ids = (
        await s.scalars(
            select(Channel.id)
            .where(Channel.inbox_id == conv.inbox_id, Channel.active.is_(True))
            .order_by(Channel.id)
        )
    ).all()
    addresses = await reply_addresses(s, conv.contact_id)
    opted = await opted_out_pairs(s, [conv.contact_id])
    lasts = {
        row.channel_id: row.last_inbound_at
        for row in await s.scalars(
            select(ConversationChannel).where(ConversationChannel.conversation_id == conv.id)
        )
    }
    out = []
    for channel_id in channel_ids:
        info = await rt.channels.get(channel_id)
        if info is None:
            continue
        out.append(
            decide(
                info,
                addresses.get(info.kind),
                lasts.get(channel_id),
                (conv.contact_id, info.kind) in opted,
                now,
            )
        )
    return out


def window_dict(info: ChannelInfo, window: Window) -> dict[str, Any]:
    return {
        "channel_id": info.id,
        "applies": window.applies,
        "open": window.open,
        "closes_at": ts(window.closes_at),
        "tag": window.tag,
        "hours": info.adapter.capabilities.service_window_hours,
    }


async def reply_options(rt: Runtime, s: AsyncSession, conv: Conversation) -> list[dict[str, Any]]:
    """Per active channel of the conversation's inbox: whether an agent's text reply may go
    through it now, with which tag, and why not — what `POST …/messages` then does. One list
    for the public reply options and the composer's picker (`can_send` is the picker's name for
    `can_send_text`)."""
    now = utcnow()
    out = []
    for v in await verdicts(rt, s, conv, now):
        info, caps = v.channel, v.channel.adapter.capabilities
        code = v.refusal.code if v.refusal else None
        out.append(
            {
                "channel_id": info.id,
                "kind": info.kind,
                "name": info.name,
                "label": info.adapter.label,
                "window": window_dict(info, v.window),
                "last_inbound_at": ts(v.last_inbound_at),
                "can_send_text": v.allowed,
                "can_send": v.allowed,
                "tag": v.tag,
                "needs_template": code == "window_closed" and caps.supports_templates,
                "supports_templates": caps.supports_templates,
                "text_max_length": caps.text_max_length,
                "text_max_bytes": caps.text_max_bytes,
                # SMS adapters (capabilities.sms): the composer then shows the part counter.
                "sms": caps.sms,
                "last_used": info.id == conv.last_channel_id,
                # Channels billed by the message (Viber): free in the session, or billed.
                "billing": info.adapter.billing_note(last_inbound_at=v.last_inbound_at, now=now)
                if isinstance(info.adapter, PricedMessages)
                else None,
                "reason": v.refusal.message if v.refusal else None,
                "code": code,
            }
        )
    return out
