"""Presence: "Ana is viewing" / "Ana is replying" on a conversation.

Presence is not stored: it is a live event on the bus (so it crosses processes when Redis
carries the bus), and each client forgets an entry it has not heard again within
`PRESENCE_TTL_SECONDS`.
"""

from __future__ import annotations

from tidings.access import Principal, require_conversation
from tidings.actions import agent_events
from tidings.domain import live_events
from tidings.domain.errors import InvalidInput
from tidings.realtime.bus import LiveEvent
from tidings.runtime import Runtime
from tidings.storage.models import Agent, Conversation
from tidings.storage.types import utcnow

PRESENCE_STATES = ("viewing", "replying", "left")
PRESENCE_TTL_SECONDS = 30


async def check_announce_presence(
    rt: Runtime, who: Principal, conversation_id: int, state: str, *, typing: bool = True
) -> dict[str, object]:
    """`typing`: with "replying", the agent is typing now, so channels with a typing indicator
    show it to the customer (throttled per conversation, `agent_events.after_replying`)."""
    if state not in PRESENCE_STATES:
        raise InvalidInput(f"state: one of {', '.join(PRESENCE_STATES)}")
    async with rt.db.read() as s:
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        agent = await s.get_one(Agent, who.agent_id)
    data: live_events.Presence = {
        "conversation_id": conv.id,
        "agent_id": agent.id,
        "agent_name": agent.name,
        "state": state,
        "at": utcnow().isoformat(),
        "ttl": PRESENCE_TTL_SECONDS,
    }
    # Nothing to commit, so nothing to wait for: publish now.
    event = live_events.PRESENCE(data)
    await rt.bus.publish([LiveEvent(event.type, conv.workspace_id, conv.inbox_id, dict(data))])
    if state == "replying" and typing:
        # Channels with a typing indicator (RBM IS_TYPING) show the customer too.
        agent_events.after_replying(rt, conv.id)
    return dict(data)
