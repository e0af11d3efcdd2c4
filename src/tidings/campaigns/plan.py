"""For one recipient: which channel, which address, what content — or why nobody can be sent.

Channels are tried in order: the contact's preferred channel (explicit or learned) when the
campaign allows it, then the campaign's channels in the order given (channels of one kind
share the campaign: see `spread`), then the fallback channel
when the campaign's plan says "window closed and no template fits → fallback". The first one
that has an address for the contact and passes the outbound gate (`actions/gate.py`) wins. Campaign
sends are `marketing`: a marketing (or blanket) opt-out on a channel kind refuses it there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.actions import gate
from tidings.actions.preference import NONE as NO_PREFERENCE
from tidings.actions.preference import preferred_channel
from tidings.campaigns import content as cc
from tidings.channels.addressing import phone_addressed
from tidings.channels.optional import PricedMessages
from tidings.domain.campaigns import SkipReason
from tidings.domain.enums import (
    ConversationStatus,
    MessageKind,
)
from tidings.domain.errors import PolicyRefusal
from tidings.domain.numbers import region_of
from tidings.policy import sms
from tidings.runtime import ChannelInfo, Runtime
from tidings.storage.models import (
    Campaign,
    Channel,
    Contact,
    ContactIdentity,
    ContactPreference,
    Conversation,
    ConversationChannel,
    Template,
)
from tidings.storage.types import utcnow

APPROVED = "approved"
# The channel reason of a recipient planned straight onto the fallback channel (the report
# counts these as fallbacks).
FALLBACK_REASON = "fallback:"


@dataclass(frozen=True, slots=True)
class Send:
    channel: ChannelInfo
    address: str
    kind: MessageKind
    text: str | None
    extra: dict[str, Any]
    channel_reason: str
    segments: int | None = None
    encoding: str | None = None
    cost: Decimal | None = None
    currency: str | None = None

    @property
    def preview(self) -> str:
        if self.kind == MessageKind.TEMPLATE:
            return cc.template_preview(self.extra["template"])
        return self.text or ""


@dataclass(frozen=True, slots=True)
class Skip:
    reason: SkipReason
    detail: str


@dataclass
class Audience:
    """What every recipient of one campaign shares, loaded once per batch."""

    campaign: Campaign
    channels: list[ChannelInfo]
    fallback_channel: ChannelInfo | None
    # Approved (name, language) per channel; absent: that channel's templates are not synced,
    # and the provider has the last word.
    templates: dict[int, set[tuple[str, str]]] = field(default_factory=dict)


def spread(channels: list[ChannelInfo], contact_id: int) -> list[tuple[ChannelInfo, str]]:
    """The campaign's channels in order, with a reason each — except that channels of one kind
    share the campaign: among them, each contact starts at the one its id picks (the same one
    every time), the others following as alternatives. Two WhatsApp numbers in a campaign send
    half of it each (each within its own tier), not one number all of it."""
    by_kind: dict[str, list[int]] = {}
    for pos, ch in enumerate(channels):
        by_kind.setdefault(ch.kind, []).append(pos)
    order = list(range(len(channels)))
    for positions in by_kind.values():
        if len(positions) > 1:
            turn = contact_id % len(positions)
            rotated = positions[turn:] + positions[:turn]
            for slot, pos in zip(positions, rotated, strict=True):
                order[slot] = pos
    out: list[tuple[ChannelInfo, str]] = []
    for pos in order:
        ch = channels[pos]
        shared = len(by_kind[ch.kind])
        why = f"campaign channel #{pos + 1}"
        if shared > 1:
            why += f" (one of {shared} {ch.adapter.label} channels sharing it)"
        out.append((ch, why))
    return out


async def load_audience(rt: Runtime, s: AsyncSession, campaign: Campaign) -> Audience:
    ids = [int(i) for i in campaign.channel_ids or []]
    if not ids:
        ids = list(
            (
                await s.scalars(
                    select(Channel.id)
                    .where(Channel.workspace_id == campaign.workspace_id, Channel.active.is_(True))
                    .order_by(Channel.id)
                )
            ).all()
        )
    channels = [c for c in [await rt.channels.get(i) for i in ids] if c is not None and c.active]
    plan = campaign.fallback or {}
    fb = None
    if plan.get("to_channel_id"):
        fb = await rt.channels.get(int(plan["to_channel_id"]))
        if fb is not None and not fb.active:
            fb = None
    templates: dict[int, set[tuple[str, str]]] = {}
    for ch in channels:
        if not ch.adapter.capabilities.supports_templates:
            continue
        rows = (
            await s.execute(
                select(Template.name, Template.language, Template.status).where(
                    Template.channel_id == ch.id
                )
            )
        ).all()
        if rows:
            templates[ch.id] = {(n, lang) for n, lang, st in rows if st.lower() == APPROVED}
    return Audience(campaign, channels, fb, templates)


@dataclass(frozen=True, slots=True)
class Known:
    """What `plan_send` asks about each contact, fetched once for a whole fan-out batch (five
    queries instead of about six per recipient). Only the contacts of that batch are covered."""

    explicit: frozenset[int]  # contacts with an explicit channel preference
    talked: frozenset[int]  # contacts with any conversation (learned preference, windows)
    identities: dict[tuple[int, str], str]  # (contact, channel kind) -> newest address
    opted_out: frozenset[tuple[int, str]]  # (contact, channel kind) with an opt-out


async def prefetch(s: AsyncSession, contact_ids: list[int]) -> Known:
    if not contact_ids:
        return Known(frozenset(), frozenset(), {}, frozenset())
    explicit = (
        await s.scalars(
            select(ContactPreference.contact_id).where(
                ContactPreference.contact_id.in_(contact_ids)
            )
        )
    ).all()
    talked = (
        await s.scalars(
            select(Conversation.contact_id)
            .where(Conversation.contact_id.in_(contact_ids))
            .distinct()
        )
    ).all()
    identities: dict[tuple[int, str], str] = {}
    for cid, kind, address in await s.execute(
        select(ContactIdentity.contact_id, ContactIdentity.channel_kind, ContactIdentity.address)
        .where(ContactIdentity.contact_id.in_(contact_ids))
        .order_by(ContactIdentity.id.desc())
    ):
        identities.setdefault((cid, kind), address)
    return Known(
        frozenset(explicit),
        frozenset(talked),
        identities,
        frozenset(await gate.opted_out_pairs(s, contact_ids)),
    )


async def address_for(
    s: AsyncSession, channel: ChannelInfo, contact: Contact, known: Known | None = None
) -> str | None:
    if known is not None:
        found = known.identities.get((contact.id, channel.kind))
    else:
        found = await gate.latest_address(s, contact.id, channel.kind)
    return found if found is not None else _phone_address(channel, contact)


def _phone_address(channel: ChannelInfo, contact: Contact) -> str | None:
    if phone_addressed(channel.adapter, channel.kind) and contact.phone_e164:
        return contact.phone_e164
    return None


async def last_inbound(s: AsyncSession, channel: ChannelInfo, contact_id: int) -> Any:
    return await s.scalar(
        select(ConversationChannel.last_inbound_at)
        .join(Conversation, Conversation.id == ConversationChannel.conversation_id)
        .where(
            Conversation.contact_id == contact_id,
            Conversation.inbox_id == channel.inbox_id,
            Conversation.status != ConversationStatus.RESOLVED,
            ConversationChannel.channel_id == channel.id,
        )
        .order_by(Conversation.id.desc())
        .limit(1)
    )


def _reason_for(refusal: PolicyRefusal) -> SkipReason:
    if refusal.code == "opted_out":
        return SkipReason.OPTED_OUT
    if refusal.code == "window_closed":
        return SkipReason.WINDOW_CLOSED
    return SkipReason.POLICY


async def plan_send(
    s: AsyncSession,
    aud: Audience,
    contact: Contact | None,
    variables: dict[str, Any] | None,
    known: Known | None = None,
) -> Send | Skip:
    """`known`: the batch's prefetched lookups (fan-out); None asks the database."""
    if contact is None:
        return Skip(SkipReason.INVALID_NUMBER, "No contact for this audience row.")
    campaign = aud.campaign
    values = cc.variables_for(contact, variables)
    by_id = {c.id: c for c in aud.channels}
    order: list[tuple[ChannelInfo, str]] = []
    if known is not None and contact.id not in known.explicit and contact.id not in known.talked:
        pref = NO_PREFERENCE  # never set, never talked: nothing to learn from
    else:
        pref = await preferred_channel(s, contact.id, list(by_id))
    if pref.channel_id is not None:
        order.append((by_id[pref.channel_id], f"preferred ({pref.source}): {pref.reason}"))
    for ch, why in spread(aud.channels, contact.id):
        if ch.id != pref.channel_id:
            order.append((ch, why))
    plan = campaign.fallback or {}
    fb = aud.fallback_channel
    if fb is not None and plan.get("on_window_closed") and fb.id not in by_id:
        order.append((fb, f"{FALLBACK_REASON} the other channels cannot send"))

    refusals: list[tuple[ChannelInfo, PolicyRefusal]] = []
    reachable = False
    for channel, why in order:
        address = await address_for(s, channel, contact, known)
        if address is None:
            continue
        reachable = True
        caps = channel.adapter.capabilities
        kind, text, extra = (
            MessageKind.TEXT,
            cc.text_for(campaign.content, channel.kind, values),
            {},
        )
        if caps.supports_templates and campaign.content.get("template"):
            spec = campaign.content["template"]
            approved = aud.templates.get(channel.id)
            if approved is None or (spec["name"], spec["language"]) in approved:
                obj = cc.template_for(campaign.content, values)
                assert obj is not None
                kind, text, extra = MessageKind.TEMPLATE, None, {"template": obj}
        if kind == MessageKind.TEXT and text is None:
            refusals.append(
                (
                    channel,
                    PolicyRefusal(
                        f"The campaign has no text for {channel.adapter.label}.", code="no_content"
                    ),
                )
            )
            continue
        # The outbound gate every send passes (actions/gate.py), with the batch's facts.
        verdict = gate.decide(
            channel,
            address,
            None
            if known is not None and contact.id not in known.talked
            else await last_inbound(s, channel, contact.id),
            (contact.id, channel.kind) in known.opted_out
            if known is not None
            else await gate.opted_out(s, contact.id, channel.kind),
            utcnow(),
            kind=kind,
            text=text if kind == MessageKind.TEXT else cc.template_preview(extra["template"]),
            with_message=True,
            person=False,
        )
        if verdict.refusal is not None:
            refusals.append((channel, verdict.refusal))
            continue
        send = Send(channel, address, kind, text, extra, why[:64])
        if caps.sms and text:
            analysis = sms.analyse(text)
            priced = sms.estimate_cost(analysis, channel.kind, region_of(address))
            send = replace(
                send,
                segments=analysis.segments,
                encoding=analysis.encoding,
                cost=priced[0] if priced else None,
                currency=priced[1] if priced else None,
            )
        elif text or isinstance(channel.adapter, PricedMessages):
            # Billed by the message, not the segment: Viber outside its session asks its
            # adapter (channels/optional.py); LINE (a push spends the monthly allowance,
            # docs/channels/line.md, "Quota and cost") and any kind the price table names
            # are priced from the table.
            if isinstance(channel.adapter, PricedMessages):
                priced = channel.adapter.message_cost(
                    channel.config, last_inbound_at=verdict.last_inbound_at, now=utcnow()
                )
            else:
                table = sms.price_table()
                price = table.per_segment(channel.kind, None)
                priced = (price, table.currency) if price is not None else None
            if priced is not None:
                send = replace(send, cost=priced[0], currency=priced[1])
        return send
    if refusals:
        first_channel, first = refusals[0]
        return Skip(_reason_for(first), f"{first_channel.name}: {first.message}")
    if (
        not reachable
        and contact.phone_e164 is None
        and (contact.attributes or {}).get("phone_unparsed")
    ):
        return Skip(
            SkipReason.INVALID_NUMBER,
            f"{contact.attributes['phone_unparsed']!r} is not a phone number we can read.",
        )
    return Skip(SkipReason.NO_CHANNEL, "No channel of this campaign can reach this contact.")
