"""Who is calling: a bearer API token, or an agent's session cookie.

Cookie-authenticated requests that change state must carry `X-Requested-With: tidings`: a
custom header cannot be sent cross-site without a CORS preflight, which we never grant, so a
forged form post from another site is refused (CSRF).

Sessions are revocable: the cookie carries the agent's `session_version`, which logout, a
password or role change and deactivation bump, so every cookie signed before stops working.
The check costs nothing extra: the agent row is read on every request anyway.

API tokens carry scopes: `read` allows GET (and HEAD/OPTIONS), `reply` any change, `admin` the
owner/admin routes (`access.require_admin`), for an agent whose role allows them; an admin
change needs `reply` and `admin`. A token may expire (`expires_at`); a token of a deactivated
agent stops working, and setting an agent's password deletes the agent's tokens
(`actions.agents.set_password`).
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import Request, Response
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from sqlalchemy import select, update

from tidings.access import ALL_SCOPES, Principal
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
# A token's last use is written at most this often (seconds): one write a minute per token.
LAST_USED_EVERY = 60.0


def signer(rt: Runtime) -> TimestampSigner:
    return TimestampSigner(rt.settings.secret_key, salt="tidings.session")


def session_value(rt: Runtime, agent_id: int, version: int) -> str:
    return signer(rt).sign(f"{agent_id}.{version}").decode()


def set_session_cookie(rt: Runtime, response: Response, agent: Agent) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_value(rt, agent.id, agent.session_version),
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=rt.settings.public_url.startswith("https://"),
    )


def session_claim(rt: Runtime, cookie: str | None) -> tuple[int, int] | None:
    """(agent id, session version) of a validly signed, unexpired cookie. Whether the version
    is still the agent's current one is for the caller to check (`agent_from_session`)."""
    if not cookie:
        return None
    try:
        raw = signer(rt).unsign(cookie, max_age=SESSION_MAX_AGE).decode()
    except (BadSignature, SignatureExpired):
        return None
    agent, _, version = raw.partition(".")
    if not agent.isdigit() or not version.isdigit():
        return None  # also a cookie from before session versions: sign in again
    return int(agent), int(version)


async def agent_from_session(rt: Runtime, cookie: str | None) -> Agent | None:
    """The active agent a cookie signs in, unless its session was revoked since."""
    claim = session_claim(rt, cookie)
    if claim is None:
        return None
    async with rt.db.read() as s:
        agent = await s.get(Agent, claim[0])
    if agent is None or not agent.active or agent.session_version != claim[1]:
        return None
    return agent


async def principal_for_agent(
    rt: Runtime, agent_id: int, session_version: int | None = None
) -> Principal | None:
    """The agent's principal, or None when deactivated (or `session_version` is not current)."""
    async with rt.db.read() as s:
        agent = await s.get(Agent, agent_id)
        if agent is None or not agent.active:
            return None
        if session_version is not None and agent.session_version != session_version:
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
        now = utcnow()
        if row.expires_at is not None and row.expires_at <= now:
            raise Unauthorized("this API token has expired")
        agent = await principal_for_agent(rt, row.agent_id)
        if agent is None:
            raise Unauthorized("the token's agent is deactivated")
        scopes = frozenset(row.scopes.split()) & ALL_SCOPES
        needed = "read" if request.method in SAFE_METHODS else "reply"
        if needed not in scopes:
            raise Forbidden(f"this API token lacks the '{needed}' scope")
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > LAST_USED_EVERY:
            async with rt.db.write() as s:
                await s.execute(
                    update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
                )
        return replace(agent, scopes=scopes, token_id=row.id)
    claim = session_claim(rt, request.cookies.get(SESSION_COOKIE))
    if claim is None:
        raise Unauthorized("sign in, or send 'Authorization: Bearer <API token>'")
    if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != "tidings":
        raise Forbidden("missing 'X-Requested-With: tidings' header (CSRF protection)")
    who = await principal_for_agent(rt, claim[0], claim[1])
    if who is None:
        raise Unauthorized("session expired; sign in again")
    return who
