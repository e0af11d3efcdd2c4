"""Saved views: an agent's named list filters (the inbox's "Views"). Each agent has their own;
a name is used once per agent (the database's unique key says so too)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tidings.access import Principal
from tidings.actions.base import transaction
from tidings.domain.errors import Conflict, InvalidInput, NotFound
from tidings.runtime import Runtime
from tidings.storage.models import SavedView
from tidings.storage.types import utcnow

MAX_VIEWS = 50


async def check_save_view(
    rt: Runtime, who: Principal, name: str, filters: dict[str, Any]
) -> SavedView:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("name: give the view a name")
    async with transaction(rt) as tx:
        s = tx.session
        mine = (
            await s.scalars(select(SavedView.name).where(SavedView.agent_id == who.agent_id))
        ).all()
        if name.lower() in {n.lower() for n in mine}:
            raise Conflict(f"name: you already have a view called {name!r}")
        if len(mine) >= MAX_VIEWS:
            raise Conflict(f"you may keep at most {MAX_VIEWS} views; delete one first")
        view = SavedView(
            workspace_id=who.workspace_id,
            agent_id=who.agent_id,
            name=name,
            filters=filters,
            created_at=utcnow(),
        )
        s.add(view)
        await s.flush()
        return view


async def check_delete_view(rt: Runtime, who: Principal, view_id: int) -> None:
    async with transaction(rt) as tx:
        view = await tx.session.get(SavedView, view_id)
        if view is None or view.agent_id != who.agent_id:
            raise NotFound(f"no view {view_id}")
        await tx.session.delete(view)
