"""Private notes: messages of kind `note` that agents leave for each other in a thread.

A note is never handed to a provider (no Delivery row is written), and `@name` mentions are
resolved to agents of the workspace and kept in `extra.mentions` so the UI can highlight them.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from tidings.access import Principal, require_conversation
from tidings.actions.base import transaction
from tidings.domain import live_events
from tidings.domain.enums import Direction, MessageKind, MessageStatus
from tidings.domain.errors import InvalidInput
from tidings.runtime import Runtime
from tidings.serialize import conversation_dict, message_dict
from tidings.storage.models import Agent, Conversation, Message
from tidings.storage.types import utcnow

NOTE_MAX_LENGTH = 10_000
MENTION = re.compile(r"(?<![\w@])@([\w][\w.\-]*)")


def mention_handles(agent: Agent) -> set[str]:
    """What `@...` may say to mention an agent: the name without spaces, or the email's local
    part, compared case-insensitively."""
    handles = {agent.email.split("@")[0].lower()}
    if agent.name:
        handles.add("".join(agent.name.split()).lower())
        handles.add(agent.name.split()[0].lower())
    return handles


def find_mentions(text: str, agents: list[Agent]) -> list[int]:
    wanted = {m.group(1).rstrip(".-").lower() for m in MENTION.finditer(text)}
    return sorted(a.id for a in agents if a.active and mention_handles(a) & wanted)


async def check_add_note(rt: Runtime, who: Principal, conversation_id: int, text: str) -> Message:
    body = text.strip()
    if not body:
        raise InvalidInput("text: a note must not be empty")
    if len(body) > NOTE_MAX_LENGTH:
        raise InvalidInput(f"text: a note may be at most {NOTE_MAX_LENGTH} characters")
    async with transaction(rt) as tx:
        s = tx.session
        conv = require_conversation(who, await s.get(Conversation, conversation_id))
        agents = list(
            (await s.scalars(select(Agent).where(Agent.workspace_id == conv.workspace_id))).all()
        )
        now = utcnow()
        note = Message(
            workspace_id=conv.workspace_id,
            conversation_id=conv.id,
            channel_id=None,
            direction=Direction.OUT,
            kind=MessageKind.NOTE,
            body=body,
            sender_agent_id=who.agent_id,
            # Nothing is sent; "sent" only says the note is final (there is no delivery).
            status=MessageStatus.SENT,
            sent_at=now,
            created_at=now,
            updated_at=now,
            extra={"mentions": find_mentions(body, agents)},
        )
        s.add(note)
        conv.updated_at = now
        await s.flush()
        tx.emit_for(live_events.MESSAGE_CREATED(message_dict(note)), conv)
        tx.emit_for(live_events.CONVERSATION_UPDATED(conversation_dict(conv)), conv)
        return note
