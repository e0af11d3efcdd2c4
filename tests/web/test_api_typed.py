"""Every `/api/v1` JSON route declares what it returns (issue #17 item 9): the OpenAPI
document is what integrators read, and `response_model` also keeps undeclared keys out of the
answer. A route counts as typed when its response model (declared, or taken from the return
annotation) names its fields; `dict[str, Any]`, `list[dict[str, Any]]` and `Any` do not.
The browser's own `/api/v1/ui/*` routes are held to the same rule.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import httpx
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from tests.conftest import Owner, Server, eventually, make_settings
from tests.core.test_ingest import api_channel, msg, post_signed
from tidings.app import create_app
from tidings.channels.registry import get_adapter

# Routes whose answer is not a JSON document, so there is no model to declare.
NOT_JSON = {
    "GET /api/v1/docs",  # the OpenAPI explorer page (HTML)
    "GET /api/v1/events",  # the live stream (text/event-stream)
    "GET /api/v1/attachments/{attachment_id}",  # a stored file's bytes
    "GET /api/v1/contacts/{contact_id}/picture",  # an image (or a redirect to it)
    "GET /api/v1/contacts.csv",  # CSV export
    "GET /api/v1/reports/export/conversations.csv",  # CSV export
    "GET /api/v1/campaigns/{campaign_id}/recipients.csv",  # CSV export
}
# Routes answering 204 No Content have no body and are allowed by their status code.


def _untyped(annotation: Any) -> bool:
    """True when the annotation leaves some JSON object's fields unnamed."""
    if annotation is Any or annotation is dict or annotation is list:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return False
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict:
        return not args or _untyped(args[1])
    if origin in (list, tuple, set, typing.Union, types.UnionType, typing.Annotated):
        parts = args[:1] if origin is typing.Annotated else args
        return any(_untyped(a) for a in parts if a is not type(None) and a is not Ellipsis)
    return False


def _public_routes(tmp_path: Path) -> tuple[dict[str, Any], set[str]]:
    """The JSON routes with their response models, and every route's key."""
    app = create_app(
        make_settings("sqlite+aiosqlite:///" + str(tmp_path / "t.db"), tmp_path, 8000),
        run_workers=False,
    )
    routes: dict[str, Any] = {}
    every: set[str] = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path or ""
        if not isinstance(route, APIRoute) or not path.startswith("/api/v1/"):
            continue
        if route.status_code == 204:
            continue
        for method in sorted(route.methods):
            key = f"{method} {path}"
            every.add(key)
            if key not in NOT_JSON:
                routes[key] = context.response_model
    return routes, every


def test_every_json_route_declares_its_response(tmp_path: Path) -> None:
    routes, every = _public_routes(tmp_path)
    untyped = {key for key, model in routes.items() if model is None or _untyped(model)}
    assert sorted(untyped) == [], "declare a response model for these routes"
    assert sorted(NOT_JSON - every) == [], "allowed routes that no longer exist"
    assert len(routes) > 100
    assert sum(key.split()[1].startswith("/api/v1/ui/") for key in routes) >= 15


def test_the_check_tells_typed_from_untyped() -> None:
    class Out(BaseModel):
        id: int

    assert _untyped(Any) and _untyped(dict[str, Any]) and _untyped(list[dict[str, Any]])
    assert _untyped(Out | dict[str, Any])
    assert not _untyped(Out) and not _untyped(list[Out]) and not _untyped(list[str])
    assert not _untyped(dict[str, Out]) and not _untyped(Out | None)


