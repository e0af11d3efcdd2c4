"""Passwords and sessions: changing one's own password, admin-initiated reset links, the CLI
reset, and signing out everywhere.

A reset link is stateless: it signs the agent id, the agent's session version and a fingerprint
of the current password hash, and expires after `RESET_LINK_SECONDS`. Using it sets a new
password, which changes both, so a link works once; signing out or a role change also ends it.
Every way of setting a password goes through `agents.do_set_password`, which ends the agent's
sessions and deletes the agent's API tokens.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from urllib.parse import quote

from argon2.exceptions import VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from tidings.access import Principal, may_change_agent, require_admin, require_own
from tidings.actions.admin import hasher
from tidings.actions.agents import do_end_sessions, do_set_password
from tidings.actions.base import audit, audit_as, transaction
from tidings.domain.errors import Forbidden, InvalidInput, NotFound
from tidings.runtime import Runtime
from tidings.storage.models import Agent
from tidings.storage.types import utcnow

RESET_LINK_SECONDS = 24 * 3600
RESET_PATH = "/reset-password"


def _serializer(rt: Runtime) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(rt.settings.secret_key, salt="tidings.password-reset")


def _fingerprint(agent: Agent) -> str:
    return hashlib.sha256((agent.password_hash or "").encode()).hexdigest()[:16]


def reset_link(rt: Runtime, agent: Agent) -> tuple[str, datetime]:
    """A one-time link that lets `agent` choose a new password, and when it expires."""
    token = _serializer(rt).dumps([agent.id, agent.session_version, _fingerprint(agent)])
    url = f"{rt.settings.public_url.rstrip('/')}{RESET_PATH}?token={quote(token)}"
    return url, utcnow() + timedelta(seconds=RESET_LINK_SECONDS)


async def agent_for_reset(rt: Runtime, token: str) -> Agent | None:
    """The agent a reset token is for, if it is genuine, unexpired and unused."""
    try:
        raw = _serializer(rt).loads(token, max_age=RESET_LINK_SECONDS)
    except (BadSignature, SignatureExpired):
        return None
    if not (isinstance(raw, list) and len(raw) == 3 and isinstance(raw[0], int)):
        return None
    async with rt.db.read() as s:
        agent = await s.get(Agent, raw[0])
    if agent is None or not agent.active:
        return None
    if agent.session_version != raw[1] or _fingerprint(agent) != raw[2]:
        return None
    return agent


async def check_create_reset_link(
    rt: Runtime, who: Principal, agent_id: int
) -> tuple[str, datetime]:
    """An admin asks for a reset link for an agent (an owner's only from an owner)."""
    require_admin(who)
    async with transaction(rt) as tx:
        agent = await require_own(tx.session, who, Agent, agent_id, "agent")
        if not may_change_agent(who, agent.role):
            raise Forbidden("only an owner may change an owner")
        if not agent.active:
            raise InvalidInput("the agent is deactivated; activate them first")
        audit(tx, who, "agent.reset_link", "agent", agent.id)
        return reset_link(rt, agent)


async def do_reset_with_link(rt: Runtime, token: str, password: str) -> Agent:
    agent = await agent_for_reset(rt, token)
    if agent is None:
        raise InvalidInput("token: this reset link is invalid, used or expired")
    async with transaction(rt) as tx:
        fresh = await tx.session.get_one(Agent, agent.id)
        await do_set_password(tx, fresh, password)
        audit_as(
            tx,
            fresh.workspace_id,
            fresh.id,
            "agent.password_reset",
            "agent",
            fresh.id,
            {"by": "link"},
        )
        return fresh


def _verify(agent: Agent, password: str) -> bool:
    if not agent.password_hash:
        return False
    try:
        return hasher.verify(agent.password_hash, password)
    except VerificationError:
        return False


async def check_change_own_password(rt: Runtime, who: Principal, current: str, new: str) -> Agent:
    """ "Change my password": needs the current one. Ends every session and token of the agent
    (the caller's session gets a new cookie: see api/v1.py and web/routes.py)."""
    async with transaction(rt) as tx:
        agent = await tx.session.get_one(Agent, who.agent_id)
        if not _verify(agent, current):
            raise InvalidInput("current_password: not your current password")
        await do_set_password(tx, agent, new)
        audit(tx, who, "agent.password_change", "agent", agent.id)
        return agent


async def reset_password_cli(rt: Runtime, email: str, password: str | None) -> str:
    """`tidings reset-password`: set the password (when given) or make a reset link."""
    async with transaction(rt) as tx:
        agent = await tx.session.scalar(select(Agent).where(Agent.email == email.strip().lower()))
        if agent is None:
            raise NotFound(f"no agent with email {email!r}")
        if password is None:
            if not agent.active:
                raise InvalidInput("the agent is deactivated; activate them first")
            url, expires = reset_link(rt, agent)
            return f"{url}\n(valid once, until {expires.isoformat(timespec='minutes')})"
        await do_set_password(tx, agent, password)
        audit_as(
            tx, agent.workspace_id, None, "agent.password_reset", "agent", agent.id, {"by": "cli"}
        )
        return "password set; the agent's sessions and API tokens were revoked"


async def do_sign_out(rt: Runtime, agent_id: int) -> None:
    """Sign out: every session of the agent ends (there is one version per agent)."""
    async with transaction(rt) as tx:
        agent = await tx.session.get(Agent, agent_id)
        if agent is not None:
            await do_end_sessions(tx, agent)
