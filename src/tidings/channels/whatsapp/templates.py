"""Listing a WABA's message templates: `GET /{version}/{waba_id}/message_templates`, walking
Graph's cursor paging (`paging.cursors.after` while `paging.next` is present).

The next page is asked for on our own URL with the `after` cursor rather than by following
`paging.next`, so a tampered answer cannot point our token at another host.
"""

from __future__ import annotations

from typing import Any

import httpx

from tidings.channels.base import json_or_none
from tidings.channels.message_templates import ProviderTemplate, TemplateSyncError
from tidings.channels.meta_common import dict_at, graph_error
from tidings.channels.whatsapp.config import WhatsAppConfig
from tidings.channels.whatsapp.errors import graph_outcome

TIMEOUT = httpx.Timeout(20.0, connect=5.0)
PAGE_SIZE = 100
# A WABA holds at most 6,000 templates (docs/channels/whatsapp.md#templates-and-the-service-window):
# 60 pages of 100; more means a loop.
MAX_PAGES = 100
FIELDS = "id,name,language,status,category,components,parameter_format"


def _template(row: Any) -> ProviderTemplate | None:
    if not isinstance(row, dict):
        return None
    name, language = row.get("name"), row.get("language")
    if not isinstance(name, str) or not isinstance(language, str) or not name or not language:
        return None
    components = row.get("components")
    ident = row.get("id")
    return ProviderTemplate(
        name=name[:512],
        language=language[:16],
        category=str(row.get("category") or "UNKNOWN").upper()[:32],
        status=str(row.get("status") or "UNKNOWN").upper()[:32],
        components=[c for c in components if isinstance(c, dict)]
        if isinstance(components, list)
        else [],
        provider_template_id=str(ident)[:100] if isinstance(ident, str | int) else None,
    )


async def fetch_templates(
    config: WhatsAppConfig, http: httpx.AsyncClient
) -> list[ProviderTemplate]:
    if not config.waba_id:
        raise TemplateSyncError(
            "Set the channel's waba_id (WhatsApp Business Account id) to sync its templates.",
            config=True,
        )
    url = f"{config.api_base_url}/{config.api_version}/{config.waba_id}/message_templates"
    headers = {"Authorization": f"Bearer {config.access_token}"}
    out: list[ProviderTemplate] = []
    after: str | None = None
    for _ in range(MAX_PAGES):
        params = {"limit": str(PAGE_SIZE), "fields": FIELDS}
        if after is not None:
            params["after"] = after
        try:
            response = await http.get(url, params=params, headers=headers, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            raise TemplateSyncError(
                f"Could not reach WhatsApp to list templates ({exc!r})."
            ) from None
        if not response.is_success:
            raise TemplateSyncError(graph_outcome(graph_error(response)).reason)
        doc = json_or_none(response.content)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise TemplateSyncError("WhatsApp answered the template list without a data array.")
        out += [t for t in map(_template, doc["data"]) if t is not None]
        paging = dict_at(doc, "paging")
        after = dict_at(paging, "cursors").get("after")
        after = after if isinstance(after, str) else None
        if not paging.get("next") or not after or not doc["data"]:
            return out
    raise TemplateSyncError("WhatsApp kept paging past 10,000 templates; stopped.")