async def test_typed_answers_keep_their_keys(api: httpx.AsyncClient, owner: Owner) -> None:
    """Declared models filter what they do not name: the keys integrators read stay."""
    kinds = (await api.get("/api/v1/admin/channel_kinds")).json()
    assert kinds and set(kinds[0]) == {"kind", "label", "schema", "secret_fields", "capabilities"}
    for k in kinds:
        assert k["schema"] == get_adapter(k["kind"]).config_model.model_json_schema()
    channel = (
        await api.post(
            "/api/v1/channels",
            json={"kind": "api", "name": "Site", "config": {"secret": "s" * 20}},
        )
    ).json()
    setup = (await api.get(f"/api/v1/admin/channels/{channel['id']}/setup")).json()
    assert {"verify_token", "label", "webhook_url"} <= set(setup)
    assert "provider" in setup["health"] and "notice_severe" in setup["health"]
    # An inbox without a fallback plan answers `{}`; a plan answers all four fields.
    plan_url = f"/api/v1/inboxes/{owner.inbox_id}/fallback"
    assert (await api.get(plan_url)).json() == {}
    plan = {"to_channel_id": channel["id"], "on_failed": True}
    assert (await api.put(plan_url, json=plan)).json() == {
        **plan,
        "after_seconds": None,
        "on_window_closed": False,
    }
    options = (await api.get("/api/v1/reports/options")).json()
    assert set(options) == {"inboxes", "channels", "teams", "agents", "labels"}
    assert {"id": channel["id"], "name": "Site"} in options["channels"]
    campaigns = (await api.get("/api/v1/reports/campaigns")).json()
    assert set(campaigns) == {"from", "to", "currency", "campaigns"}
    agents = (await api.get("/api/v1/reports/agents")).json()
    assert set(agents) == {"from", "to", "business_hours", "teams", "agents"}
    conversations = (await api.get("/api/v1/reports/conversations")).json()
    assert {"from", "waiting_now", "series"} <= set(conversations)
    assert set(conversations["series"][0]) == {"day", "new", "resolved", "backlog"}
    channels = (await api.get("/api/v1/reports/channels")).json()
    assert set(channels) == {
        "from",
        "to",
        "currency",
        "channels",
        "totals",
        "opt_outs",
        "customers",
        "series",
    }
    assert set(channels["series"][0]) == {"day"}  # and a key per channel with messages that day


async def test_inbox_rows_are_the_public_rows_plus_their_own_fields(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """`/api/v1/ui/conversations` runs the public list's query (api/queries.py): with the same
    filters and page size both walk the same rows in the same order, and each inbox row is the
    public row plus the fields only the inbox shows."""
    channel_id = await api_channel(api)
    await post_signed(
        server,
        channel_id,
        {"messages": [msg(f"q{i}", f"c{i}", f"hi {i}", 1_750_000_000 + i) for i in range(5)]},
    )

    async def five() -> list[Any]:
        data = (await api.get("/api/v1/conversations", params={"limit": 50})).json()["data"]
        return data if len(data) == 5 else []

    await eventually(five)
    first = (await five())[0]
    patched = {"labels": ["vip"], "assignee_id": owner.agent_id}
    await api.patch(f"/api/v1/conversations/{first['id']}", json=patched)

    async def walk(path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        paging: dict[str, Any] = {"limit": 2}
        while True:
            page = (await api.get(path, params={**params, **paging})).json()
            rows += page["data"]
            paging["cursor"] = page["next_cursor"]
            if not paging["cursor"]:
                return rows

    for public, inbox in [
        ({}, {"status": "any"}),
        ({"status": "open", "label": "vip"}, {"status": "open", "label": "vip"}),
        ({"assignee_id": "me"}, {"status": "any", "view": "mine"}),
        ({"channel_id": channel_id}, {"status": "any", "channel_id": channel_id}),
    ]:
        public_rows = await walk("/api/v1/conversations", public)
        inbox_rows = await walk("/api/v1/ui/conversations", inbox)
        assert [r["id"] for r in inbox_rows] == [r["id"] for r in public_rows], public
        assert public_rows
        for p, i in zip(public_rows, inbox_rows, strict=True):
            assert {k: i[k] for k in p} == p
            assert set(i) - set(p) == {
                "contact_name",
                "contact_display_name",
                "contact_picture_url",
                "channel_kind",
                "channel_name",
                "window",
            }
    one = (await api.get(f"/api/v1/conversations/{first['id']}")).json()
    row = (await api.get(f"/api/v1/ui/conversations/{first['id']}")).json()
    assert {k: row[k] for k in one} == one and row["channel_kind"] == "api"
