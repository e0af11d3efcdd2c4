"""WhatsApp templates end to end over real HTTP with the sandbox simulator: sync of
`GET /{waba_id}/message_templates` across Graph's pages, status kept current by the
`message_template_status_update` webhook, and sends through the REST API whose parameters are
checked before anything is queued and which reach the simulator in Graph's exact shape."""

from __future__ import annotations

from typing import Any

import httpx

from tests import factories
from tests.conftest import Owner, Server, eventually

PNID = "106540352242922"
WABA = "102290129340398"
TOKEN = "EAAG-template-token"
CUSTOMER = "16505551234"

ORDER = {
    "name": "order_confirmation",
    "language": "en_US",
    "category": "UTILITY",
    "components": [
        {"type": "HEADER", "format": "IMAGE"},
        {"type": "BODY", "text": "Hi {{first_name}}, order {{order_number}} is confirmed."},
        {"type": "FOOTER", "text": "Lucky Shrub"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Track"},
                {"type": "URL", "text": "Open", "url": "https://shop.example/o/{{1}}"},
            ],
        },
    ],
}
CODE = {
    "name": "delivery_code",
    "language": "en_US",
    "category": "UTILITY",
    "components": [{"type": "BODY", "text": "Hi {{1}}, your courier code is {{2}}."}],
}


async def setup(
    server: Server, api: httpx.AsyncClient, **config: Any
) -> tuple[dict[str, Any], httpx.AsyncClient]:
    resp = await api.post(
        "/api/v1/channels",
        json={
            "kind": "whatsapp",
            "name": "WhatsApp",
            "config": {
                "phone_number_id": PNID,
                "access_token": TOKEN,
                "app_secret": "wa-app-secret",
                "verify_token": "verify-me",
                "api_base_url": f"{server.url}/sandbox/whatsapp",
                "waba_id": WABA,
                **config,
            },
        },
    )
    assert resp.status_code == 201, resp.text
    return resp.json(), factories.simulator(server, "whatsapp")


async def add_template(sim: httpx.AsyncClient, spec: dict[str, Any], **over: Any) -> None:
    resp = await sim.post("/_sim/templates", json={"waba_id": WABA, **spec, **over})
    assert resp.status_code == 200, resp.text


async def conversation(api: httpx.AsyncClient, sim: httpx.AsyncClient) -> dict[str, Any]:
    sent = await sim.post(
        "/_sim/inbound",
        json={"phone_number_id": PNID, "from": CUSTOMER, "name": "Jessica", "text": "hi"},
    )
    assert sent.json()["status"] == 200, sent.text

    async def convs() -> list[Any]:
        return (await api.get("/api/v1/conversations")).json()["data"]

    [conv] = await eventually(convs)
    return conv  # type: ignore[no-any-return]


async def thread(api: httpx.AsyncClient, conv_id: int) -> list[dict[str, Any]]:
    return (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]  # type: ignore[no-any-return]


async def sends(sim: httpx.AsyncClient) -> list[dict[str, Any]]:
    return [
        r for r in (await sim.get("/_sim/sent")).json() if r.get("path", "").endswith("/messages")
    ]


