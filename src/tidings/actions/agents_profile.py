"""What an agent changes about themselves (the profile page) and admin invitations.

An invitation is an agent without a password plus a one-time link to choose one (the reset
link of `actions/passwords.py`, which a password-less agent can use once): the admin never
knows the password and the agent can change it later on their profile.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tidings.access import Principal
from tidings.actions.agents import do_add_agent, new_agent_fields
from tidings.actions.base import audit, require_own_ids, settings_changed, transaction
from tidings.actions.notifications import NOTIFY_KEYS, preferences_of
from tidings.actions.passwords import reset_link
from tidings.domain.errors import InvalidInput
from tidings.runtime import Runtime
from tidings.storage.models import Agent, Inbox, InboxMember


async def check_update_me(
    rt: Runtime, who: Principal, *, name: str | None, notify: dict[str, bool] | None
) -> Agent:
    async with transaction(rt) as tx:
        agent = await tx.session.get_one(Agent, who.agent_id)
        if name is not None:
            if not name.strip():
                raise InvalidInput("name: must not be empty")
            if len(name.strip()) > 200:
                raise InvalidInput("name: at most 200 characters")
            agent.name = name.strip()
        if notify is not None:
            unknown = sorted(set(notify) - set(NOTIFY_KEYS))
            if unknown:
                raise InvalidInput(f"notify: unknown {', '.join(unknown)}; one of {NOTIFY_KEYS}")
            merged = {**preferences_of(agent), **{k: bool(v) for k, v in notify.items()}}
            agent.preferences = {**(agent.preferences or {}), "notify": merged}
        await tx.session.flush()
        audit(tx, who, "agent.profile", "agent", agent.id)
        if name is not None:
            settings_changed(tx, who, "agents")
        return agent


async def check_invite_agent(
    rt: Runtime, who: Principal, email: str, name: str, role: str, inbox_ids: list[int]
) -> tuple[Agent, str, datetime]:
    """A new agent with no password yet, and the link (shown once, valid 24 h) on which they
    choose one. Their inboxes are set at once so the invitation is complete."""
    email, wanted = new_agent_fields(who, email, name, role, "invite")
    async with transaction(rt) as tx:
        s = tx.session
        agent = await do_add_agent(tx, who, email, name, wanted, None)
        ids = sorted(set(inbox_ids))
        await require_own_ids(tx, who, Inbox, ids, "inbox_ids", "inbox")
        for inbox_id in ids:
            s.add(InboxMember(inbox_id=inbox_id, agent_id=agent.id))
        await s.flush()
        audit(tx, who, "agent.invite", "agent", agent.id)
        settings_changed(tx, who, "agents")
        url, expires_at = reset_link(rt, agent)
        return agent, url, expires_at


def me_dict(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "email": agent.email,
        "role": agent.role,
        "availability": agent.availability,
        "notify": preferences_of(agent),
    }
