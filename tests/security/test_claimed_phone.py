"""Issue 15 #6: a phone number a sender only *claims* never opens someone else's thread.

A WhatsApp customer's number is WhatsApp's own (verified); an API-channel sender's `from.phone`
is whatever a website visitor typed. Before the fix, the claim was matched to the WhatsApp
customer's contact by E.164: the visitor's message landed in that customer's conversation, the
agent saw one person, and replies in it went to the claimant. Now the claimant is a contact of
their own (`claimed_phone`), and the two are only a merge suggestion. Real HTTP throughout:
signed webhooks to the running server, results read back through the API.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx
import orjson

from tests import factories
from tests.conftest import Owner, Server, eventually
from tests.core.test_whatsapp_e2e import APP_SECRET, PNID, whatsapp_channel
from tidings import signing

SECRET = "s3cret-for-the-api-channel"
NUMBER = "16505551234"


async def api_channel(api: httpx.AsyncClient) -> dict[str, Any]:
    return await factories.api_channel(api, secret=SECRET)


async def whatsapp_says(channel: dict[str, Any], text: str) -> None:
    """A real-shaped, signed Cloud API webhook from the customer who owns NUMBER."""
    body = orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": PNID,
                                },
                                "contacts": [{"profile": {"name": "Sheena"}, "wa_id": NUMBER}],
                                "messages": [
                                    {
                                        "from": NUMBER,
                                        "id": f"wamid.claim{time.time_ns()}",
                                        "timestamp": str(int(time.time())),
                                        "type": "text",
                                        "text": {"body": text},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    )
    sig = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            channel["webhook_url"],
            content=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={sig}"},
        )
    assert resp.status_code == 200, resp.text


async def visitor_says(channel: dict[str, Any], text: str) -> None:
    """A signed API-channel message whose sender *claims* the WhatsApp customer's number."""
    body = orjson.dumps(
        {
            "messages": [
                {
                    "id": f"web-{time.time_ns()}",
                    "from": {"id": "visitor-7", "name": "Mallory", "phone": f"+{NUMBER}"},
                    "text": text,
                    "timestamp": int(time.time()),
                }
            ]
        }
    )
    headers = {"Content-Type": "application/json", **signing.sign_headers(SECRET, body)}
    async with httpx.AsyncClient() as client:
        resp = await client.post(channel["webhook_url"], content=body, headers=headers)
    assert resp.status_code == 200, resp.text


async def conversations(api: httpx.AsyncClient, n: int) -> list[dict[str, Any]] | None:
    convs = list((await api.get("/api/v1/conversations")).json()["data"])
    return convs if len(convs) == n else None


async def thread(api: httpx.AsyncClient, conv_id: int) -> list[str]:
    data = (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]
    return [m["body"] for m in data]


async def check_apart(api: httpx.AsyncClient, wa: dict[str, Any], web: dict[str, Any]) -> None:
    convs = await eventually(lambda: conversations(api, 2))
    by_channel = {c["last_channel_id"]: c for c in convs}
    wa_conv, web_conv = by_channel[wa["id"]], by_channel[web["id"]]
    # Two people, two contacts: the claim did not join the WhatsApp customer's contact.
    assert wa_conv["contact_id"] != web_conv["contact_id"]
    assert await thread(api, wa_conv["id"]) == ["Hi, where is my order?"]
    assert await thread(api, web_conv["id"]) == ["I am Sheena, send me her order details"]

    claimant = (await api.get(f"/api/v1/contacts/{web_conv['contact_id']}")).json()
    assert claimant["phone"] is None  # not verified: never the contact's number
    assert claimant["claimed_phone"] == f"+{NUMBER}"
    assert [i["channel_kind"] for i in claimant["identities"]] == ["api"]
    customer = (await api.get(f"/api/v1/contacts/{wa_conv['contact_id']}")).json()
    assert customer["phone"] == f"+{NUMBER}"
    assert [i["channel_kind"] for i in customer["identities"]] == ["whatsapp"]

    # The claimant's panel shows none of the customer's conversations and no WhatsApp route,
    # so a reply there can only go to the claimant; the merge is offered, for an agent to judge.
    web_ctx = (await api.get(f"/api/v1/ui/conversations/{web_conv['id']}/context")).json()
    assert web_ctx["previous_conversations"] == []
    routes = {r["kind"]: r["code"] for r in web_ctx["routes"]}
    assert routes == {"whatsapp": "no_identity", "api": None}
    assert [(d["id"], d["reason"]) for d in web_ctx["merge_suggestions"]] == [
        (customer["id"], "claimed the same phone number")
    ]
    wa_ctx = (await api.get(f"/api/v1/ui/conversations/{wa_conv['id']}/context")).json()
    assert [(d["id"], d["reason"]) for d in wa_ctx["merge_suggestions"]] == [
        (claimant["id"], "claimed the same phone number")
    ]


async def test_claimed_phone_does_not_join_the_whatsapp_customer(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    wa = await whatsapp_channel(server, api)
    web = await api_channel(api)
    await whatsapp_says(wa, "Hi, where is my order?")
    await eventually(lambda: conversations(api, 1))
    await visitor_says(web, "I am Sheena, send me her order details")
    await check_apart(api, wa, web)


async def test_an_earlier_claim_is_not_joined_by_the_real_customer(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """The other order: a visitor claims the number first; the real customer then writes on
    WhatsApp and must not land in the claimant's contact either."""
    wa = await whatsapp_channel(server, api)
    web = await api_channel(api)
    await visitor_says(web, "I am Sheena, send me her order details")
    await eventually(lambda: conversations(api, 1))
    await whatsapp_says(wa, "Hi, where is my order?")
    await check_apart(api, wa, web)
