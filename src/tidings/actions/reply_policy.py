"""May an agent's reply go through a channel now? One decision, served to every reader and used
by the writer: the composer's channel picker (`GET /api/v1/ui/conversations/{id}/context`),
the reply options (`GET /api/v1/conversations/{id}/channels`) and the send itself
(`actions.outbound.check_send_reply`). Before, the readers had their own copy of the checks,
which forgot Meta's Human Agent tag and ran consent and window in another order.

A verdict covers what the channel and the customer decide (identity, service window with the
HUMAN_AGENT extension, consent). What depends on the message itself (empty, too long, too
many SMS parts, files) is checked only when there is a message: `check_send_reply` passes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.domain.enums import ConsentStatus, MessageKind
from tidings.domain.errors import PolicyRefusal
from tidings.policy import (
    OutboundContext,
    Window,
    check_consent,
    check_outbound,
    check_window,
    service_window,
)
from tidings.runtime import ChannelInfo, Runtime
from tidings.storage.models import (
    Channel,
    Consent,
    ContactIdentity,
    Conversation,
    ConversationChannel,
)
from tidings.storage.types import utcnow

# The checks that depend on the channel and the customer, in `policy.CHECKS` order.
_CHANNEL_CHECKS = (check_window, check_consent)


@dataclass(frozen=True, slots=True)
class ReplyVerdict:
    channel: ChannelInfo
    # Where the reply would go (the customer's latest identity of the channel's kind).
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
) -> ReplyVerdict:
    """The verdict for one channel. `with_message`: also check the message (`kind`, `text`)
    with every policy check, as a send does. `person`: a person writes it (automation never
    has the Human Agent extension)."""
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
    return ReplyVerdict(channel, address, last_inbound_at, window, refusal)


async def reply_addresses(s: AsyncSession, contact_id: int) -> dict[str, str]:
    """The customer's latest identity per channel kind: where a reply goes, and so where
    typing indicators and read receipts go too (`actions/agent_events.py`)."""
    rows = await s.execute(
        select(ContactIdentity.channel_kind, ContactIdentity.address)
        .where(ContactIdentity.contact_id == contact_id)
        .order_by(ContactIdentity.id)
    )
    return {kind: address for kind, address in rows}


async def _opted_out(s: AsyncSession, contact_id: int) -> set[str]:
    return set(
        (
            await s.scalars(
                select(Consent.channel_kind).where(
                    Consent.contact_id == contact_id,
                    Consent.status == ConsentStatus.OPTED_OUT,
                )
            )
        ).all()
    )


async def reply_verdicts(
    rt: Runtime, s: AsyncSession, conv: Conversation, now: datetime | None = None
) -> list[ReplyVerdict]:
    """A verdict for every active channel of the conversation's inbox, in channel id order."""
    now = now or utcnow()
    channel_ids = (
        await s.scalars(
            select(Channel.id)
            .where(Channel.inbox_id == conv.inbox_id, Channel.active.is_(True))
            .order_by(Channel.id)
        )
    ).all()
    addresses = await reply_addresses(s, conv.contact_id)
    opted_out = await _opted_out(s, conv.contact_id)
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
                info.kind in opted_out,
                now,
            )
        )
    return out


async def send_verdict(
    s: AsyncSession,
    conv: Conversation,
    channel: ChannelInfo,
    address: str,
    kind: MessageKind,
    text: str | None,
    now: datetime,
    *,
    person: bool = True,
) -> ReplyVerdict:
    """The verdict for one send of `kind`/`text` to `address` through `channel`."""
    window = await s.get(ConversationChannel, (conv.id, channel.id))
    opted_out = channel.kind in await _opted_out(s, conv.contact_id)
    return decide(
        channel,
        address,
        window.last_inbound_at if window else None,
        opted_out,
        now,
        kind=kind,
        text=text,
        with_message=True,
        person=person,
    )
