"""Canned replies (`/shortcut` in the composer) and labels: workspace vocabulary that admins
curate and every agent uses."""

from __future__ import annotations

import re

from sqlalchemy import select

from tidings.access import Principal, require_admin, require_own
from tidings.actions.base import Tx, transaction
from tidings.domain import live_events
from tidings.domain.errors import Conflict, InvalidInput
from tidings.runtime import Runtime
from tidings.storage.models import CannedReply, Label

SHORT_CODE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _changed(tx: Tx, who: Principal, what: str) -> None:
    tx.emit(live_events.SETTINGS_UPDATED({"what": what}), who.workspace_id, None)


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
    async with transaction(rt) as tx:
        s = tx.session
        clash = await s.scalar(
            select(CannedReply.id).where(
                CannedReply.workspace_id == who.workspace_id, CannedReply.short_code == code
            )
        )
        if clash is not None and clash != reply_id:
            raise Conflict(f"short_code: /{code} already exists")
        if reply_id is None:
            row = CannedReply(workspace_id=who.workspace_id, short_code=code, content=content)
            s.add(row)
        else:
            row = await require_own(s, who, CannedReply, reply_id, "canned reply")
            row.short_code, row.content = code, content
        await s.flush()
        _changed(tx, who, "canned_replies")
        return row


async def check_delete_canned_reply(rt: Runtime, who: Principal, reply_id: int) -> None:
    await _delete(rt, who, CannedReply, reply_id, "canned reply", "canned_replies")


async def check_save_label(
    rt: Runtime, who: Principal, name: str, color: str, label_id: int | None = None
) -> Label:
    require_admin(who)
    clean = name.strip()
    if not clean or len(clean) > 100:
        raise InvalidInput("name: 1 to 100 characters")
    if not COLOR.match(color):
        raise InvalidInput("color: a hex colour like #2563eb")
    async with transaction(rt) as tx:
        s = tx.session
        clash = await s.scalar(
            select(Label.id).where(Label.workspace_id == who.workspace_id, Label.name == clean)
        )
        if clash is not None and clash != label_id:
            raise Conflict(f"name: a label {clean!r} already exists")
        if label_id is None:
            label = Label(workspace_id=who.workspace_id, name=clean, color=color)
            s.add(label)
        else:
            label = await require_own(s, who, Label, label_id, "label")
            label.name, label.color = clean, color
        await s.flush()
        _changed(tx, who, "labels")
        return label


async def check_delete_label(rt: Runtime, who: Principal, label_id: int) -> None:
    await _delete(rt, who, Label, label_id, "label", "labels")


async def _delete(
    rt: Runtime, who: Principal, model: type[CannedReply | Label], row_id: int, what: str, key: str
) -> None:
    require_admin(who)
    async with transaction(rt) as tx:
        await tx.session.delete(await require_own(tx.session, who, model, row_id, what))
        _changed(tx, who, key)
