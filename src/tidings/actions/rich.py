"""Outbound beyond plain text: choices (reply buttons, lists, quick replies), reactions, and
sender signals (mark as read, typing). Each goes through the same route choice and policy
checks as a reply; a channel that cannot carry it refuses with its own limit in words,
before anything is queued."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tidings.access import Principal, require_conversation
from tidings.actions import gate
from tidings.actions.agent_events import send_signal
from tidings.actions.base import transaction
from tidings.actions.gate import choose_route
from tidings.actions.outbound import do_send
from tidings.actions.templates import ProviderError
from tidings.channels.base import Permanent, Retriable
from tidings.channels.interactive import (
    Choice,
    Choices,
    InteractiveSender,
    NamedReactions,
    Refused,
    Section,
    SignalSender,
)
from tidings.domain.enums import MessageKind
from tidings.domain.errors import InvalidInput, NotFound, PolicyRefusal
from tidings.runtime import Runtime
from tidings.storage.models import Conversation, Message

# Reactions are emoji; a few code points at most (flags and families are sequences).
MAX_EMOJI = 16


def _choice(d: Mapping[str, Any]) -> Choice:
    return Choice(str(d["id"]), str(d["title"]), d.get("description"), d.get("url"))


def choices(d: Mapping[str, Any]) -> Choices:
    """The API's `interactive` object as canonical choices."""
    return Choices(
        type=str(d["type"]),
        body=str(d["body"]),
        header=d.get("header"),
        footer=d.get("footer"),
        buttons=tuple(_choice(b) for b in d.get("buttons") or []),
        button=d.get("button"),
        sections=tuple(
            Section(s.get("title"), tuple(_choice(r) for r in s.get("rows") or []))
            for s in d.get("sections") or []
        ),
    )


async def check_send_interactive(
    rt: Runtime, who: Principal, conversation_id: int, spec: Choices, channel_id: int | None
) -> Message:
    async with transaction(rt) as tx:
        conv = require_conversation(who, await tx.session.get(Conversation, conversation_id))
        route = await choose_route(tx, conv, channel_id)
        adapter = route.channel.adapter
        if not isinstance(adapter, InteractiveSender):
            raise PolicyRefusal(
                f"{adapter.label} cannot send buttons or lists; send text instead.",
                code="not_supported",
            )
        try:
            kind, text, extra = adapter.interactive(spec)
        except Refused as exc:
            raise InvalidInput(exc.reason, code="interactive_limits") from None
        return await do_send(
            tx, conv, route, kind, text, sender_agent_id=who.agent_id, extra=extra, tagged=True
        )


async def check_send_reaction(
    rt: Runtime,
    who: Principal,
    conversation_id: int,
    message_id: int,
    emoji: str,
    channel_id: int | None,
) -> Message:
    """React to a message of this conversation (an empty emoji removes our reaction). It goes
    over the channel the message travelled on."""
    emoji = emoji.strip()
    if len(emoji) > MAX_EMOJI or any(ch.isascii() and ch.isalnum() for ch in emoji):
        raise InvalidInput("emoji: give one emoji, or an empty string to remove the reaction")
    async with transaction(rt) as tx:
        s = tx.session
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        target = await s.get(Message, message_id)
        if target is None or target.conversation_id != conv.id:
            raise NotFound("message not found in this conversation")
        if not target.provider_message_id or target.channel_id is None:
            raise InvalidInput(
                "this message has no provider id yet (not sent, or a note), so it cannot be "
                "reacted to",
                code="no_provider_id",
            )
        if channel_id is not None and channel_id != target.channel_id:
            raise InvalidInput("a reaction goes over the channel of the message it reacts to")
        route = await choose_route(tx, conv, target.channel_id)
        extra: dict[str, Any] = {
            "target_provider_id": target.provider_message_id,
            "target_id": target.id,
        }
        adapter = route.channel.adapter
        if emoji and isinstance(adapter, NamedReactions):
            name = adapter.reaction_names.get(emoji)
            if name is None:
                offered = " ".join(dict.fromkeys(adapter.reaction_names))
                raise InvalidInput(
                    f"{adapter.label} cannot react with {emoji}; it takes {offered}",
                    code="reaction_not_supported",
                )
            extra["reaction"] = name
        return await do_send(
            tx, conv, route, MessageKind.REACTION, emoji, sender_agent_id=who.agent_id, extra=extra
        )


async def check_send_signal(
    rt: Runtime, who: Principal, conversation_id: int, action: str, channel_id: int | None
) -> int:
    """Send a read receipt or typing indicator now (not queued; nothing is stored). Returns the
    channel it went over."""
    async with transaction(rt) as tx:
        s = tx.session
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        route = await choose_route(tx, conv, channel_id)
        adapter = route.channel.adapter
        supported = adapter.signals if isinstance(adapter, SignalSender) else frozenset()
        if action not in supported:
            raise PolicyRefusal(
                f"{adapter.label} has no {action.replace('_', ' ')} signal.", code="not_supported"
            )
        last_in = await gate.latest_inbound_id(s, conv.id, route.channel.id)
    if last_in is None:
        raise InvalidInput(
            "the customer has not written on this channel, so there is nothing to mark read",
            code="nothing_to_signal",
        )
    outcome = await send_signal(rt, route.channel, conv.id, route.recipient, action, last_in)
    if isinstance(outcome, Retriable):
        raise ProviderError(outcome.reason)
    if isinstance(outcome, Permanent):
        raise PolicyRefusal(outcome.reason, code=f"provider_{outcome.code or 'refused'}")
    return route.channel.id
