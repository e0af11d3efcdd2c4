"""REST API for assignment, agent availability, the queue, SLA and CSAT.

Settings are per inbox (`/inboxes/{id}/assignment|sla|csat`): everyone who sees the inbox may
read them, owners and admins change them. Errors are `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from tidings.access import Principal, require_own
from tidings.actions import assignment, csat, sla
from tidings.actions.agents import agent_public
from tidings.api.deps import RT, Who
from tidings.api.schemas import AgentOut, ConversationOut, Strict
from tidings.domain.errors import InvalidInput
from tidings.serialize import conversation_dict
from tidings.storage.models import Agent

router = APIRouter(prefix="/api/v1")


class AssignmentIn(Strict):
    mode: str | None = Field(default=None, description="off | round_robin | least_busy | manual")
    capacity: int | None = Field(
        default=None, description="Open conversations per agent in this inbox; null: no limit"
    )
    agent_capacities: dict[str, int | None] | None = Field(
        default=None, description="{agent_id: capacity} overrides; null removes one"
    )


class SlaTargets(Strict):
    first_response_seconds: int | None = None
    next_response_seconds: int | None = None


class SlaIn(Strict):
    first_response_seconds: int | None = Field(
        default=None, description="Target for the first agent reply; null: none"
    )
    next_response_seconds: int | None = Field(
        default=None, description="Target for each later reply; null: none"
    )
    by_priority: dict[str, SlaTargets] | None = Field(
        default=None, description="Per-priority overrides (none, low, medium, high, urgent)"
    )


class CsatIn(Strict):
    enabled: bool | None = None
    question: str | None = Field(default=None, max_length=1000)
    template_id: int | None = Field(
        default=None, description="Approved template (no parameters) for a closed window"
    )


class AvailabilityIn(Strict):
    availability: str = Field(description="online | away | offline")


# --- answers ----------------------------------------------------------------------------------


class AssignmentOut(BaseModel):
    inbox_id: int
    mode: str
    capacity: int | None
    agent_capacities: dict[str, int | None] = Field(description="{agent_id: capacity}")


class QueueOut(BaseModel):
    inbox_id: int
    mode: str
    waiting: int
    oldest_created_at: str | None


class TakeOut(BaseModel):
    conversation: ConversationOut | None = Field(description="null when none waits")


class SlaOut(BaseModel):
    inbox_id: int
    first_response_seconds: int | None
    next_response_seconds: int | None
    by_priority: dict[str, dict[str, int]] = Field(
        description="{priority: {first_response_seconds?, next_response_seconds?}}"
    )


class BreachOut(BaseModel):
    id: int
    conversation_id: int
    inbox_id: int
    target: str
    priority: str
    assignee_id: int | None
    due_at: str
    detected_at: str
    responded_at: str | None


class BreachPage(BaseModel):
    data: list[BreachOut]


class CsatSettingsOut(BaseModel):
    inbox_id: int
    enabled: bool
    question: str
    template_id: int | None


class CsatResponseOut(BaseModel):
    id: int
    conversation_id: int
    inbox_id: int
    contact_id: int
    agent_id: int | None
    channel_id: int | None
    state: str
    reason: str | None
    rating: int | None
    question_message_id: int | None
    answer_message_id: int | None
    asked_at: str
    answered_at: str | None


class CsatSummaryOut(BaseModel):
    count: int
    average: float | None
    distribution: dict[str, int] = Field(description="{rating 1-5: count}")
    satisfied_share: float | None = Field(description="Share of 4 and 5 ratings")


class CsatPage(BaseModel):
    data: list[CsatResponseOut]
    summary: CsatSummaryOut


class ConversationCsatOut(BaseModel):
    csat: CsatResponseOut | None


def _agent_id(who: Principal, agent_id: str) -> int:
    if agent_id == "me":
        return who.agent_id
    if not (agent_id.isascii() and agent_id.isdigit()):
        raise InvalidInput("agent_id: an agent id or 'me'")
    return int(agent_id)


# --- assignment -------------------------------------------------------------------------------


@router.get("/inboxes/{inbox_id}/assignment", tags=["assignment"], response_model=AssignmentOut)
async def get_assignment(inbox_id: int, who: Who, rt: RT) -> dict[str, Any]:
    return (await assignment.check_get_settings(rt, who, inbox_id)).as_dict()


@router.put("/inboxes/{inbox_id}/assignment", tags=["assignment"], response_model=AssignmentOut)
async def put_assignment(inbox_id: int, body: AssignmentIn, who: Who, rt: RT) -> dict[str, Any]:
    """Change only the fields given. Switching to an automatic mode, or raising capacity,
    assigns waiting conversations at once."""
    fields = body.model_fields_set
    settings = await assignment.check_set_settings(
        rt,
        who,
        inbox_id,
        mode=body.mode,
        capacity=body.capacity if "capacity" in fields else ...,
        agent_capacities=body.agent_capacities,
    )
    return settings.as_dict()


@router.get("/inboxes/{inbox_id}/queue", tags=["assignment"], response_model=QueueOut)
async def get_queue(inbox_id: int, who: Who, rt: RT) -> dict[str, Any]:
    """How many conversations wait unassigned in the inbox, and since when."""
    return await assignment.queue_size(rt, who, inbox_id)


@router.post("/inboxes/{inbox_id}/queue/take", tags=["assignment"], response_model=TakeOut)
async def take_next(inbox_id: int, who: Who, rt: RT) -> dict[str, Any]:
    """Assign the oldest waiting conversation to me. `conversation` is null when none waits;
    409 `at_capacity` when I already hold my capacity."""
    conv = await assignment.check_take_next(rt, who, inbox_id)
    return {"conversation": conversation_dict(conv) if conv is not None else None}


@router.get("/agents/{agent_id}/availability", tags=["assignment"], response_model=AgentOut)
async def get_availability(agent_id: str, who: Who, rt: RT) -> dict[str, Any]:
    async with rt.db.read() as s:
        agent = await require_own(s, who, Agent, _agent_id(who, agent_id), "agent")
    return agent_public(agent)


@router.put("/agents/{agent_id}/availability", tags=["assignment"], response_model=AgentOut)
async def put_availability(agent_id: str, body: AvailabilityIn, who: Who, rt: RT) -> dict[str, Any]:
    """Agents set their own (`me`); owners and admins anyone's. Going offline returns the
    agent's open conversations in auto/manual inboxes to the queue (and reassigns them)."""
    agent = await assignment.check_set_availability(
        rt, who, _agent_id(who, agent_id), body.availability
    )
    return agent_public(agent)


