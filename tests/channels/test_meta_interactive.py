"""Interactive messages, reactions and sender signals through the REST API, over real HTTP to
the sandbox simulators: each channel's limits refuse bad input before anything is queued
(nothing reaches the simulator), good input reaches it in the provider's exact shape, and
statuses come back."""

from __future__ import annotations

from typing import Any

import httpx

from tests import factories
from tests.conftest import Owner, Server, eventually

PNID = "106540352242922"
CUSTOMER = "16505551234"
PAGE_ID = "104857600000001"
PSID = "6543210987654321"


async def thread(api: httpx.AsyncClient, conv_id: int) -> list[dict[str, Any]]:
    return (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]  # type: ignore[no-any-return]


async def only_conversation(api: httpx.AsyncClient) -> dict[str, Any]:
    async def convs() -> list[Any]:
        return (await api.get("/api/v1/conversations")).json()["data"]

    [conv] = await eventually(convs)
    return conv  # type: ignore[no-any-return]


async def wait_requests(sim: httpx.AsyncClient, n: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        got: list[dict[str, Any]] = (await sim.get("/_sim/sent")).json()
        return got if len(got) >= n else None

    return await eventually(check)  # type: ignore[no-any-return]


def buttons(n: int, title: str = "Option") -> list[dict[str, str]]:
    return [{"id": f"opt-{i}", "title": f"{title} {i}"} for i in range(n)]


async def refused(
    api: httpx.AsyncClient, url: str, body: dict[str, Any], code: str, words: str
) -> None:
    resp = await api.post(url, json=body)
    assert resp.status_code == 422, (body, resp.text)
    assert resp.json()["error"]["code"] == code, resp.text
    assert words in resp.json()["error"]["message"], resp.text


async def test_whatsapp_buttons_lists_reactions_and_read_receipts(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await factories.whatsapp_channel(
        api,
        server,
        phone_number_id=PNID,
        access_token="EAAG-token",
        app_secret="wa-app-secret",
    )
    sim = factories.simulator(server, "whatsapp")
    inbound = await sim.post(
        "/_sim/inbound",
        json={"phone_number_id": PNID, "from": CUSTOMER, "text": "Can I move my workshop?"},
    )
    wamid = inbound.json()["id"]
    conv = await only_conversation(api)
    [customer_msg] = await eventually(lambda: thread(api, conv["id"]))
    url = f"/api/v1/conversations/{conv['id']}/messages"

    # The limits (docs/channels/whatsapp.md#interactive-limits), refused here with the limit in
    # words.
    await refused(
        api,
        url,
        {"interactive": {"type": "buttons", "body": "Pick", "buttons": buttons(4)}},
        "interactive_limits",
        "reply buttons number 1 to 3 (4 given)",
    )
    await refused(
        api,
        url,
        {
            "interactive": {
                "type": "buttons",
                "body": "Pick",
                "buttons": [{"id": "a", "title": "x" * 21}],
            }
        },
        "interactive_limits",
        "at most 20 characters",
    )
    await refused(
        api,
        url,
        {
            "interactive": {
                "type": "buttons",
                "body": "Pick",
                "buttons": [{"id": "a", "title": "Same"}, {"id": "b", "title": "Same"}],
            }
        },
        "interactive_limits",
        "different",
    )
    await refused(
        api,
        url,
        {
            "interactive": {
                "type": "list",
                "body": "Pick",
                "button": "Options",
                "sections": [
                    {"title": "A", "rows": buttons(6)},
                    {"title": "B", "rows": buttons(5, "More")},
                ],
            }
        },
        "interactive_limits",
        "at most 10 rows in total (11 given)",
    )
    await refused(
        api,
        url,
        {"interactive": {"type": "list", "body": "Pick", "sections": [{"rows": buttons(2)}]}},
        "interactive_limits",
        "needs `button`",
    )
    await refused(
        api,
        url,
        {"interactive": {"type": "quick_replies", "body": "Pick", "buttons": buttons(2)}},
        "interactive_limits",
        "no quick replies",
    )
    await refused(
        api,
        url,
        {"interactive": {"type": "buttons", "body": "x" * 1025, "buttons": buttons(1)}},
        "interactive_limits",
        "at most 1024",
    )
    typing_off = await api.post(
        f"/api/v1/conversations/{conv['id']}/signals", json={"action": "typing_off"}
    )
    assert typing_off.status_code == 422
    assert typing_off.json()["error"]["code"] == "not_supported"
    assert len(await thread(api, conv["id"])) == 1
    assert (await sim.get("/_sim/sent")).json() == []

    ok = await api.post(
        url,
        json={
            "interactive": {
                "type": "buttons",
                "header": "Workshop",
                "body": "Reschedule?",
                "footer": "Lucky Shrub",
                "buttons": [
                    {"id": "change-button", "title": "Change"},
                    {"id": "cancel-button", "title": "Cancel"},
                ],
            }
        },
    )
    assert ok.status_code == 201, ok.text
    assert (ok.json()["kind"], ok.json()["body"]) == ("interactive", "Reschedule?")
    listed = await api.post(
        url,
        json={
            "interactive": {
                "type": "list",
                "body": "Which shipping option?",
                "button": "Shipping Options",
                "sections": [
                    {
                        "title": "I want it ASAP!",
                        "rows": [
                            {
                                "id": "priority_express",
                                "title": "Priority Mail Express",
                                "description": "Next Day",
                            }
                        ],
                    }
                ],
            }
        },
    )
    assert listed.status_code == 201, listed.text
    reaction = await api.post(
        url, json={"reaction": {"message_id": customer_msg["id"], "emoji": "\U0001f44d"}}
    )
    assert reaction.status_code == 201, reaction.text
    first, second, third = await wait_requests(sim, 3)
    assert first["body"]["interactive"] == {
        "type": "button",
        "header": {"type": "text", "text": "Workshop"},
        "body": {"text": "Reschedule?"},
        "footer": {"text": "Lucky Shrub"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "change-button", "title": "Change"}},
                {"type": "reply", "reply": {"id": "cancel-button", "title": "Cancel"}},
            ]
        },
    }
    assert second["body"]["interactive"] == {
        "type": "list",
        "body": {"text": "Which shipping option?"},
        "action": {
            "button": "Shipping Options",
            "sections": [
                {
                    "title": "I want it ASAP!",
                    "rows": [
                        {
                            "id": "priority_express",
                            "title": "Priority Mail Express",
                            "description": "Next Day",
                        }
                    ],
                }
            ],
        },
    }
    assert (third["body"]["type"], third["body"]["reaction"]) == (
        "reaction",
        {"message_id": wamid, "emoji": "\U0001f44d"},
    )
    assert [r["response"]["status"] for r in (first, second, third)] == [200, 200, 200]

    async def statuses() -> list[str] | None:
        out = [m["status"] for m in await thread(api, conv["id"]) if m["direction"] == "out"]
        # Reactions only ever get `sent` (docs/channels/whatsapp.md#status-webhooks).
        return out if out == ["read", "read", "sent"] else None

    await eventually(statuses)

    # Mark as read, then typing: `status: read` on the customer's message
    # (docs/channels/whatsapp.md#sending).
    for action in ("mark_read", "typing_on"):
        sig = await api.post(f"/api/v1/conversations/{conv['id']}/signals", json={"action": action})
        assert sig.status_code == 200, sig.text
        assert sig.json()["ok"] is True
    *_, read, typing = await wait_requests(sim, 5)
    assert read["body"] == {"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
    assert typing["body"] == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": wamid,
        "typing_indicator": {"type": "text"},
    }
    assert read["response"] == {"status": 200, "body": {"success": True}}
    sim_thread = (
        await sim.get("/_sim/conversations", params={"phone_number_id": PNID, "user": CUSTOMER})
    ).json()
    assert [m["status"] for m in sim_thread if m["direction"] == "in"] == ["read"]
    # Signals are not messages.
    assert len(await thread(api, conv["id"])) == 4


