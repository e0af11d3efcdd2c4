"""REST API contracts: auth, error shape, validation naming the field, keyset paging,
filters, PATCH, contact search, OpenAPI."""

from __future__ import annotations

import httpx

from tests.conftest import Owner, Server, eventually
from tests.core.test_ingest import api_channel, msg, post_signed


async def test_auth_and_error_shape(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(base_url=server.url) as anon:
        none = await anon.get("/api/v1/conversations")
        wrong = await anon.get(
            "/api/v1/conversations", headers={"Authorization": "Bearer tid_wrong"}
        )
        spec = await anon.get("/api/v1/openapi.json")
    assert none.status_code == wrong.status_code == 401
    assert set(none.json()["error"]) == {"code", "message"}
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in (
        "/api/v1/channels",
        "/api/v1/conversations",
        "/api/v1/conversations/{conversation_id}",
        "/api/v1/conversations/{conversation_id}/messages",
        "/api/v1/contacts",
        "/api/v1/contacts/{contact_id}",
    ):
        assert path in paths, path
    assert "/webhooks/{kind}/{channel_id}" not in paths

    unknown_kind = await api.post(
        "/api/v1/channels", json={"kind": "pigeon", "name": "x", "config": {}}
    )
    assert unknown_kind.status_code == 422
    assert unknown_kind.json()["error"]["message"].startswith("kind:")
    bad_config = await api.post(
        "/api/v1/channels",
        json={"kind": "whatsapp", "name": "x", "config": {"phone_number_id": "1"}},
    )
    assert bad_config.status_code == 422
    assert bad_config.json()["error"]["message"].startswith("config.access_token")
    extra = await api.post(
        "/api/v1/channels",
        json={"kind": "api", "name": "x", "config": {"secret": "x" * 16}, "colour": "red"},
    )
    assert extra.status_code == 422
    assert "colour" in extra.json()["error"]["message"]
    not_json = await api.post(
        "/api/v1/channels", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    missing = await api.get("/api/v1/conversations/424242")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    bad_cursor = await api.get("/api/v1/conversations", params={"cursor": "garbage"})
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["error"]["message"].startswith("cursor:")


async def test_paging_filters_patch_and_search(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel_id = await api_channel(api)
    payload = {
        "messages": [
            msg(f"p{i}", f"cust{i}", f"hello from {i}", 1_750_000_000 + i) for i in range(7)
        ]
    }
    await post_signed(server, channel_id, payload)

    async def seven() -> list:
        data = (await api.get("/api/v1/conversations", params={"limit": 100})).json()["data"]
        return data if len(data) == 7 else []

    everything = await eventually(seven)
    # Newest activity first.
    assert [c["last_message_preview"] for c in everything] == [
        f"hello from {i}" for i in reversed(range(7))
    ]

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/api/v1/conversations", params=params)).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [c["id"] for c in everything]  # keyset pages: no gaps, no repeats

    target = everything[0]["id"]
    patched = await api.patch(
        f"/api/v1/conversations/{target}",
        json={"status": "resolved", "assignee_id": owner.agent_id, "labels": ["vip", "billing"]},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["labels"] == ["billing", "vip"]
    bad_status = await api.patch(f"/api/v1/conversations/{target}", json={"status": "sleeping"})
    assert bad_status.status_code == 422
    assert bad_status.json()["error"]["message"].startswith("status:")

    resolved = (await api.get("/api/v1/conversations", params={"status": "resolved"})).json()[
        "data"
    ]
    assert [c["id"] for c in resolved] == [target]
    mine = (await api.get("/api/v1/conversations", params={"assignee_id": "me"})).json()["data"]
    assert [c["id"] for c in mine] == [target]
    unassigned = (await api.get("/api/v1/conversations", params={"assignee_id": "none"})).json()[
        "data"
    ]
    assert len(unassigned) == 6
    vip = (await api.get("/api/v1/conversations", params={"label": "vip"})).json()["data"]
    assert [c["id"] for c in vip] == [target]
    by_channel = (await api.get("/api/v1/conversations", params={"channel_id": channel_id})).json()[
        "data"
    ]
    assert len(by_channel) == 7
    unassign = await api.patch(f"/api/v1/conversations/{target}", json={"assignee_id": None})
    assert unassign.json()["assignee_id"] is None

    found = (await api.get("/api/v1/contacts", params={"q": "cust3"})).json()["data"]
    assert [c["identities"][0]["address"] for c in found] == ["cust3"]
    by_name = (await api.get("/api/v1/contacts", params={"q": "Cust5"})).json()["data"]
    assert [c["name"] for c in by_name] == ["Cust5"]
    assert (await api.get("/api/v1/contacts", params={"q": "nobody-like-this"})).json()[
        "data"
    ] == []


async def test_an_unknown_status_filter_is_a_422(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """Status columns read as their enums: an unknown status in a list filter must be the
    caller's error (422 naming the field), not a failed query (500)."""
    for path in ("/api/v1/conversations", "/api/v1/ui/conversations"):
        resp = await api.get(path, params={"status": "bogus"})
        assert resp.status_code == 422, (path, resp.status_code, resp.text)
        assert "status" in resp.text
    ok = await api.get("/api/v1/ui/conversations", params={"status": "any"})
    assert ok.status_code == 200
