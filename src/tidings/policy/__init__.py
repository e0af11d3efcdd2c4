"""What may be sent where. One place, shared by agent replies, automations and campaigns.

`check_outbound` runs every check in `CHECKS`; each raises PolicyRefusal with a sentence the
agent can act on. Channel issues add checks here (SMS length/encoding, media limits...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tidings.channels.base import Capabilities
from tidings.domain.enums import MessageKind
from tidings.domain.errors import PolicyRefusal
from tidings.policy import sms


@dataclass(frozen=True, slots=True)
class Window:
    """A channel's customer-service window for one conversation."""

    applies: bool
    open: bool
    closes_at: datetime | None
    # Open only through a message tag (Messenger/Instagram HUMAN_AGENT): the send must carry it.
    tag: str | None = None


def service_window(
    caps: Capabilities,
    last_inbound_at: datetime | None,
    now: datetime,
    *,
    human_agent: bool = False,
) -> Window:
    """The window for a send. `human_agent`: a person writes this reply on a channel whose
    app has the Human Agent feature, which extends the window by a tag (Messenger and
    Instagram: up to 7 days after the customer's last message; never for automation)."""
    if caps.service_window_hours is None:
        return Window(applies=False, open=True, closes_at=None)
    if last_inbound_at is None:
        return Window(applies=True, open=False, closes_at=None)
    closes_at = last_inbound_at + timedelta(hours=caps.service_window_hours)
    if now >= closes_at and human_agent and caps.human_agent_hours:
        tagged_until = last_inbound_at + timedelta(hours=caps.human_agent_hours)
        if now < tagged_until:
            return Window(applies=True, open=True, closes_at=tagged_until, tag="HUMAN_AGENT")
    return Window(applies=True, open=now < closes_at, closes_at=closes_at)


@dataclass(frozen=True, slots=True)
class OutboundContext:
    channel_kind: str
    channel_label: str
    capabilities: Capabilities
    kind: MessageKind
    text: str | None
    last_inbound_at: datetime | None
    opted_out: bool
    now: datetime
    # A person's reply on a channel with the Human Agent feature enabled (see service_window).
    human_agent: bool = False


def check_text(ctx: OutboundContext) -> None:
    if ctx.kind != MessageKind.TEXT:
        return
    if not ctx.text or not ctx.text.strip():
        raise PolicyRefusal("The message is empty.", code="empty_message")
    limit = ctx.capabilities.text_max_length
    if len(ctx.text) > limit:
        raise PolicyRefusal(
            f"The message is {len(ctx.text)} characters long; {ctx.channel_label} allows {limit}.",
            code="too_long",
        )
    max_bytes = ctx.capabilities.text_max_bytes
    if max_bytes is not None and len(ctx.text.encode()) > max_bytes:
        raise PolicyRefusal(
            f"The message is {len(ctx.text.encode())} bytes long in UTF-8; "
            f"{ctx.channel_label} allows {max_bytes} (emoji and accents count more than one).",
            code="too_long",
        )


def check_window(ctx: OutboundContext) -> None:
    if ctx.kind == MessageKind.TEMPLATE:
        return
    window = service_window(
        ctx.capabilities, ctx.last_inbound_at, ctx.now, human_agent=ctx.human_agent
    )
    if window.applies and not window.open:
        hours = ctx.capabilities.service_window_hours
        if ctx.capabilities.supports_templates:
            instead = "Send an approved template instead."
        elif ctx.capabilities.human_agent_hours and not ctx.human_agent:
            instead = (
                "Enable the Human Agent feature on this channel to reply for up to "
                f"{ctx.capabilities.human_agent_hours // 24} days."
            )
        else:
            instead = "Wait for the customer to write again."
        raise PolicyRefusal(
            f"The {hours}-hour {ctx.channel_label} service window is closed: the customer has not "
            f"written in the last {hours} hours. {instead}",
            code="window_closed",
        )


def check_consent(ctx: OutboundContext) -> None:
    if ctx.opted_out:
        raise PolicyRefusal(
            f"This customer opted out of messages on {ctx.channel_label}; "
            "they must opt back in first.",
            code="opted_out",
        )


def check_sms_segments(ctx: OutboundContext) -> None:
    """SMS only: refuse a text that would travel in more parts than TIDINGS_SMS_MAX_SEGMENTS."""
    if not ctx.capabilities.sms or ctx.kind != MessageKind.TEXT or not ctx.text:
        return
    result = sms.analyse(ctx.text)
    limit = sms.max_segments()
    if result.segments > limit:
        raise PolicyRefusal(
            f"The message would be sent as {result.segments} {result.encoding} SMS parts; "
            f"the limit is {limit}. Shorten it"
            + (
                " or avoid characters that force UCS-2 ("
                + " ".join(result.ucs2_characters[:10])
                + ")."
                if result.ucs2_characters
                else "."
            ),
            code="too_many_segments",
        )


CHECKS: list[Callable[[OutboundContext], None]] = [
    check_text,
    check_window,
    check_consent,
    check_sms_segments,
]


def check_outbound(ctx: OutboundContext) -> None:
    for check in CHECKS:
        check(ctx)
