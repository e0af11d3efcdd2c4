"""RCS Business Messaging end to end over real HTTP: the RBM simulator pushes signed Pub/Sub
envelopes to a running Tidings, agent replies go out as agentMessages, DELIVERED/READ events
move them forward, and Google's errors (404 not RCS-capable, 429) become outcomes."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import rbm_channel, simulator
from tidings.channels.base import OutboundAttachment, OutboundMessage, Permanent, Sent
from tidings.channels.rbm import RbmAdapter, RbmConfig, client, google
from tidings.domain.enums import MessageKind
from tidings.storage.models import InboundEvent, Message

AGENT = "acme-support@rbm.goog"
CLIENT_TOKEN = "SJENCPGJESMGUFPY"
ACCESS = "ya29.test-access-token"
PHONE = "+14155550123"
CHANNEL = {"agent_id": AGENT, "webhook_client_token": CLIENT_TOKEN, "access_token": ACCESS}


def test_signature_matches_the_digest_vectors() -> None:
    # docs/channels/rbm.md#webhook-and-signature (computed locally, self-consistency only).
    decoded = base64.b64decode(
        "eyJzZW5kZXJQaG9uZU51bWJlciI6IisxMjIyMzMzNDQ0NCIsIm1lc3NhZ2VJZCI6Im0xIiwiYWdlbnRJZCI6"
        "ImFAcmJtLmdvb2ciLCJ0ZXh0IjoiaGkifQ=="
    )
    assert decoded == (
        b'{"senderPhoneNumber":"+12223334444","messageId":"m1","agentId":"a@rbm.goog","text":"hi"}'
    )
    assert google.signature(CLIENT_TOKEN, decoded) == (
        "IxXmKIAUJUeuNoVNbcg1pn1OZD2PgGR2ZKuI3RZOXIbmKNT1GIujxRw5vy5J1y9o2TqWHlviPqKP0lPOF8Czgg=="
    )
    gbm_body = (
        b'{"conversationId":"3333","requestId":"1","message":{"messageId":"4444","text":"hi"}}'
    )
    assert google.signature(CLIENT_TOKEN, gbm_body) == (
        "OEQvz1ExN4ruwV375ROJu1c0ZjMVgJxQOsU+yoKYnTnKlnMf4fAp0zyqgZGD1I/UiSHAKrASPWgAqNy1l2goCg=="
    )


def sim_client(server: Server) -> httpx.AsyncClient:
    return simulator(server, "rbm", timeout=10)


async def conversations(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    return list((await api.get("/api/v1/conversations")).json()["data"])


async def messages(api: httpx.AsyncClient, conv_id: int) -> list[dict[str, Any]]:
    return list((await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"])


async def counts(server: Server) -> tuple[int, int]:
    async with server.runtime.db.read() as s:
        events = await s.scalar(select(func.count()).select_from(InboundEvent))
        msgs = await s.scalar(select(func.count()).select_from(Message))
    return int(events or 0), int(msgs or 0)


async def status_of(api: httpx.AsyncClient, conv_id: int, message_id: int) -> dict[str, Any]:
    return next(m for m in await messages(api, conv_id) if m["id"] == message_id)


async def test_verification_inbound_duplicate_reply_and_receipts(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await rbm_channel(api, server, **CHANNEL)
    assert channel["config"]["webhook_client_token"] == "••••"
    async with sim_client(server) as sim:
        # The console's "verify webhook": Tidings answers with the secret.
        verified = await sim.post("/_sim/verify", json={"agent_id": AGENT})
        assert verified.json() == {"status": 200, "verified": True}

        resp = await sim.post(
            "/_sim/inbound",
            json={
                "agent_id": AGENT,
                "from": PHONE,
                "text": "Is my order <b>late</b>?",
                "duplicates": 1,
            },
        )
        assert resp.status_code == 200, resp.text
        user_mid = resp.json()["messageId"]

        async def delivered_twice() -> bool:
            got = (await sim.get("/_sim/deliveries", params={"agent_id": AGENT})).json()
            return [d["status"] for d in got if d["id"] == user_mid] == [200, 200]

        await eventually(delivered_twice)
        convs = await eventually(lambda: conversations(api))
        assert len(convs) == 1
        conv = convs[0]
        msgs = await eventually(lambda: messages(api, conv["id"]))
        assert [(m["direction"], m["body"], m["provider_message_id"]) for m in msgs] == [
            ("in", "Is my order <b>late</b>?", user_mid)
        ]
        assert await counts(server) == (1, 1)
        contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
        assert contact["phone"] == PHONE
        assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
            ("rbm", PHONE)
        ]

        reply = await api.post(
            f"/api/v1/conversations/{conv['id']}/messages", json={"text": "On its way!"}
        )
        assert reply.status_code == 201, reply.text
        reply_id = reply.json()["id"]

        async def read() -> dict[str, Any] | None:
            msg = await status_of(api, conv["id"], reply_id)
            return msg if msg["status"] == "read" else None

        out = await eventually(read)
        calls = (await sim.get("/_sim/sent", params={"agent_id": AGENT})).json()
    sends = [c for c in calls if c["method"] == "agentMessages"]
    assert len(sends) == 1
    assert sends[0]["msisdn"] == PHONE
    assert sends[0]["body"] == {"contentMessage": {"text": "On its way!"}}
    assert str(uuid.UUID(sends[0]["message_id"])) == sends[0]["message_id"]
    assert out["provider_message_id"] == sends[0]["message_id"]
    # The user message (once, despite the duplicate) and two receipts: three stored events.
    assert (await counts(server)) == (3, 2)


async def test_bad_signatures_and_tokens_are_rejected_and_nothing_stored(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await rbm_channel(api, server, **CHANNEL)
    url = f"{server.url}/webhooks/rbm/{channel['id']}"
    data = orjson.dumps(
        {"senderPhoneNumber": PHONE, "messageId": "m1", "agentId": AGENT, "text": "hi"}
    )
    encoded = base64.b64encode(data).decode()
    envelope = orjson.dumps({"message": {"data": encoded, "messageId": "1", "attributes": {}}})
    async with httpx.AsyncClient() as http:
        wrong_key = await http.post(
            url, content=envelope, headers={"X-Goog-Signature": google.signature("other", data)}
        )
        # Signing the base64 text instead of the decoded bytes is not what Google does.
        over_encoded = await http.post(
            url,
            content=envelope,
            headers={"X-Goog-Signature": google.signature(CLIENT_TOKEN, encoded.encode())},
        )
        missing = await http.post(url, content=envelope)
        not_envelope = await http.post(url, content=b"[1,2]", headers={"X-Goog-Signature": "x"})
        bad_handshake = await http.post(url, json={"clientToken": "guess", "secret": "s"})
        good = await http.post(
            url,
            content=envelope,
            headers={"X-Goog-Signature": google.signature(CLIENT_TOKEN, data)},
        )
    statuses = [
        r.status_code for r in (wrong_key, over_encoded, missing, not_envelope, bad_handshake)
    ]
    assert statuses == [401, 401, 401, 401, 401]
    assert bad_handshake.text != "s"
    assert good.status_code == 200
    async with server.runtime.db.read() as s:
        keys = (await s.scalars(select(InboundEvent.event_key))).all()
    assert keys == ["msg:m1"]  # only the correctly signed one


async def test_user_file_suggestion_location_and_typing(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await rbm_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        for extra in (
            {"suggestion": {"text": "Track order", "postback_data": "track"}},
            {"location": {"latitude": 37.42, "longitude": -122.08}},
            {"file": {"mime_type": "image/png", "file_name": "damage.png", "size": 2048}},
        ):
            r = await sim.post("/_sim/inbound", json={"agent_id": AGENT, "from": PHONE, **extra})
            assert r.status_code == 200, r.text
        typing = await sim.post("/_sim/typing", json={"agent_id": AGENT, "from": PHONE})
        event_id = typing.json()["eventId"]

        async def typing_stored() -> bool:
            async with server.runtime.db.read() as s:
                state = await s.scalar(
                    select(InboundEvent.state).where(InboundEvent.event_key == f"event:{event_id}")
                )
            return state == "done"

        await eventually(typing_stored)
        convs = await eventually(lambda: conversations(api))

        async def three() -> list[dict[str, Any]] | None:
            got = await messages(api, convs[0]["id"])
            return got if len(got) == 3 else None

        msgs = await eventually(three)
    assert [(m["kind"], m["body"]) for m in msgs] == [
        ("interactive", "Track order"),
        ("location", None),
        ("media", None),
    ]
    assert msgs[0]["extra"] == {"postback_data": "track", "type": "REPLY"}
    assert msgs[1]["extra"] == {"latitude": 37.42, "longitude": -122.08}
    assert [
        (a["kind"], a["mime_type"], a["filename"], a["size"]) for a in msgs[2]["attachments"]
    ] == [("image", "image/png", "damage.png", 2048)]
    # IS_TYPING was stored and processed but made no message.
    assert await counts(server) == (4, 3)


async def start(sim: httpx.AsyncClient, api: httpx.AsyncClient) -> dict[str, Any]:
    await sim.post("/_sim/inbound", json={"agent_id": AGENT, "from": PHONE, "text": "hello"})
    return (await eventually(lambda: conversations(api)))[0]


async def test_not_rcs_capable_fails_with_a_plain_reason(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await rbm_channel(api, server, **CHANNEL)
    config = RbmConfig(
        agent_id=AGENT,
        webhook_client_token=CLIENT_TOKEN,
        access_token=ACCESS,
        api_base_url=f"{server.url}/sandbox/rbm",
    )
    async with sim_client(server) as sim, httpx.AsyncClient() as http:
        conv = await start(sim, api)
        assert "ACTION_DIAL" in await client.capabilities(config, PHONE, http)  # type: ignore[operator]
        resp = await sim.put(f"/_sim/phones/{PHONE}", json={"rcs_enabled": False})
        assert resp.json()["rcs_enabled"] is False
        check = await client.capabilities(config, PHONE, http)
        assert isinstance(check, Permanent) and check.code == "NOT_FOUND"
        assert check.reason.startswith("This number cannot receive RCS messages")

        r = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "hi?"})

        async def failed() -> dict[str, Any] | None:
            msg = await status_of(api, conv["id"], r.json()["id"])
            return msg if msg["status"] == "failed" else None

        msg = await eventually(failed)
    assert msg["error_reason"] == client.NOT_RCS
    # The send's capability check refused it (a fallback plan acts on this code).
    assert msg["error_code"] == "not_rcs_capable"


async def test_rate_limit_is_retried_with_the_same_message_id(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await rbm_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        conv = await start(sim, api)
        await sim.post(
            "/_sim/fail",
            json={"agent_id": AGENT, "method": "agentMessages", "code": 429, "retry_after": 1},
        )
        r = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "later"})

        async def delivered() -> bool:
            msg = await status_of(api, conv["id"], r.json()["id"])
            return msg["status"] in ("delivered", "read")

        await eventually(delivered, timeout=15)
        calls = (await sim.get("/_sim/sent", params={"agent_id": AGENT})).json()
    sends = [(c["message_id"], c.get("error")) for c in calls if c["method"] == "agentMessages"]
    assert len(sends) == 2
    assert sends[0][1] == 429 and sends[1][1] is None
    assert sends[0][0] == sends[1][0]  # a retry reuses the agent-assigned messageId


async def test_suggestions_files_events_and_service_account_tokens(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    service_account = orjson.dumps(
        {
            "type": "service_account",
            "client_email": "tidings@acme-rbm.iam.gserviceaccount.com",
            "private_key_id": "k1",
            "private_key": pem,
            "token_uri": f"{server.url}/sandbox/rbm/token",
        }
    ).decode()
    await rbm_channel(
        api, server, **{**CHANNEL, "access_token": None, "service_account_json": service_account}
    )
    config = RbmConfig(
        agent_id=AGENT,
        webhook_client_token=CLIENT_TOKEN,
        service_account_json=service_account,
        api_base_url=f"{server.url}/sandbox/rbm",
    )
    adapter = RbmAdapter()
    async with sim_client(server) as sim, httpx.AsyncClient() as http:
        await start(sim, api)
        message = OutboundMessage(
            message_id=99,
            conversation_id=1,
            to=PHONE,
            kind=MessageKind.MEDIA,
            text="Here is your ticket",
            attachments=(OutboundAttachment(kind="image", url="https://cdn.example/t.png"),),
            extra={
                "buttons": [
                    {"text": "Yes", "data": "yes"},
                    {"text": "Website", "url": "https://acme.example"},
                    {"text": "Call us", "phone": "+14155550100"},
                ]
            },
        )
        outcome = await adapter.send(config, message, http)
        assert outcome == Sent(client.agent_message_id(config, 99, 0))
        # The same message again (a retry after a crash): Google ignores the reused ids.
        assert await adapter.send(config, message, http) == outcome

        read = await client.send_event(config, PHONE, "READ", http, message_id="MsUser1")
        typing = await client.send_event(config, PHONE, "IS_TYPING", http)
        assert isinstance(read, Sent) and isinstance(typing, Sent)

        bad = await adapter.send(
            config,
            OutboundMessage(
                message_id=100,
                conversation_id=1,
                to=PHONE,
                kind=MessageKind.TEXT,
                text="x",
                extra={"suggestions": [{"reply": {"text": "no postback"}}]},
            ),
            http,
        )
        assert isinstance(bad, Permanent) and bad.code == "INVALID_ARGUMENT"
        assert "postbackData" in bad.reason

        calls = (await sim.get("/_sim/sent", params={"agent_id": AGENT})).json()
        thread = (
            await sim.get("/_sim/conversations", params={"agent_id": AGENT, "user": PHONE})
        ).json()
    sends = [c for c in calls if c["method"] == "agentMessages"]
    assert [c["body"] for c in sends[:2]] == [
        {"contentMessage": {"text": "Here is your ticket"}},
        {
            "contentMessage": {
                "contentInfo": {"fileUrl": "https://cdn.example/t.png"},
                "suggestions": [
                    {"reply": {"text": "Yes", "postbackData": "yes"}},
                    {
                        "action": {
                            "text": "Website",
                            "postbackData": "Website",
                            "openUrlAction": {"url": "https://acme.example"},
                        }
                    },
                    {
                        "action": {
                            "text": "Call us",
                            "postbackData": "Call us",
                            "dialAction": {"phoneNumber": "+14155550100"},
                        }
                    },
                ],
            }
        },
    ]
    assert [c.get("duplicate") for c in sends[2:4]] == [True, True]
    assert [c["body"] for c in calls if c["method"] == "agentEvents"] == [
        {"eventType": "READ", "messageId": "MsUser1"},
        {"eventType": "IS_TYPING"},
    ]
    # The phone shows each agent message once despite the retried send.
    assert [m["text"] for m in thread if m["direction"] == "out"] == [
        "Here is your ticket",
        "[file https://cdn.example/t.png]",
    ]


async def test_a_phone_claimed_on_the_api_channel_is_only_a_merge_suggestion_for_rbm(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """A number typed on the website (API channel `from.phone`) is a claim: the RCS customer
    who really has it (the carrier vouches) gets a contact of their own and the two are
    offered for merge, instead of the RCS messages landing in the claimant's thread (issue 15
    #6; this test used to assert one contact)."""
    await rbm_channel(api, server, **CHANNEL)
    resp = await api.post(
        "/api/v1/channels",
        json={
            "kind": "api",
            "name": "Web",
            "config": {
                "secret": "s3cret-for-the-api-channel",
                "webhook_url": f"{server.url}/sandbox/api/accounts/web/receive",
            },
        },
    )
    assert resp.status_code == 201
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/api"
    ) as web:
        r = await web.post(
            "/_sim/inbound",
            json={"account": "web", "from": "visitor-9", "phone": PHONE, "text": "from the web"},
        )
        assert r.json()["status"] == 200
    await eventually(lambda: conversations(api))
    async with sim_client(server) as sim:
        await sim.post("/_sim/inbound", json={"agent_id": AGENT, "from": PHONE, "text": "from RCS"})

    async def two_conversations() -> list[dict[str, Any]] | None:
        convs = await conversations(api)
        return convs if len(convs) == 2 else None

    convs = await eventually(two_conversations)
    bodies = sorted([[m["body"] for m in await messages(api, c["id"])] for c in convs])
    assert bodies == [["from RCS"], ["from the web"]]
    contacts = (await api.get("/api/v1/contacts")).json()["data"]
    assert sorted(
        (
            [(i["channel_kind"], i["address"]) for i in c["identities"]],
            c["phone"],
            c["claimed_phone"],
        )
        for c in contacts
    ) == [([("api", "visitor-9")], None, PHONE), ([("rbm", PHONE)], PHONE, None)]
    ctx = (await api.get(f"/api/v1/ui/conversations/{convs[0]['id']}/context")).json()
    assert [d["reason"] for d in ctx["merge_suggestions"]] == ["claimed the same phone number"]


