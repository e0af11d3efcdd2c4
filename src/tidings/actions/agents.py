"""Managing the people side of a workspace: agents, teams, inboxes and their members, and API
tokens, passwords and sessions. Owners and admins only (an owner only by an owner); every change
is audited and announced as a live event so open settings pages and inboxes refresh."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update

from tidings.access import Principal, may_change_agent, require_admin, require_inbox, require_own
from tidings.actions.admin import hasher
from tidings.actions.base import Tx, audit, require_own_ids, settings_changed, transaction
from tidings.domain.enums import Role
from tidings.domain.errors import Conflict, Forbidden, InvalidInput
from tidings.runtime import Runtime
from tidings.storage.models import (
    Agent,
    ApiToken,
    Inbox,
    InboxMember,
    Team,
    TeamMember,
)
from tidings.storage.types import utcnow

MIN_PASSWORD = 10


def agent_public(a: Agent) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "email": a.email,
        "role": a.role,
        "active": a.active,
        "availability": a.availability,
    }


async def do_end_sessions(tx: Tx, agent: Agent) -> None:
    """Every session cookie (and reset link) the agent holds stops working."""
    await tx.session.execute(
        update(Agent)
        .where(Agent.id == agent.id)
        .values(session_version=Agent.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    await tx.session.refresh(agent, ["session_version"])


async def do_set_password(tx: Tx, agent: Agent, password: str) -> None:
    """Set the password, end every session and delete every API token of the agent: whoever
    took over the old password keeps nothing (a password change is also how a suspected
    compromise is answered)."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password: at least {MIN_PASSWORD} characters")
    agent.password_hash = hasher.hash(password)
    await tx.session.execute(delete(ApiToken).where(ApiToken.agent_id == agent.id))
    await tx.session.flush()
    await do_end_sessions(tx, agent)


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(f"role: one of {', '.join(r.value for r in Role)}") from None


def new_agent_fields(
    who: Principal, email: str, name: str, role: str, verb: str
) -> tuple[str, Role]:
    """A new agent's email (normalised) and role, checked: only an owner makes an owner. `verb`
    says how ("create", "invite") in the refusal."""
    require_admin(who)
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise InvalidInput("email: not an email address")
    if not name.strip():
        raise InvalidInput("name: must not be empty")
    wanted = _role(role)
    if wanted == Role.OWNER and who.role != Role.OWNER:
        raise Forbidden(f"only an owner may {verb} another owner")
    return email, wanted


async def do_add_agent(
    tx: Tx, who: Principal, email: str, name: str, role: Role, password_hash: str | None
) -> Agent:
    """A new active agent of `who`'s workspace (`email` as `new_agent_fields` normalised it;
    Conflict when an agent has it): online with a password, else offline until they choose one."""
    if await tx.session.scalar(select(Agent.id).where(Agent.email == email)) is not None:
        raise Conflict("email: an agent with this email already exists")
    agent = Agent(
        workspace_id=who.workspace_id,
        email=email,
        name=name.strip(),
        password_hash=password_hash,
        role=role,
        availability="online" if password_hash else "offline",
        active=True,
        created_at=utcnow(),
    )
    tx.session.add(agent)
    await tx.session.flush()
    return agent


async def check_create_agent(
    rt: Runtime, who: Principal, email: str, name: str, role: str, password: str
) -> Agent:
    email, wanted = new_agent_fields(who, email, name, role, "create")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password: at least {MIN_PASSWORD} characters")
    async with transaction(rt) as tx:
        agent = await do_add_agent(tx, who, email, name, wanted, hasher.hash(password))
        audit(tx, who, "agent.create", "agent", agent.id)
        settings_changed(tx, who, "agents")
        return agent