async def test_messenger_quick_replies_buttons_reactions_and_sender_actions(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await factories.messenger_channel(
        api,
        server,
        name="Page",
        page_id=PAGE_ID,
        page_access_token="EAAB-page",
        app_secret="messenger-secret",
    )
    sim = factories.simulator(server, "messenger")
    assert (
        await sim.post("/_sim/config", json={"auto_receipts": ["delivered"]})
    ).status_code == 200
    first_in = await sim.post(
        "/_sim/inbound", json={"account_id": PAGE_ID, "from": PSID, "text": "Colours?"}
    )
    mid = first_in.json()["id"]
    conv = await only_conversation(api)
    [customer_msg] = await eventually(lambda: thread(api, conv["id"]))
    url = f"/api/v1/conversations/{conv['id']}/messages"

    await refused(
        api,
        url,
        {"interactive": {"type": "quick_replies", "body": "Pick", "buttons": buttons(14)}},
        "validation_error",
        "at most 13 items",
    )
    await refused(
        api,
        url,
        {
            "interactive": {
                "type": "list",
                "body": "Pick",
                "button": "x",
                "sections": [{"rows": buttons(2)}],
            }
        },
        "interactive_limits",
        "no list messages",
    )
    await refused(
        api,
        url,
        {"interactive": {"type": "buttons", "body": "Pick", "buttons": buttons(4)}},
        "interactive_limits",
        "1 to 3 buttons",
    )
    await refused(
        api,
        url,
        {"interactive": {"type": "buttons", "header": "H", "body": "Pick", "buttons": buttons(1)}},
        "interactive_limits",
        "no header",
    )
    assert (await sim.get("/_sim/sent")).json() == []

    quick = await api.post(
        url,
        json={
            "interactive": {
                "type": "quick_replies",
                "body": "Pick one",
                "buttons": [
                    {"id": "PICK_RED", "title": "Red"},
                    {"id": "PICK_BLUE", "title": "Blue"},
                ],
            }
        },
    )
    assert quick.status_code == 201, quick.text
    template = await api.post(
        url,
        json={
            "interactive": {
                "type": "buttons",
                "body": "What next?",
                "buttons": [
                    {"id": "AGENT", "title": "Talk to agent"},
                    {"id": "site", "title": "Open site", "url": "https://shop.example"},
                ],
            }
        },
    )
    assert template.status_code == 201, template.text
    react = await api.post(
        url, json={"reaction": {"message_id": customer_msg["id"], "emoji": "\u2764\ufe0f"}}
    )
    assert react.status_code == 201, react.text
    # The queued three are out before the (immediate) signals, so the order below is fixed.
    await wait_requests(sim, 3)
    for action in ("mark_read", "typing_on", "typing_off"):
        sig = await api.post(f"/api/v1/conversations/{conv['id']}/signals", json={"action": action})
        assert sig.status_code == 200, sig.text

    requests = await wait_requests(sim, 6)
    q_id, t_id = quick.json()["id"], template.json()["id"]
    assert [r["body"] for r in requests] == [
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {
                "text": "Pick one",
                "quick_replies": [
                    {"content_type": "text", "title": "Red", "payload": "PICK_RED"},
                    {"content_type": "text", "title": "Blue", "payload": "PICK_BLUE"},
                ],
                "metadata": f"tidings:{q_id}",
            },
        },
        {
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "button",
                        "text": "What next?",
                        "buttons": [
                            {"type": "postback", "title": "Talk to agent", "payload": "AGENT"},
                            {
                                "type": "web_url",
                                "title": "Open site",
                                "url": "https://shop.example",
                            },
                        ],
                    },
                },
                "metadata": f"tidings:{t_id}",
            },
        },
        {
            "recipient": {"id": PSID},
            "sender_action": "react",
            "payload": {"message_id": mid, "reaction": "\u2764\ufe0f"},
        },
        {"recipient": {"id": PSID}, "sender_action": "mark_seen"},
        {"recipient": {"id": PSID}, "sender_action": "typing_on"},
        {"recipient": {"id": PSID}, "sender_action": "typing_off"},
    ]
    assert [r["response"]["status"] for r in requests] == [200] * 6

    async def delivered() -> list[str] | None:
        out = [
            (m["kind"], m["status"])
            for m in await thread(api, conv["id"])
            if m["direction"] == "out"
        ]
        want = [("text", "delivered"), ("interactive", "delivered")]
        return out if out[:2] == want and len(out) == 3 else None

    await eventually(delivered)


