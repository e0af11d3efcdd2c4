"""Workspace-wide settings admins change: the default region for phone numbers.

National phone numbers ("0612345678", "07700 900123") only mean something in a region. Each
workspace may set its own (`workspace.default_region`, ISO 3166 alpha-2); without one, the
deployment's TIDINGS_DEFAULT_REGION applies; without either, a national number is kept as given
and flagged, never guessed at.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.access import Principal, require_admin
from tidings.actions.base import transaction
from tidings.domain import live_events, numbers
from tidings.domain.errors import InvalidInput
from tidings.domain.phones import to_e164
from tidings.runtime import Runtime
from tidings.storage.models import Workspace


async def workspace_region(s: AsyncSession, workspace_id: int) -> str | None:
    """The region national numbers are read in for this workspace (setting, else env)."""
    own = await s.scalar(select(Workspace.default_region).where(Workspace.id == workspace_id))
    return own or numbers.default_region()


async def phone_for(s: AsyncSession, workspace_id: int, raw: str) -> str | None:
    """E.164 form of a phone a channel or a person gave, or None.

    International forms ("+33…", or bare international digits as WhatsApp and Vonage send)
    are read as before; only what does not read that way is tried in the workspace's region,
    so a national "0612345678" meets "+33612345678" on one contact."""
    found = to_e164(raw)
    if found is not None or raw.strip().startswith("+"):
        return found
    region = await workspace_region(s, workspace_id)
    return numbers.normalize(raw, region) if region else None


def _region(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput(
            f"default_region: {value!r} is not a region code phone numbers know "
            "(ISO 3166 alpha-2, e.g. FR, GB, US)"
        )
    return region


def settings_dict(ws: Workspace) -> dict[str, Any]:
    return {
        "id": ws.id,
        "name": ws.name,
        "default_region": ws.default_region,
        # What applies when `default_region` is not set (the deployment's setting).
        "fallback_region": numbers.default_region(),
    }


async def get_settings(rt: Runtime, who: Principal) -> dict[str, Any]:
    require_admin(who)
    async with rt.db.read() as s:
        ws = await s.get_one(Workspace, who.workspace_id)
        return settings_dict(ws)


async def check_update_settings(
    rt: Runtime, who: Principal, fields: dict[str, Any]
) -> dict[str, Any]:
    """Owners and admins change the workspace's settings; `fields` holds only what was sent
    (`default_region`: a region code, or null to fall back to TIDINGS_DEFAULT_REGION)."""
    require_admin(who)
    region = _region(fields.get("default_region")) if "default_region" in fields else None
    async with transaction(rt) as tx:
        ws = await tx.session.get_one(Workspace, who.workspace_id)
        if "default_region" in fields:
            ws.default_region = region
        await tx.session.flush()
        data = settings_dict(ws)
        tx.emit(live_events.WORKSPACE_UPDATED(data), ws.id, None)
    return data
