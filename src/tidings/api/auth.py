"""Who is calling: a bearer API token, or an agent's session cookie.

Cookie-authenticated requests that change state must carry `X-Requested-With: tidings`: a
custom header cannot be sent cross-site without a CORS preflight, which we never grant, so a
forged form post from another site is refused (CSRF).
"""

from __future__ import annotations

from fastapi import Request
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from sqlalchemy import select, update

from tidings.access import Principal
from tidings.actions.admin import hash_token
from tidings.domain.enums import Role
from tidings.domain.errors import Forbidden, Unauthorized
from tidings.runtime import Runtime
from tidings.storage.models import Agent, ApiToken, InboxMember
from tidings.storage.types import utcnow

SESSION_COOKIE = "tidings_session"
SESSION_MAX_AGE = 14 * 24 * 3600
CSRF_HEADER = "x-requested-with"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def signer(rt: Runtime) -> TimestampSigner:
    return TimestampSigner(rt.settings.secret_key, salt="tidings.session")


def session_value(rt: Runtime, agent_id: int) -> str:
    return signer(rt).sign(str(agent_id)).decode()


def agent_from_session(rt: Runtime, cookie: str | None) -> int | None:
    if not cookie:
        return None
    try:
        raw = signer(rt).unsign(cookie, max_age=SESSION_MAX_AGE)
    except (BadSignature, SignatureExpired):
        return None
    return int(raw) if raw.isdigit() else None


async def principal_for_agent(rt: Runtime, agent_id: int) -> Principal | None:
    async with rt.db.read() as s:
        agent = await s.get(Agent, agent_id)
        if agent is None or not agent.active:
            return None
        inboxes = (
            await s.scalars(select(InboxMember.inbox_id).where(InboxMember.agent_id == agent_id))
        ).all()
    return Principal(agent.workspace_id, agent.id, Role(agent.role), frozenset(inboxes))


async def authenticate(request: Request) -> Principal:
    rt: Runtime = request.app.state.runtime
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
        async with rt.db.read() as s:
            row = await s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        if row is None:
            raise Unauthorized("invalid API token")
        who = await principal_for_agent(rt, row.agent_id)
        if who is None:
            raise Unauthorized("the token's agent is deactivated")
        if row.last_used_at is None or (utcnow() - row.last_used_at).total_seconds() > 300:
            async with rt.db.write() as s:
                await s.execute(
                    update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=utcnow())
                )
        return who
    agent_id = agent_from_session(rt, request.cookies.get(SESSION_COOKIE))
    if agent_id is None:
        raise Unauthorized("sign in, or send 'Authorization: Bearer <API token>'")
    if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != "tidings":
        raise Forbidden("missing 'X-Requested-With: tidings' header (CSRF protection)")
    who = await principal_for_agent(rt, agent_id)
    if who is None:
        raise Unauthorized("session expired; sign in again")
    return who
