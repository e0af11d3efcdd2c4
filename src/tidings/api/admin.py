"""Admin endpoints behind the settings pages: channel kinds with their config JSON schema,
channel setup details, agents, teams, inboxes and membership, canned replies, labels and API
tokens. Owners and admins only, except listing and revoking one's own tokens."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute

from tidings.access import Principal, require_admin, require_channel
from tidings.actions import agents as people
from tidings.actions import canned, workspace_settings
from tidings.actions.admin import public_config
from tidings.actions.passwords import check_create_reset_link
from tidings.api.deps import RT, Who
from tidings.api.queries import grouped, inbox_ids_by_agent, workspace_rows
from tidings.api.schemas import AgentOut, ChannelHealth, ChannelOut, NewAgent, Strict, answer
from tidings.channels.registry import get_adapter, kinds
from tidings.runtime import Runtime
from tidings.serialize import channel_dict, ts
from tidings.storage.models import (
    Agent,
    ApiToken,
    Channel,
    Inbox,
    InboxMember,
    Team,
    TeamMember,
    Template,
)

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class AgentCreate(NewAgent):
    password: str = Field(min_length=1, max_length=1000)


class AgentPatch(Strict):
    name: str | None = None
    role: str | None = None
    active: bool | None = None
    password: str | None = Field(default=None, max_length=1000)


class GroupIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    agent_ids: list[int] = Field(default_factory=list)


class MembersIn(Strict):
    agent_ids: list[int]
    name: str | None = None


class CannedIn(Strict):
    short_code: str = Field(min_length=1, max_length=64)
    content: str = Field(min_length=1, max_length=10_000)


class LabelIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    color: str = "#6b7280"


class WorkspacePatch(Strict):
    default_region: str | None = Field(
        default=None,
        max_length=2,
        description="ISO 3166 alpha-2 region national phone numbers are read in (e.g. FR); "
        "null falls back to TIDINGS_DEFAULT_REGION",
    )


# --- answers ----------------------------------------------------------------------------------


class WorkspaceOut(BaseModel):
    id: int
    name: str
    default_region: str | None
    fallback_region: str | None = Field(
        description="What applies when default_region is not set (the deployment's setting)"
    )


class KindCapabilitiesOut(BaseModel):
    text_max_length: int | None
    service_window_hours: int | None
    supports_templates: bool
    receipts: list[str]


class KindSchemaOut(BaseModel):
    kind: str
    label: str
    schema_: dict[str, Any] = Field(
        alias="schema", description="JSON schema of the channel's config (open by nature)"
    )
    secret_fields: list[str]
    capabilities: KindCapabilitiesOut


class SetupHealthOut(ChannelHealth):
    provider: str | None = Field(description="What the provider says about the account now")


class ChannelSetupOut(ChannelOut):
    health: SetupHealthOut
    verify_token: str | None
    label: str


class AdminAgentOut(AgentOut):
    inbox_ids: list[int]


class ResetLinkOut(BaseModel):
    url: str
    expires_at: str | None


class GroupOut(BaseModel):
    id: int
    name: str
    agent_ids: list[int]


class MembersOut(BaseModel):
    id: int
    agent_ids: list[int]


class CannedOut(BaseModel):
    id: int
    short_code: str
    content: str


class LabelOut(BaseModel):
    id: int
    name: str
    color: str


class AdminTemplateOut(BaseModel):
    id: int
    channel_id: int
    channel_name: str
    name: str
    language: str
    category: str
    status: str
    components: list[dict[str, Any]] = Field(description="The provider's components, as synced")
    updated_at: str | None


class TokenRowOut(BaseModel):
    id: int
    name: str
    agent_id: int
    agent_name: str
    created_at: str | None
    last_used_at: str | None
    scopes: list[str]
    expires_at: str | None


# --- workspace settings -------------------------------------------------------------------------


@router.get("/workspace", response_model=WorkspaceOut)
async def get_workspace(who: Who, rt: RT) -> dict[str, Any]:
    return await workspace_settings.get_settings(rt, who)


@router.patch("/workspace", response_model=WorkspaceOut)
async def update_workspace(body: WorkspacePatch, who: Who, rt: RT) -> dict[str, Any]:
    fields = {name: getattr(body, name) for name in body.model_fields_set}
    return await workspace_settings.check_update_settings(rt, who, fields)


# --- channels -----------------------------------------------------------------------------------


@router.get("/channel_kinds", response_model=list[KindSchemaOut])
async def channel_kinds(who: Who) -> list[dict[str, Any]]:
    """Each provider kind with the JSON schema of its config: the settings page builds the
    connect form from it."""
    require_admin(who)
    out = []
    for kind in kinds():
        adapter = get_adapter(kind)
        caps = adapter.capabilities
        out.append(
            {
                "kind": kind,
                "label": adapter.label,
                "schema": adapter.config_model.model_json_schema(),
                "secret_fields": sorted(adapter.secret_fields),
                "capabilities": answer(KindCapabilitiesOut, caps, receipts=list(caps.receipts)),
            }
        )
    return out


@router.get("/channels/{channel_id}/setup", response_model=ChannelSetupOut)
async def channel_setup(channel_id: int, who: Who, rt: RT) -> dict[str, Any]:
    """What to paste into the provider's console: the webhook URL and, where the provider
    uses one, the verify token (admins only; other secrets stay hidden)."""
    require_admin(who)
    async with rt.db.read() as s:
        c = await require_channel(s, who, channel_id)
    config = rt.box.decrypt_json(c.config_encrypted)
    out = channel_dict(c, public_config(c.kind, config), rt.settings.webhook_url(c.kind, c.id))
    out["verify_token"] = config.get("verify_token")
    adapter = get_adapter(c.kind)
    out["label"] = adapter.label
    out["health"]["provider"] = await _provider_summary(rt, adapter, c.kind, config)
    return out


async def _provider_summary(
    rt: Runtime, adapter: Any, kind: str, config: dict[str, Any]
) -> str | None:
    """What the provider says about the account right now, for adapters that can tell (LINE:
    the push quota left this month). Asked only when an admin opens the channel's setup; a
    slow or failing provider shows as such, never as an error of this page."""
    summary = getattr(adapter, "health_summary", None)
    if summary is None:
        return None
    try:
        async with asyncio.timeout(5):
            text: str = await summary(adapter.config_model.model_validate(config), rt.http)
    except TimeoutError:
        return "the provider did not answer in time"
    except Exception as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return f"could not ask the provider ({reason})"
    return text


# --- agents -------------------------------------------------------------------------------------


@router.get("/agents", response_model=list[AdminAgentOut])
async def list_agents(who: Who, rt: RT) -> list[dict[str, Any]]:
    require_admin(who)
    async with rt.db.read() as s:
        agents: list[Agent] = await workspace_rows(s, Agent, who.workspace_id, Agent.id)
        inboxes = await inbox_ids_by_agent(s, who.workspace_id)
    return [{**people.agent_public(a), "inbox_ids": inboxes.get(a.id, [])} for a in agents]


@router.post("/agents", status_code=201, response_model=AgentOut)
async def create_agent(body: AgentCreate, who: Who, rt: RT) -> dict[str, Any]:
    agent = await people.check_create_agent(
        rt, who, body.email, body.name, body.role, body.password
    )
    return people.agent_public(agent)


@router.patch("/agents/{agent_id}", response_model=AgentOut)
async def update_agent(agent_id: int, body: AgentPatch, who: Who, rt: RT) -> dict[str, Any]:
    agent = await people.check_update_agent(
        rt,
        who,
        agent_id,
        name=body.name,
        role=body.role,
        active=body.active,
        password=body.password,
    )
    return people.agent_public(agent)


@router.post("/agents/{agent_id}/password_reset", status_code=201, response_model=ResetLinkOut)
async def password_reset_link(agent_id: int, who: Who, rt: RT) -> dict[str, Any]:
    """A one-time link (valid 24 h) for the agent to choose a new password; hand it over
    privately. Using it ends the agent's sessions and deletes their API tokens. An owner's
    link only from an owner."""
    url, expires_at = await check_create_reset_link(rt, who, agent_id)
    return {"url": url, "expires_at": ts(expires_at)}


# --- inboxes and teams --------------------------------------------------------------------------


async def _with_members(
    rt: Runtime,
    who: Principal,
    model: type[Inbox] | type[Team],
    order: Any,
    group_of: InstrumentedAttribute[int],
    agent_of: InstrumentedAttribute[int],
) -> list[dict[str, Any]]:
    """The workspace's inboxes or teams, each with its members' agent ids."""
    require_admin(who)
    async with rt.db.read() as s:
        groups = (
            await s.execute(
                select(model.id, model.name)
                .where(model.workspace_id == who.workspace_id)
                .order_by(order)
            )
        ).all()
        members = select(group_of, agent_of).where(group_of.in_([g.id for g in groups]))
        by_group = grouped(await s.execute(members))
    return [
        {"id": g.id, "name": g.name, "agent_ids": sorted(by_group.get(g.id, []))} for g in groups
    ]


@router.get("/inboxes", response_model=list[GroupOut])
async def list_inboxes(who: Who, rt: RT) -> list[dict[str, Any]]:
    return await _with_members(rt, who, Inbox, Inbox.id, InboxMember.inbox_id, InboxMember.agent_id)


@router.post("/inboxes", status_code=201, response_model=GroupOut)
async def create_inbox(body: GroupIn, who: Who, rt: RT) -> dict[str, Any]:
    inbox = await people.check_create_inbox(rt, who, body.name, body.agent_ids)
    return {"id": inbox.id, "name": inbox.name, "agent_ids": sorted(set(body.agent_ids))}


@router.put("/inboxes/{inbox_id}/members", response_model=MembersOut)
async def set_inbox_members(inbox_id: int, body: MembersIn, who: Who, rt: RT) -> dict[str, Any]:
    ids = await people.check_set_inbox_members(rt, who, inbox_id, body.agent_ids, body.name)
    return {"id": inbox_id, "agent_ids": ids}


@router.get("/teams", response_model=list[GroupOut])
async def list_teams(who: Who, rt: RT) -> list[dict[str, Any]]:
    return await _with_members(rt, who, Team, Team.name, TeamMember.team_id, TeamMember.agent_id)


@router.post("/teams", status_code=201, response_model=GroupOut)
async def create_team(body: GroupIn, who: Who, rt: RT) -> dict[str, Any]:
    team = await people.check_create_team(rt, who, body.name, body.agent_ids)
    return {"id": team.id, "name": team.name, "agent_ids": sorted(set(body.agent_ids))}


@router.put("/teams/{team_id}/members", response_model=MembersOut)
async def set_team_members(team_id: int, body: MembersIn, who: Who, rt: RT) -> dict[str, Any]:
    return {
        "id": team_id,
        "agent_ids": await people.check_set_team_members(rt, who, team_id, body.agent_ids),
    }


# --- canned replies and labels ------------------------------------------------------------------


@router.post("/canned_replies", status_code=201, response_model=CannedOut)
async def create_canned(body: CannedIn, who: Who, rt: RT) -> dict[str, Any]:
    row = await canned.check_save_canned_reply(rt, who, body.short_code, body.content)
    return answer(CannedOut, row)


@router.put("/canned_replies/{reply_id}", response_model=CannedOut)
async def update_canned(reply_id: int, body: CannedIn, who: Who, rt: RT) -> dict[str, Any]:
    row = await canned.check_save_canned_reply(rt, who, body.short_code, body.content, reply_id)
    return answer(CannedOut, row)


@router.delete("/canned_replies/{reply_id}", status_code=204)
async def delete_canned(reply_id: int, who: Who, rt: RT) -> None:
    await canned.check_delete_canned_reply(rt, who, reply_id)


@router.post("/labels", status_code=201, response_model=LabelOut)
async def create_label(body: LabelIn, who: Who, rt: RT) -> dict[str, Any]:
    label = await canned.check_save_label(rt, who, body.name, body.color)
    return answer(LabelOut, label)


@router.put("/labels/{label_id}", response_model=LabelOut)
async def update_label(label_id: int, body: LabelIn, who: Who, rt: RT) -> dict[str, Any]:
    label = await canned.check_save_label(rt, who, body.name, body.color, label_id)
    return answer(LabelOut, label)


@router.delete("/labels/{label_id}", status_code=204)
async def delete_label(label_id: int, who: Who, rt: RT) -> None:
    await canned.check_delete_label(rt, who, label_id)


# --- templates ----------------------------------------------------------------------------------


@router.get("/templates", response_model=list[AdminTemplateOut])
async def list_templates(who: Who, rt: RT) -> list[dict[str, Any]]:
    """Provider message templates as synced by the channels (status, category, language)."""
    require_admin(who)
    async with rt.db.read() as s:
        rows = (
            await s.execute(
                select(Template, Channel.name)
                .join(Channel, Channel.id == Template.channel_id)
                .where(Template.workspace_id == who.workspace_id)
                .order_by(Channel.name, Template.name, Template.language)
            )
        ).all()
    return [answer(AdminTemplateOut, t, channel_name=channel_name) for t, channel_name in rows]


# --- API tokens ---------------------------------------------------------------------------------


@router.get("/api_tokens", response_model=list[TokenRowOut])
async def list_tokens(who: Who, rt: RT) -> list[dict[str, Any]]:
    """Admins see every token of the workspace, agents their own. Never the token itself."""
    q = select(ApiToken, Agent.name).join(Agent, Agent.id == ApiToken.agent_id)
    q = q.where(ApiToken.workspace_id == who.workspace_id)
    if not who.is_admin:
        q = q.where(ApiToken.agent_id == who.agent_id)
    async with rt.db.read() as s:
        rows = (await s.execute(q.order_by(ApiToken.id))).all()
    return [answer(TokenRowOut, t, agent_name=name, scopes=t.scopes.split()) for t, name in rows]


@router.delete("/api_tokens/{token_id}", status_code=204)
async def revoke_token(token_id: int, who: Who, rt: RT) -> None:
    await people.check_revoke_token(rt, who, token_id)