async def test_demo_channels_work_from_the_customer_phone(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """The sandbox's demo Telegram and RBM channels carry messages both ways from /sandbox/phone."""
    from tidings.simulators.sandbox import create_demo_channels

    made = await create_demo_channels(server.runtime, owner.workspace_id, owner.agent_id)
    ours = {c["kind"]: c["id"] for c in made if c["kind"] in ("telegram", "rbm")}
    assert set(ours) == {"telegram", "rbm"}
    users = {"telegram": "5550001", "rbm": "+442071838750"}
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=20
    ) as phone:
        listed = [c["id"] for c in (await phone.get("/phone/channels")).json()]
        assert set(ours.values()) <= set(listed)
        for kind, channel_id in ours.items():
            sent = await phone.post(
                "/phone/send",
                json={"channel_id": channel_id, "user": users[kind], "text": f"hi from {kind}"},
            )
            assert sent.status_code == 200, sent.text

        async def two_conversations() -> list[dict[str, Any]] | None:
            got = await conversations(api)
            return got if len(got) == 2 else None

        convs = await eventually(two_conversations)
        for conv in convs:
            reply = await api.post(
                f"/api/v1/conversations/{conv['id']}/messages", json={"text": "ok"}
            )
            assert reply.status_code == 201, reply.text

        async def both_threads() -> dict[str, list[tuple[str, str]]] | None:
            seen = {}
            for kind, channel_id in ours.items():
                thread = (
                    await phone.get(
                        "/phone/thread", params={"channel_id": channel_id, "user": users[kind]}
                    )
                ).json()
                seen[kind] = [(m["direction"], m["text"]) for m in thread]
            return seen if all(len(t) == 2 for t in seen.values()) else None

        seen = await eventually(both_threads)
    assert seen == {
        "telegram": [("in", "hi from telegram"), ("out", "ok")],
        "rbm": [("in", "hi from rbm"), ("out", "ok")],
    }
