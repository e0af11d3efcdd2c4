"""Canned replies (`/shortcut` in the composer) and labels: workspace vocabulary that admins
curate and every agent uses."""

from __future__ import annotations

import re
from typing import TypeVar

from sqlalchemy import select

from tidings.access import Principal, require_admin, require_own
from tidings.actions.base import settings_changed, transaction
from tidings.domain.errors import Conflict, InvalidInput
from tidings.runtime import Runtime
from tidings.storage.models import CannedReply, Label

SHORT_CODE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_Row = TypeVar("_Row", CannedReply, Label)


def _short_code(value: str) -> str:
    code = value.strip().lstrip("/").lower()
    if not SHORT_CODE.match(code):
        raise InvalidInput("short_code: letters, digits, '-' or '_' (up to 64)")
    return code


async def check_save_canned_reply(
    rt: Runtime, who: Principal, short_code: str, content: str, reply_id: int | None = None
) -> CannedReply:
    require_admin(who)
    code = _short_code(short_code)
    if not content.strip():
        raise InvalidInput("content: must not be empty")
    clash = f"short_code: /{code} already exists"
    fields = {"short_code": code, "content": content}
    return await _save(rt, who, CannedReply, reply_id, "canned reply", clash, fields)


async def check_delete_canned_reply(rt: Runtime, who: Principal, reply_id: int) -> None:
    await _delete(rt, who, CannedReply, reply_id, "canned reply")


async def check_save_label(
    rt: Runtime, who: Principal, name: str, color: str, label_id: int | None = None
) -> Label:
    require_admin(who)
    clean = name.strip()
    if not clean or len(clean) > 100:
        raise InvalidInput("name: 1 to 100 characters")
    if not COLOR.match(color):
        raise InvalidInput("color: a hex colour like #2563eb")
    clash = f"name: a label {clean!r} already exists"
    return await _save(rt, who, Label, label_id, "label", clash, {"name": clean, "color": color})


async def check_delete_label(rt: Runtime, who: Principal, label_id: int) -> None:
    await _delete(rt, who, Label, label_id, "label")


# The live event names what changed: "canned_replies" or "labels".
_KEY = {CannedReply: "canned_replies", Label: "labels"}


async def _save(
    rt: Runtime,
    who: Principal,
    model: type[_Row],
    row_id: int | None,
    what: str,
    clash: str,
    fields: dict[str, str],
) -> _Row:
    """Create (`row_id` None) or update a row whose first field is unique in the workspace."""
    unique, value = next(iter(fields.items()))
    async with transaction(rt) as tx:
        s = tx.session
        found = await s.scalar(
            select(model.id).where(
                model.workspace_id == who.workspace_id, getattr(model, unique) == value
            )
        )
        if found is not None and found != row_id:
            raise Conflict(clash)
        if row_id is None:
            row = model(workspace_id=who.workspace_id, **fields)
            s.add(row)
        else:
            row = await require_own(s, who, model, row_id, what)
            for attr, v in fields.items():
                setattr(row, attr, v)
        await s.flush()
        settings_changed(tx, who, _KEY[model])
        return row


async def _delete(
    rt: Runtime, who: Principal, model: type[CannedReply | Label], row_id: int, what: str
) -> None:
    require_admin(who)
    async with transaction(rt) as tx:
        await tx.session.delete(await require_own(tx.session, who, model, row_id, what))
        settings_changed(tx, who, _KEY[model])
