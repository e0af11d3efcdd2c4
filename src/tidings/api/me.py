"""The profile page's API: one's own name and notification preferences, and
admins inviting agents. Passwords: `POST /api/v1/me/password`; availability:
`PUT /api/v1/agents/{id}/availability`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tidings.actions import agents_profile
from tidings.actions.agents import agent_public
from tidings.api.deps import RT, Who
from tidings.api.schemas import AgentOut, NewAgent, Strict
from tidings.serialize import ts
from tidings.storage.models import Agent

router = APIRouter(prefix="/api/v1", tags=["admin"])


class Notify(Strict):
    mentions: bool | None = None
    assigned: bool | None = None
    replies: bool | None = None
    desktop: bool | None = None
    sound: bool | None = None


class ProfilePatch(Strict):
    name: str | None = Field(default=None, max_length=200)
    notify: Notify | None = None


class NotifyOut(BaseModel):
    mentions: bool
    assigned: bool
    replies: bool
    desktop: bool
    sound: bool


class ProfileOut(BaseModel):
    id: int
    name: str
    email: str
    role: str
    availability: str
    notify: NotifyOut


class InviteIn(NewAgent):
    inboxes: list[int] = Field(default_factory=list, description="inbox ids to join")


class InviteOut(BaseModel):
    agent: AgentOut
    invite_url: str = Field(description="Shown once: the agent chooses a password there")
    expires_at: str


@router.get("/me/profile", response_model=ProfileOut)
async def get_profile(who: Who, rt: RT) -> dict[str, Any]:
    async with rt.db.read() as s:
        agent = await s.get_one(Agent, who.agent_id)
    return agents_profile.me_dict(agent)


@router.patch("/me/profile", response_model=ProfileOut)
async def update_profile(body: ProfilePatch, who: Who, rt: RT) -> dict[str, Any]:
    notify = body.notify.model_dump(exclude_none=True) if body.notify is not None else None
    agent = await agents_profile.check_update_me(rt, who, name=body.name, notify=notify)
    return agents_profile.me_dict(agent)


@router.post("/admin/agents/invite", status_code=201, response_model=InviteOut)
async def invite_agent(body: InviteIn, who: Who, rt: RT) -> dict[str, Any]:
    """A new agent without a password and a one-time link (24 h) to choose one. Give the link
    privately; it is not shown again (a reset link can be made later)."""
    agent, url, expires_at = await agents_profile.check_invite_agent(
        rt, who, body.email, body.name, body.role, body.inboxes
    )
    return {"agent": agent_public(agent), "invite_url": url, "expires_at": ts(expires_at)}