async def test_sync_walks_every_page_and_status_webhooks_keep_it_current(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel, sim = await setup(server, api)
    # 130 templates: two pages of 100 in Graph's cursor paging.
    await add_template(sim, ORDER)
    await add_template(sim, ORDER, language="de", status="PENDING")
    for i in range(128):
        await add_template(
            sim,
            {
                "name": f"notice_{i:03d}",
                "language": "en_US",
                "category": "utility",
                "components": [{"type": "BODY", "text": "Notice {{1}}"}],
            },
        )

    resp = await api.post(f"/api/v1/channels/{channel['id']}/templates/sync")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "channel_id": channel["id"],
        "total": 130,
        "created": 130,
        "updated": 0,
        "unchanged": 0,
        "removed": 0,
    }
    gets = [r for r in (await sim.get("/_sim/sent")).json() if r.get("method") == "GET"]
    assert [(r["path"], r["query"].get("after") is not None) for r in gets] == [
        (f"/sandbox/whatsapp/v25.0/{WABA}/message_templates", False),
        (f"/sandbox/whatsapp/v25.0/{WABA}/message_templates", True),
    ]

    listed = (await api.get(f"/api/v1/channels/{channel['id']}/templates")).json()
    assert len(listed) == 130
    order = {(t["name"], t["language"]): t for t in listed}[("order_confirmation", "en_US")]
    assert (order["status"], order["category"], order["body"]) == (
        "APPROVED",
        "UTILITY",
        "Hi {{first_name}}, order {{order_number}} is confirmed.",
    )
    assert order["components"] == ORDER["components"]
    assert order["needs"] == {
        "parameter_format": "named",
        "header": "image",
        "header_parameters": [],
        "body_parameters": ["first_name", "order_number"],
        "buttons": [
            {"index": 0, "type": "quick_reply", "text": "Track", "needs": None},
            {"index": 1, "type": "url", "text": "Open", "needs": "text"},
        ],
    }

    # Nothing changed: a second sync says so.
    again = (await api.post(f"/api/v1/channels/{channel['id']}/templates/sync")).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 130)

    # Meta's review approves the German one: the webhook updates the row.
    moved = await sim.post(
        "/_sim/templates/status",
        json={
            "waba_id": WABA,
            "name": "order_confirmation",
            "language": "de",
            "status": "APPROVED",
        },
    )
    assert moved.json()["webhook_statuses"] == [200], moved.text

    async def german() -> str | None:
        rows = (await api.get(f"/api/v1/channels/{channel['id']}/templates")).json()
        status = {(t["name"], t["language"]): t["status"] for t in rows}[
            ("order_confirmation", "de")
        ]
        return status if status == "APPROVED" else None

    await eventually(german)


