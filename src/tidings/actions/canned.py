"""Canned replies (`/shortcut` in the composer) and labels: workspace vocabulary that admins
curate and every agent uses."""

from __future__ import annotations

import re

from sqlalchemy import select

from tidings.access import Principal, require_admin
from tidings.actions.base import Tx, transaction
from tidings.domain import live_events
from tidings.domain.errors import Conflict, InvalidInput, NotFound
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
            found = await s.get(CannedReply, reply_id)
            if found is None or found.workspace_id != who.workspace_id:
                raise NotFound("canned reply not found")
            row = found
            row.short_code, row.content = code, content
        await s.flush()
        _changed(tx, who, "canned_replies")
        return row


async def check_delete_canned_reply(rt: Runtime, who: Principal, reply_id: int) -> None:
    require_admin(who)
    async with transaction(rt) as tx:
        row = await tx.session.get(CannedReply, reply_id)
        if row is None or row.workspace_id != who.workspace_id:
            raise NotFound("canned reply not found")
        await tx.session.delete(row)
        _changed(tx, who, "canned_replies")


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
            found = await s.get(Label, label_id)
            if found is None or found.workspace_id != who.workspace_id:
                raise NotFound("label not found")
            label = found
            label.name, label.color = clean, color
        await s.flush()
        _changed(tx, who, "labels")
        return label


async def check_delete_label(rt: Runtime, who: Principal, label_id: int) -> None:
    require_admin(who)
    async with transaction(rt) as tx:
        label = await tx.session.get(Label, label_id)
        if label is None or label.workspace_id != who.workspace_id:
            raise NotFound("label not found")
        await tx.session.delete(label)
        _changed(tx, who, "labels")
