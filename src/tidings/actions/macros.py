"""Macros: a named list of automation actions (the kinds of `automation/kinds.py` a macro may
use) an agent runs on a conversation in one go. The actions are validated as a rule's
(`automation.rules.validate_macro_actions`, called by api/macros.py) and run through the
automation engine's `perform_action`, so a macro does nothing a rule could not. Owners and admins
keep the list; every agent may run them. A name is used once per workspace."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tidings.access import Principal, require_admin
from tidings.actions.base import transaction
from tidings.domain.errors import Conflict, InvalidInput, NotFound
from tidings.runtime import Runtime
from tidings.storage.models import Macro
from tidings.storage.types import utcnow


async def check_create_macro(
    rt: Runtime, who: Principal, name: str, actions: list[dict[str, Any]]
) -> Macro:
    """Precondition: `actions` is what `automation.rules.validate_macro_actions` returned."""
    require_admin(who)
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("name: give the macro a name")
    async with transaction(rt) as tx:
        s = tx.session
        taken = await s.scalar(
            select(Macro.id).where(Macro.workspace_id == who.workspace_id, Macro.name == name)
        )
        if taken is not None:
            raise Conflict(f"name: a macro called {name!r} exists")
        macro = Macro(
            workspace_id=who.workspace_id,
            name=name,
            actions=actions,
            created_by=who.agent_id,
            created_at=utcnow(),
        )
        s.add(macro)
        await s.flush()
        return macro


async def check_delete_macro(rt: Runtime, who: Principal, macro_id: int) -> None:
    require_admin(who)
    async with transaction(rt) as tx:
        macro = await tx.session.get(Macro, macro_id)
        if macro is None or macro.workspace_id != who.workspace_id:
            raise NotFound(f"no macro {macro_id}")
        await tx.session.delete(macro)