# --- SLA ---------------------------------------------------------------------------------------


@router.get("/inboxes/{inbox_id}/sla", tags=["sla"], response_model=SlaOut)
async def get_sla(inbox_id: int, who: Who, rt: RT) -> dict[str, Any]:
    return await sla.check_get_settings(rt, who, inbox_id)


@router.put("/inboxes/{inbox_id}/sla", tags=["sla"], response_model=SlaOut)
async def put_sla(inbox_id: int, body: SlaIn, who: Who, rt: RT) -> dict[str, Any]:
    fields: dict[str, Any] = {k: getattr(body, k) for k in body.model_fields_set}
    if body.by_priority is not None:
        fields["by_priority"] = {
            k: v.model_dump(exclude_none=True) for k, v in body.by_priority.items()
        }
    return await sla.check_set_settings(rt, who, inbox_id, fields)


def period(
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    inbox_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The breach and survey lists' query: [from, to) (each with a time zone), inbox, limit."""
    if any(v is not None and v.tzinfo is None for v in (from_, to)):
        raise InvalidInput("from/to: give a time zone (e.g. 2026-01-01T00:00:00Z)")
    return {"since": from_, "until": to, "inbox_id": inbox_id, "limit": limit}


Period = Annotated[dict[str, Any], Depends(period)]


@router.get("/sla/breaches", tags=["sla"], response_model=BreachPage)
async def list_breaches(who: Who, rt: RT, p: Period) -> dict[str, Any]:
    """Missed SLA targets by due time, newest first."""
    return {"data": await sla.breaches(rt, who, **p)}


# --- CSAT --------------------------------------------------------------------------------------


@router.get("/inboxes/{inbox_id}/csat", tags=["csat"], response_model=CsatSettingsOut)
async def get_csat_settings(inbox_id: int, who: Who, rt: RT) -> dict[str, Any]:
    return await csat.check_get_settings(rt, who, inbox_id)


@router.put("/inboxes/{inbox_id}/csat", tags=["csat"], response_model=CsatSettingsOut)
async def put_csat_settings(inbox_id: int, body: CsatIn, who: Who, rt: RT) -> dict[str, Any]:
    fields = {k: getattr(body, k) for k in body.model_fields_set}
    return await csat.check_set_settings(rt, who, inbox_id, fields)


@router.get("/csat", tags=["csat"], response_model=CsatPage)
async def list_csat(who: Who, rt: RT, p: Period) -> dict[str, Any]:
    """Answered surveys in [from, to) by answer time, newest first, with count, average,
    distribution and the share of 4-5 ratings."""
    return await csat.responses(rt, who, **p)


@router.get(
    "/conversations/{conversation_id}/csat", tags=["csat"], response_model=ConversationCsatOut
)
async def conversation_csat(conversation_id: int, who: Who, rt: RT) -> dict[str, Any]:
    """The conversation's survey: asked, skipped (with the reason) or answered; or null."""
    return await csat.of_conversation(rt, who, conversation_id)