async def check_update_agent(
    rt: Runtime,
    who: Principal,
    agent_id: int,
    *,
    name: str | None = None,
    role: str | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> Agent:
    require_admin(who)
    async with transaction(rt) as tx:
        s = tx.session
        agent = await require_own(s, who, Agent, agent_id, "agent")
        # Anything about an owner (and making one) is an owner's alone: an admin who could set
        # an owner's password or demote them could take the workspace over.
        if not may_change_agent(who, agent.role) or not may_change_agent(who, role or ""):
            raise Forbidden("only an owner may change an owner")
        if agent.id == who.agent_id and (active is False or (role and role != agent.role)):
            raise InvalidInput("you cannot deactivate yourself or change your own role")
        if name is not None:
            if not name.strip():
                raise InvalidInput("name: must not be empty")
            agent.name = name.strip()
        ends_sessions = False
        if role is not None and _role(role) != agent.role:
            agent.role = _role(role)
            ends_sessions = True
        if active is not None and active != agent.active:
            agent.active = active
            ends_sessions = ends_sessions or not active
        if password is not None:
            await do_set_password(tx, agent, password)
        elif ends_sessions:
            await do_end_sessions(tx, agent)
        await s.flush()
        audit(tx, who, "agent.update", "agent", agent.id)
        settings_changed(tx, who, "agents")
        return agent


async def _set_members(
    tx: Tx, who: Principal, group: Any, group_id: int, agent_ids: list[int]
) -> list[int]:
    """`agent_ids` (each the workspace's) become the members of an inbox or a team instead of
    its members until now. `group`: `InboxMember.inbox_id` or `TeamMember.team_id`. Returns
    the ids, sorted."""
    ids = sorted(set(agent_ids))
    await tx.session.execute(delete(group.class_).where(group == group_id))
    await require_own_ids(tx, who, Agent, ids, "agent_ids", "agent")
    tx.session.add_all(group.class_(**{group.key: group_id, "agent_id": a}) for a in ids)
    return ids


async def check_create_inbox(rt: Runtime, who: Principal, name: str, agent_ids: list[int]) -> Inbox:
    require_admin(who)
    if not name.strip():
        raise InvalidInput("name: must not be empty")
    async with transaction(rt) as tx:
        inbox = Inbox(workspace_id=who.workspace_id, name=name.strip(), created_at=utcnow())
        tx.session.add(inbox)
        await tx.session.flush()
        await _set_members(tx, who, InboxMember.inbox_id, inbox.id, agent_ids)
        audit(tx, who, "inbox.create", "inbox", inbox.id)
        settings_changed(tx, who, "inboxes")
        return inbox


async def check_set_inbox_members(
    rt: Runtime, who: Principal, inbox_id: int, agent_ids: list[int], name: str | None = None
) -> list[int]:
    require_admin(who)
    async with transaction(rt) as tx:
        s = tx.session
        inbox = await require_inbox(s, who, inbox_id)
        if name is not None and name.strip():
            inbox.name = name.strip()
        ids = await _set_members(tx, who, InboxMember.inbox_id, inbox.id, agent_ids)
        audit(tx, who, "inbox.members", "inbox", inbox.id)
        settings_changed(tx, who, "inboxes")
        return ids


async def check_create_team(rt: Runtime, who: Principal, name: str, agent_ids: list[int]) -> Team:
    require_admin(who)
    if not name.strip():
        raise InvalidInput("name: must not be empty")
    async with transaction(rt) as tx:
        s = tx.session
        exists = await s.scalar(
            select(func.count())
            .select_from(Team)
            .where(Team.workspace_id == who.workspace_id, Team.name == name.strip())
        )
        if exists:
            raise Conflict("name: a team with this name already exists")
        team = Team(workspace_id=who.workspace_id, name=name.strip(), created_at=utcnow())
        s.add(team)
        await s.flush()
        await _set_members(tx, who, TeamMember.team_id, team.id, agent_ids)
        audit(tx, who, "team.create", "team", team.id)
        settings_changed(tx, who, "teams")
        return team


async def check_set_team_members(
    rt: Runtime, who: Principal, team_id: int, agent_ids: list[int]
) -> list[int]:
    require_admin(who)
    async with transaction(rt) as tx:
        s = tx.session
        team = await require_own(s, who, Team, team_id, "team")
        ids = await _set_members(tx, who, TeamMember.team_id, team.id, agent_ids)
        audit(tx, who, "team.members", "team", team.id)
        settings_changed(tx, who, "teams")
        return ids


async def check_revoke_token(rt: Runtime, who: Principal, token_id: int) -> None:
    """Agents may revoke their own tokens; owners and admins any token of the workspace."""
    async with transaction(rt) as tx:
        token = await require_own(tx.session, who, ApiToken, token_id, "token")
        if token.agent_id != who.agent_id:
            require_admin(who)
            target = await tx.session.get_one(Agent, token.agent_id)
            if not may_change_agent(who, target.role):
                raise Forbidden("only an owner may change an owner")
        await tx.session.delete(token)
        audit(tx, who, "token.revoke", "api_token", token_id)
        settings_changed(tx, who, "tokens")