async def test_instagram_quick_replies_named_reactions_and_seen(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    ig_id, igsid = "17841400000000042", "5566778899001122"
    await factories.instagram_channel(
        api,
        server,
        instagram_account_id=ig_id,
        access_token="IGQV-user-token",
        app_secret="meta-app-secret",
        verify_token="verify-ig",
    )
    sim = factories.simulator(server, "instagram")
    first_in = await sim.post(
        "/_sim/inbound", json={"account_id": ig_id, "from": igsid, "text": "In stock?"}
    )
    mid = first_in.json()["id"]
    conv = await only_conversation(api)
    [customer_msg] = await eventually(lambda: thread(api, conv["id"]))
    url = f"/api/v1/conversations/{conv['id']}/messages"

    # Instagram reacts by name; an emoji without one is refused before queueing.
    await refused(
        api,
        url,
        {"reaction": {"message_id": customer_msg["id"], "emoji": "\U0001f600"}},
        "reaction_not_supported",
        "Instagram cannot react with",
    )
    await refused(
        api,
        url,
        {
            "interactive": {
                "type": "list",
                "body": "Pick",
                "button": "x",
                "sections": [{"rows": buttons(2)}],
            }
        },
        "interactive_limits",
        "Instagram has no list messages",
    )
    assert (await sim.get("/_sim/sent")).json() == []

    quick = await api.post(
        url,
        json={
            "interactive": {
                "type": "quick_replies",
                "body": "Size?",
                "buttons": [{"id": "S", "title": "Small"}],
            }
        },
    )
    assert quick.status_code == 201, quick.text
    react = await api.post(
        url, json={"reaction": {"message_id": customer_msg["id"], "emoji": "\u2764\ufe0f"}}
    )
    assert react.status_code == 201, react.text
    await wait_requests(sim, 2)
    seen = await api.post(
        f"/api/v1/conversations/{conv['id']}/signals", json={"action": "mark_read"}
    )
    assert seen.status_code == 200, seen.text
    requests = await wait_requests(sim, 3)
    assert [r["body"] for r in requests] == [
        {
            "recipient": {"id": igsid},
            "messaging_type": "RESPONSE",
            "message": {
                "text": "Size?",
                "quick_replies": [{"content_type": "text", "title": "Small", "payload": "S"}],
                "metadata": f"tidings:{quick.json()['id']}",
            },
        },
        {
            "recipient": {"id": igsid},
            "sender_action": "react",
            "payload": {"message_id": mid, "reaction": "love"},
        },
        {"recipient": {"id": igsid}, "sender_action": "mark_seen"},
    ]
    assert [r["response"]["status"] for r in requests] == [200, 200, 200]

    async def sent() -> bool:
        out = [m["status"] for m in await thread(api, conv["id"]) if m["direction"] == "out"]
        return len(out) == 2 and "queued" not in out and "failed" not in out

    await eventually(sent)
