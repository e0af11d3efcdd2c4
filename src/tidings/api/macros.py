"""Macros: `GET /api/v1/macros`, `POST /api/v1/macros` and
`DELETE /api/v1/macros/{id}` (owners and admins), and
`POST /api/v1/conversations/{id}/macros/{macro_id}/run` (any agent who can see the
conversation): each action runs through the automation engine's `perform_action`, in order;
one that is refused or fails is reported and the rest still run, and the thread says who ran
which macro."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from tidings.access import require_admin, require_conversation
from tidings.actions import macros as actions
from tidings.actions.triage import check_record_system_event
from tidings.api.deps import RT, Who
from tidings.api.queries import workspace_rows
from tidings.api.schemas import Strict
from tidings.automation.engine import perform_action
from tidings.automation.kinds import ACTIONS
from tidings.automation.rules import validate_macro_actions
from tidings.domain.errors import NotFound, PolicyRefusal, TidingsError
from tidings.storage.models import Agent, Conversation, Macro

router = APIRouter(prefix="/api/v1", tags=["macros"])


class MacroIn(Strict):
    name: str = Field(min_length=1, max_length=80)
    actions: list[dict[str, Any]] = Field(
        min_length=1, max_length=20, description="Automation actions, as in a rule"
    )


class MacroOut(BaseModel):
    id: int
    name: str
    actions: list[dict[str, Any]]
    steps: list[str] = Field(description="Each action in words")


class StepOut(BaseModel):
    action: str
    outcome: str = Field(description="ok | refused | failed")
    detail: str


class RunOut(BaseModel):
    macro_id: int
    conversation_id: int
    steps: list[StepOut]


def _out(m: Macro) -> MacroOut:
    steps = [ACTIONS[a["type"]].describe(a) for a in m.actions]
    return MacroOut(id=m.id, name=m.name, actions=m.actions, steps=steps)


@router.get("/macros", response_model=list[MacroOut])
async def list_macros(who: Who, rt: RT) -> list[MacroOut]:
    async with rt.db.read() as s:
        rows = await workspace_rows(s, Macro, who.workspace_id, Macro.name)
    return [_out(m) for m in rows]


@router.post("/macros", response_model=MacroOut, status_code=201)
async def create_macro(body: MacroIn, who: Who, rt: RT) -> MacroOut:
    require_admin(who)
    checked = validate_macro_actions(body.actions)
    return _out(await actions.check_create_macro(rt, who, body.name, checked))


@router.delete("/macros/{macro_id}", status_code=204)
async def delete_macro(macro_id: int, who: Who, rt: RT) -> None:
    await actions.check_delete_macro(rt, who, macro_id)


@router.post("/conversations/{conversation_id}/macros/{macro_id}/run", response_model=RunOut)
async def run_macro(conversation_id: int, macro_id: int, who: Who, rt: RT) -> RunOut:
    async with rt.db.read() as s:
        require_conversation(who, await s.get(Conversation, conversation_id))
        macro = await s.get(Macro, macro_id)
        if macro is None or macro.workspace_id != who.workspace_id:
            raise NotFound(f"no macro {macro_id}")
        me = await s.get_one(Agent, who.agent_id)
        name, steps_in = macro.name, list(macro.actions)
    await check_record_system_event(
        rt, who, conversation_id, f"{me.name} ran the macro {name}", {"event": "macro"}
    )
    steps: list[StepOut] = []
    for action in steps_in:
        what = ACTIONS[action["type"]].describe(action)
        try:
            note = await perform_action(rt, who, action, conversation_id)
            steps.append(StepOut(action=action["type"], outcome="ok", detail=note or what))
        except TidingsError as exc:  # refused by policy, or failed: reported, the rest run
            outcome = "refused" if isinstance(exc, PolicyRefusal) else "failed"
            steps.append(StepOut(action=action["type"], outcome=outcome, detail=exc.message))
    return RunOut(macro_id=macro_id, conversation_id=conversation_id, steps=steps)