async def test_sync_refusals_are_clear(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel, sim = await setup(server, api)
    no_waba, _ = await setup(
        server, api, phone_number_id="106540352240000", waba_id=None, access_token="other"
    )
    await add_template(sim, CODE)

    missing = await api.post(f"/api/v1/channels/{no_waba['id']}/templates/sync")
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "channel_config"
    assert "waba_id" in missing.json()["error"]["message"]

    unknown = await api.post("/api/v1/channels/99999/templates/sync")
    assert unknown.status_code == 404

    # The channel's token no longer matches: Graph says 190, the admin reads what to do.
    await sim.put(
        f"/_sim/accounts/{PNID}",
        json={
            "access_token": "rotated",
            "app_secret": "wa-app-secret",
            "verify_token": "v",
            "webhook_url": channel["webhook_url"],
            "waba_id": WABA,
        },
    )
    refused = await api.post(f"/api/v1/channels/{channel['id']}/templates/sync")
    assert refused.status_code == 502
    assert refused.json()["error"] == {
        "code": "provider_error",
        "message": "The WhatsApp access token has expired or is invalid; reconnect the channel.",
    }
    assert (await api.get(f"/api/v1/channels/{channel['id']}/templates")).json() == []


async def test_template_sends_are_checked_then_reach_graph_in_its_shape(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel, sim = await setup(server, api)
    await add_template(sim, ORDER)
    await add_template(sim, CODE)
    await add_template(sim, CODE, language="de")
    await add_template(sim, CODE, name="pending_one", status="PENDING")
    assert (await api.post(f"/api/v1/channels/{channel['id']}/templates/sync")).status_code == 200
    conv = await conversation(api, sim)
    url = f"/api/v1/conversations/{conv['id']}/messages"
    image = {"type": "image", "link": "https://shop.example/banner.png"}

    bad = [
        (
            {"name": "delivery_code", "language": "en_US", "parameters": ["Jess"]},
            422,
            "template_parameters",
            "needs 2 parameter(s) ({{1}}, {{2}}), got 1",
        ),
        (
            {"name": "delivery_code", "language": "en_US", "parameters": {"a": "b"}},
            422,
            "template_parameters",
            "positional parameters",
        ),
        (
            {"name": "delivery_code", "parameters": ["a", "b"]},
            422,
            "template_language",
            "several languages",
        ),
        (
            {"name": "delivery_code", "language": "fr", "parameters": ["a", "b"]},
            422,
            "template_language",
            "has de, en_US",
        ),
        ({"name": "no_such", "language": "en_US"}, 404, "not_found", "no template named"),
        (
            {"name": "pending_one", "language": "en_US", "parameters": ["a", "b"]},
            422,
            "template_not_approved",
            "PENDING",
        ),
        (
            {
                "name": "order_confirmation",
                "language": "en_US",
                "header_media": image,
                "parameters": {"first_name": "Jess"},
                "buttons": [{"index": 1, "text": "42"}],
            },
            422,
            "template_parameters",
            "missing order_number",
        ),
        (
            {
                "name": "order_confirmation",
                "language": "en_US",
                "parameters": {"first_name": "Jess", "order_number": "42"},
                "buttons": [{"index": 1, "text": "42"}],
            },
            422,
            "template_parameters",
            "needs a image",
        ),
        (
            {
                "name": "order_confirmation",
                "language": "en_US",
                "header_media": image,
                "parameters": {"first_name": "Jess", "order_number": "42"},
            },
            422,
            "template_parameters",
            "needs its URL text",
        ),
        (
            {
                "name": "order_confirmation",
                "language": "en_US",
                "header_media": image,
                "parameters": {"first_name": "Jess", "order_number": "42"},
                "buttons": [{"index": 1, "text": "42"}, {"index": 5, "payload": "x"}],
            },
            422,
            "template_parameters",
            "no button 5",
        ),
    ]
    for template, status, code, words in bad:
        resp = await api.post(url, json={"template": template})
        assert resp.status_code == status, (template, resp.text)
        assert resp.json()["error"]["code"] == code, resp.text
        assert words in resp.json()["error"]["message"], resp.text
    both = await api.post(url, json={"text": "hi", "template": {"name": "delivery_code"}})
    assert both.status_code == 422
    assert len(await thread(api, conv["id"])) == 1  # nothing was queued
    assert await sends(sim) == []

    named = await api.post(
        url,
        json={
            "template": {
                "name": "order_confirmation",
                "language": "en_US",
                "header_media": image,
                "parameters": {"order_number": "SKBUP2-4CPIG9", "first_name": "Jessica"},
                "buttons": [{"index": 0, "payload": "TRACK_42"}, {"index": 1, "text": "42"}],
            }
        },
    )
    assert named.status_code == 201, named.text
    assert (named.json()["kind"], named.json()["body"]) == (
        "template",
        "Hi Jessica, order SKBUP2-4CPIG9 is confirmed.",
    )
    positional = await api.post(
        url,
        json={
            "template": {"name": "delivery_code", "language": "de", "parameters": ["Jess", "7781"]}
        },
    )
    assert positional.status_code == 201, positional.text

    async def both_sent() -> list[dict[str, Any]] | None:
        got = await sends(sim)
        return got if len(got) == 2 else None

    first, second = await eventually(both_sent)
    assert first["response"]["status"] == 200, first
    assert first["body"]["template"] == {
        "name": "order_confirmation",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "header",
                "parameters": [
                    {"type": "image", "image": {"link": "https://shop.example/banner.png"}}
                ],
            },
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Jessica", "parameter_name": "first_name"},
                    {"type": "text", "text": "SKBUP2-4CPIG9", "parameter_name": "order_number"},
                ],
            },
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": 0,
                "parameters": [{"type": "payload", "payload": "TRACK_42"}],
            },
            {
                "type": "button",
                "sub_type": "url",
                "index": 1,
                "parameters": [{"type": "text", "text": "42"}],
            },
        ],
    }
    assert (first["body"]["type"], first["body"]["to"]) == ("template", f"+{CUSTOMER}")
    assert second["response"]["status"] == 200, second
    assert second["body"]["template"] == {
        "name": "delivery_code",
        "language": {"code": "de"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Jess"}, {"type": "text", "text": "7781"}],
            }
        ],
    }

    async def read() -> bool:
        msgs = [m for m in await thread(api, conv["id"]) if m["direction"] == "out"]
        return [m["status"] for m in msgs] == ["read", "read"]

    await eventually(read)

    # Meta pauses the template: the webhook arrives, and the next send is refused here.
    await sim.post(
        "/_sim/templates/status",
        json={"waba_id": WABA, "name": "delivery_code", "language": "de", "status": "PAUSED"},
    )

    async def paused() -> bool:
        rows = (await api.get(f"/api/v1/channels/{channel['id']}/templates")).json()
        return {(t["name"], t["language"]): t["status"] for t in rows}[
            ("delivery_code", "de")
        ] == "PAUSED"

    await eventually(paused)
    refused = await api.post(
        url,
        json={"template": {"name": "delivery_code", "language": "de", "parameters": ["a", "b"]}},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "template_not_approved"
    assert "PAUSED" in refused.json()["error"]["message"]
    assert len(await sends(sim)) == 2
