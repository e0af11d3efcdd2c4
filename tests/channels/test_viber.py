"""Viber end to end over real HTTP: the sandbox's Viber simulator signs callbacks to a running
Tidings, set_webhook is called (and probed) when the channel is created, agent replies go out
through send_message and come back delivered/seen, and Viber's refusals become outcomes an
agent can read (docs/channels/viber.md)."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import simulator, viber_channel
from tidings.simulators.viber import user_id_for
from tidings.storage.models import AuditLog, InboundEvent, Message

TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
CHANNEL = {"auth_token": TOKEN}


def sim_client(server: Server) -> httpx.AsyncClient:
    return simulator(server, "viber", timeout=10)


async def conversations(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    return list((await api.get("/api/v1/conversations")).json()["data"])


async def messages(api: httpx.AsyncClient, conv_id: int) -> list[dict[str, Any]]:
    return list((await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"])


async def counts(server: Server) -> tuple[int, int]:
    async with server.runtime.db.read() as s:
        events = await s.scalar(select(func.count()).select_from(InboundEvent))
        msgs = await s.scalar(select(func.count()).select_from(Message))
    return int(events or 0), int(msgs or 0)


async def sim_post(sim: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await sim.post(path, json={"token": TOKEN, **body})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def sent_calls(sim: httpx.AsyncClient, method: str) -> list[dict[str, Any]]:
    calls = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
    return [c for c in calls if c["method"] == method]


async def test_creating_the_channel_sets_and_probes_the_webhook(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await viber_channel(api, server, **CHANNEL)
    assert channel["config"]["auth_token"] == "••••"
    url = f"{server.url}/webhooks/viber/{channel['id']}"
    async with sim_client(server) as sim:
        [call] = await sent_calls(sim, "set_webhook")
        assert call["body"]["url"] == url
        assert "delivered" in call["body"]["event_types"]
        assert call["answer"]["status"] == 0
        # Viber answered only after the signed `webhook` probe got its 200.
        deliveries = (await sim.get("/_sim/deliveries", params={"token": TOKEN})).json()
        probes = [d for d in deliveries if '"event":"webhook"' in d["body"]]
        assert [d["status"] for d in probes] == [200]
    # The probe is acknowledged without storing anything.
    assert await counts(server) == (0, 0)
    async with server.runtime.db.read() as s:
        actions = (await s.scalars(select(AuditLog.action).order_by(AuditLog.id))).all()
    assert "channel.webhook_set" in actions
    assert "channel.webhook_failed" not in actions


async def test_a_refused_set_webhook_keeps_the_channel_and_says_why(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    async with sim_client(server) as sim:
        # The probe will not be answered 200 (the bot exists, but its probe target fails).
        await sim.put(f"/_sim/bots/{TOKEN}", json={"probe_fail_status": 1})
        await sim_post(sim, "/_sim/fail", {"method": "set_webhook", "status": 1})
    channel = await viber_channel(api, server, **CHANNEL)
    async with server.runtime.db.read() as s:
        rows = (
            await s.scalars(select(AuditLog).where(AuditLog.action == "channel.webhook_failed"))
        ).all()
    assert [r.target_id for r in rows] == [channel["id"]]
    assert "invalidUrl" in str(rows[0].details["reason"])


async def test_bad_or_missing_signature_is_401_and_stores_nothing(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await viber_channel(api, server, **CHANNEL)
    body = (
        b'{"event":"message","timestamp":1595324677891,"message_token":5466297578174182639,'
        b'"sender":{"id":"3SQNc4FPUQmysaM/AQEhXg==","name":"X"},'
        b'"message":{"type":"text","text":"forged"}}'
    )
    good = hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    url = f"/webhooks/viber/{channel['id']}"
    async with httpx.AsyncClient(base_url=server.url) as http:
        for headers in (
            {},
            {"X-Viber-Content-Signature": "0" * 64},
            {"X-Viber-Content-Signature": good[:-1] + ("0" if good[-1] != "0" else "1")},
            # Signed over other bytes: the same JSON re-serialised with spaces.
            {
                "X-Viber-Content-Signature": hmac.new(
                    TOKEN.encode(), body + b" ", "sha256"
                ).hexdigest()
            },
        ):
            resp = await http.post(url, content=body, headers=headers)
            assert resp.status_code == 401, (headers, resp.text)
        assert await counts(server) == (0, 0)
        # Malformed but correctly signed: a 4xx, never a 5xx, and nothing stored.
        junk = b"{not json"
        sig = hmac.new(TOKEN.encode(), junk, hashlib.sha256).hexdigest()
        resp = await http.post(url, content=junk, headers={"X-Viber-Content-Signature": sig})
        assert resp.status_code == 400, resp.text
        # The same body correctly signed is accepted.
        resp = await http.post(url, content=body, headers={"X-Viber-Content-Signature": good})
        assert resp.status_code == 200, resp.text
    assert (await counts(server))[0] == 1


async def test_text_in_twice_reply_out_delivered_and_seen(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await viber_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        got = await sim_post(
            sim,
            "/_sim/inbound",
            {"user": "Ana", "name": "Ana Lima", "text": "Olá <b>x</b>", "duplicates": 1},
        )
        token = got["message_token"]
        assert int(token) > 2**53
        convs = await eventually(lambda: conversations(api))
        [conv] = convs
        [msg] = await eventually(lambda: messages(api, conv["id"]))
        assert (msg["direction"], msg["kind"], msg["body"]) == ("in", "text", "Olá <b>x</b>")
        # The 64-bit token arrives digit for digit (a float would have rounded it).
        assert msg["provider_message_id"] == token

        async def both_delivered() -> bool:
            got = (await sim.get("/_sim/deliveries", params={"token": TOKEN})).json()
            return [d["status"] for d in got if token in d["body"]] == [200, 200]

        await eventually(both_delivered)
        assert await counts(server) == (1, 1)
        contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
        assert contact["name"] == "Ana Lima"
        assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
            ("viber", user_id_for("Ana"))
        ]

        reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Oi!"})
        assert reply.status_code == 201, reply.text
        reply_id = reply.json()["id"]

        async def status_is(wanted: str) -> dict[str, Any] | None:
            m = next(m for m in await messages(api, conv["id"]) if m["id"] == reply_id)
            return m if m["status"] == wanted else None

        # The composer's picker says a reply now is free (inside the customer's session).
        ctx = (await api.get(f"/api/v1/ui/conversations/{conv['id']}/context")).json()
        [route] = [r for r in ctx["routes"] if r["kind"] == "viber"]
        assert route["can_send"] and route["billing"].startswith("free session, 23 h")
        out = await eventually(lambda: status_is("delivered"))
        [send] = await sent_calls(sim, "send_message")
        assert send["body"]["type"] == "text"
        assert send["body"]["text"] == "Oi!"
        assert send["body"]["receiver"] == user_id_for("Ana")
        assert send["body"]["sender"] == {"name": "Acme Support"}
        assert send["body"]["tracking_data"] == f"tidings:{conv['id']}"
        # Inside the session the customer opened: free.
        assert send["answer"]["billing_status"] == 0
        assert out["provider_message_id"] == send["answer"]["message_token"]

        assert (await sim_post(sim, "/_sim/seen", {"user": "Ana"}))["read"] == 1
        await eventually(lambda: status_is("read"))
    assert (await counts(server))[1] == 2


async def test_not_subscribed_fails_with_vibers_reason(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await viber_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        # A user who wrote but whose subscription Viber does not hold (a knob: sources disagree
        # on whether a first message subscribes).
        await sim.put(f"/_sim/bots/{TOKEN}", json={"message_subscribes": False})
        await sim_post(sim, "/_sim/inbound", {"user": "Bo", "name": "Bo", "text": "hi"})
        [conv] = await eventually(lambda: conversations(api))
        reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hey"})
        assert reply.status_code == 201, reply.text

        async def failed() -> dict[str, Any] | None:
            m = next(m for m in await messages(api, conv["id"]) if m["id"] == reply.json()["id"])
            return m if m["status"] == "failed" else None

        out = await eventually(failed)
        assert out["error_code"] == "6"
        assert "not subscribed" in out["error_reason"]
        assert "Not subscribed" in out["error_reason"]  # Viber's own words, shown
        [send] = await sent_calls(sim, "send_message")
        assert send["answer"]["status"] == 6


async def test_unsubscribed_is_an_opt_out_and_a_message_lifts_it(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await viber_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        await sim_post(sim, "/_sim/inbound", {"user": "Cy", "name": "Cy", "text": "hello"})
        [conv] = await eventually(lambda: conversations(api))
        await sim_post(sim, "/_sim/unsubscribe", {"user": "Cy"})

        async def consent() -> str | None:
            ctx = (await api.get(f"/api/v1/ui/conversations/{conv['id']}/context")).json()
            found = [c["status"] for c in ctx["consents"] if c["channel_kind"] == "viber"]
            return found[0] if found else None

        async def opted_out() -> bool:
            return await consent() == "opted_out"

        await eventually(opted_out)
        refused = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "?"})
        assert refused.status_code == 422, refused.text
        assert await sent_calls(sim, "send_message") == []

        # Writing again subscribes the user: replies are allowed again.
        await sim_post(sim, "/_sim/inbound", {"user": "Cy", "text": "back"})

        async def opted_in() -> bool:
            return await consent() == "opted_in"

        await eventually(opted_in)
        again = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi"})
        assert again.status_code == 201, again.text


async def test_conversation_started_and_events_are_notices(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await viber_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        await sim_post(sim, "/_sim/open", {"user": "Dee", "name": "Dee", "context": "utm=spring"})
        [conv] = await eventually(lambda: conversations(api))
        [msg] = await eventually(lambda: messages(api, conv["id"]))
        assert msg["kind"] == "system"
        assert "utm=spring" in msg["body"]
        assert msg["extra"]["subscribed"] is False


async def test_picture_is_downloaded_and_an_expired_url_says_so(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await viber_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        await sim_post(
            sim, "/_sim/inbound", {"user": "Eve", "picture": True, "caption": "my receipt"}
        )
        [conv] = await eventually(lambda: conversations(api))

        async def attachment_settled() -> dict[str, Any] | None:
            msgs = await messages(api, conv["id"])
            atts = [a for m in msgs for a in m["attachments"]]
            return atts[0] if atts and atts[0]["state"] not in (None, "pending") else None

        att = await eventually(attachment_settled)
        assert att["state"] == "stored", att
        assert att["kind"] == "image"
        assert att["caption"] == "my receipt"
        data = await api.get(att["download_url"])
        assert data.status_code == 200
        assert data.content.startswith(b"\xff\xd8\xff")

        # Viber's media URLs expire (one hour; zero here): the attachment says it failed.
        await sim.put(f"/_sim/bots/{TOKEN}", json={"media_ttl_seconds": 0})
        await sim_post(sim, "/_sim/inbound", {"user": "Eve", "file": True})

        async def second_settled() -> dict[str, Any] | None:
            msgs = await messages(api, conv["id"])
            atts = [a for m in msgs for a in m["attachments"] if a["kind"] == "document"]
            return atts[0] if atts and atts[0]["state"] not in (None, "pending") else None

        failed = await eventually(second_settled, timeout=30)
        assert failed["state"] != "stored"
        assert failed["error"]


async def test_keyboard_buttons_go_out_as_a_viber_keyboard(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await viber_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        await sim_post(sim, "/_sim/inbound", {"user": "Fay", "text": "menu?"})
        [conv] = await eventually(lambda: conversations(api))
        resp = await api.post(
            f"/api/v1/conversations/{conv['id']}/messages",
            json={
                "interactive": {
                    "type": "buttons",
                    "body": "Pick one",
                    "buttons": [
                        {"id": "orders", "title": "Orders"},
                        {"id": "help", "title": "Help"},
                    ],
                }
            },
        )
        assert resp.status_code == 201, resp.text

        async def sent() -> list[dict[str, Any]]:
            return await sent_calls(sim, "send_message")

        [send] = await eventually(sent)
        buttons = send["body"]["keyboard"]["Buttons"]
        assert [(b["ActionType"], b["ActionBody"], b["Text"]) for b in buttons] == [
            ("reply", "orders", "Orders"),
            ("reply", "help", "Help"),
        ]
        assert send["body"]["text"] == "Pick one"


def test_fixture_tokens_are_exact() -> None:
    """Guard for the fixtures themselves: the big tokens are bare JSON integers above 2^53."""
    raw = b'{"message_token":5466297578174182639}'
    assert orjson.loads(raw)["message_token"] == 5466297578174182639
    assert float(5466297578174182639) != 5466297578174182639


async def test_a_new_user_chats_from_the_phone_page(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    from tidings.simulators.sandbox import create_demo_channels

    made = await create_demo_channels(server.runtime, owner.workspace_id, owner.agent_id)
    [viber] = [c["id"] for c in made if c["kind"] == "viber"]
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=20
    ) as phone:
        listed = {c["id"]: c for c in (await phone.get("/phone/channels")).json()}
        assert listed[viber]["kind"] == "viber"
        assert "location" in listed[viber]["can"]
        sent = await phone.post(
            "/phone/send", json={"channel_id": viber, "user": "Gus", "name": "Gus", "text": "yo"}
        )
        assert sent.status_code == 200, sent.text
        [conv] = await eventually(lambda: conversations(api))
        reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "hey"})
        assert reply.status_code == 201, reply.text

        async def thread() -> list[tuple[str, str]] | None:
            got = await phone.get("/phone/thread", params={"channel_id": viber, "user": "Gus"})
            seen = [(m["direction"], m["text"]) for m in got.json()]
            return seen if len(seen) == 2 else None

        assert await eventually(thread) == [("in", "yo"), ("out", "hey")]

        # A campaign can target the phone page's customer on Viber.
        created = await api.post(
            "/api/v1/campaigns",
            json={
                "name": "Phone promo",
                "content": {"text": "Promo for {{name}}"},
                "audience": {"contact_ids": [conv["contact_id"]]},
                "channel_ids": [viber],
            },
        )
        assert created.status_code == 201, created.text
        launched = await api.post(f"/api/v1/campaigns/{created.json()['id']}/launch")
        assert launched.status_code == 200, launched.text

        async def promo() -> list[tuple[str, str]] | None:
            got = await phone.get("/phone/thread", params={"channel_id": viber, "user": "Gus"})
            seen = [(m["direction"], m["text"]) for m in got.json()]
            return seen if len(seen) == 3 else None

        assert (await eventually(promo, timeout=20))[-1] == ("out", "Promo for Gus")


async def test_a_campaign_reaches_viber_customers_and_reports_refusals(
    server: Server, owner: Owner, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from tidings.campaigns import fanout
    from tidings.storage.models import Contact, Conversation, ConversationChannel
    from tidings.workers.registry import WORKERS

    # Chatbot-initiated Viber messages priced at 0.0085 EUR; session messages are free.
    monkeypatch.setenv("TIDINGS_SMS_PRICES", '{"currency": "EUR", "viber": {"*": "0.0085"}}')

    task = None
    if "campaigns" not in WORKERS:
        task = server.runtime.spawn(fanout.run(server.runtime), name="test-campaigns")
    try:
        channel = await viber_channel(api, server, **CHANNEL)
        async with sim_client(server) as sim:
            await sim_post(sim, "/_sim/inbound", {"user": "Hal", "name": "Hal", "text": "hi"})
            await sim.put(f"/_sim/bots/{TOKEN}", json={"message_subscribes": False})
            await sim_post(sim, "/_sim/inbound", {"user": "Ivy", "name": "Ivy", "text": "hi"})

            async def two() -> list[int] | None:
                data = (await api.get("/api/v1/contacts")).json()["data"]
                return [c["id"] for c in data] if len(data) == 2 else None

            contacts = await eventually(two)
            # Hal wrote two days ago: his session is over, so a message to him is billed.
            async with server.runtime.db.write() as s:
                hal = await s.scalar(select(Contact.id).where(Contact.name == "Hal"))
                row = await s.scalar(
                    select(ConversationChannel)
                    .join(Conversation, Conversation.id == ConversationChannel.conversation_id)
                    .where(Conversation.contact_id == hal)
                )
                assert row is not None and row.last_inbound_at is not None
                row.last_inbound_at = row.last_inbound_at - timedelta(days=2)
            c = await api.post(
                "/api/v1/campaigns",
                json={
                    "name": "Viber news",
                    "content": {"text": "Hello {{first_name}}"},
                    "audience": {"contact_ids": contacts},
                    "channel_ids": [channel["id"]],
                },
            )
            assert c.status_code == 201, c.text
            campaign = c.json()
            preview = (await api.post(f"/api/v1/campaigns/{campaign['id']}/preview")).json()
            assert preview["totals"]["estimated_cost"] == {"EUR": "0.0085"}
            launched = await api.post(f"/api/v1/campaigns/{campaign['id']}/launch")
            assert launched.status_code == 200, launched.text

            async def settled() -> dict[str, Any] | None:
                got = (await api.get(f"/api/v1/campaigns/{campaign['id']}")).json()["counts"]
                return got if got.get("delivered") == 1 and got.get("failed") == 1 else None

            await eventually(settled, timeout=30)
            sends = await sent_calls(sim, "send_message")
            by_user = {s["body"]["receiver"]: s["answer"]["status"] for s in sends}
            assert by_user == {user_id_for("Hal"): 0, user_id_for("Ivy"): 6}
            assert [s["body"]["text"] for s in sends if s["answer"]["status"] == 0] == ["Hello Hal"]
        report = (await api.get(f"/api/v1/campaigns/{campaign['id']}/report")).json()
        assert report["per_channel"][str(channel["id"])]["delivered"] == 1
        assert report["per_channel"][str(channel["id"])]["failed"] == 1
        async with server.runtime.db.read() as s:
            costs = (
                await s.scalars(
                    select(Message.cost_estimate).where(
                        Message.direction == "out", Message.cost_estimate.is_not(None)
                    )
                )
            ).all()
        assert sorted(costs) == [0, Decimal("0.0085")]
    finally:
        if task is not None:
            task.cancel()


async def test_set_webhooks_registers_again_after_a_url_change(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    from tidings.actions.admin import register_webhooks

    channel = await viber_channel(api, server, **CHANNEL)
    # Another channel kind is left alone: only adapters that set their own webhook are called.
    results = await register_webhooks(server.runtime)
    url = f"{server.url}/webhooks/viber/{channel['id']}"
    assert results == [{"channel_id": channel["id"], "url": url}]
    async with sim_client(server) as sim:
        calls = await sent_calls(sim, "set_webhook")
    assert [c["body"]["url"] for c in calls] == [url, url]


async def test_not_subscribed_in_a_campaign_falls_back_to_sms(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    import secrets

    from tidings.campaigns import fanout
    from tidings.delivery import fallback
    from tidings.storage.models import Contact
    from tidings.workers.registry import WORKERS

    tasks = []
    if "campaigns" not in WORKERS:
        tasks.append(server.runtime.spawn(fanout.run(server.runtime), name="test-campaigns"))
    if "fallback" not in WORKERS:
        tasks.append(server.runtime.spawn(fallback.run(server.runtime), name="test-fallback"))
    try:
        viber = await viber_channel(api, server, **CHANNEL)
        sms = await api.post(
            "/api/v1/channels",
            json={
                "kind": "twilio",
                "name": "SMS",
                "config": {
                    "account_sid": "AC" + secrets.token_hex(16),
                    "auth_token": secrets.token_hex(16),
                    "from_number": "+14155550100",
                    "api_base_url": f"{server.url}/sandbox/twilio",
                },
            },
        )
        assert sms.status_code == 201, sms.text
        async with sim_client(server) as sim:
            await sim.put(f"/_sim/bots/{TOKEN}", json={"message_subscribes": False})
            await sim_post(sim, "/_sim/inbound", {"user": "Jo", "name": "Jo", "text": "hi"})
            [conv] = await eventually(lambda: conversations(api))
            # Jo's number is known to the business (e.g. from the CRM).
            async with server.runtime.db.write() as s:
                contact = await s.get_one(Contact, conv["contact_id"])
                contact.phone_e164 = "+14155550124"
            c = await api.post(
                "/api/v1/campaigns",
                json={
                    "name": "Viber first",
                    "content": {"text": "Your order shipped"},
                    "audience": {"contact_ids": [conv["contact_id"]]},
                    "channel_ids": [viber["id"]],
                    "fallback": {"to_channel_id": sms.json()["id"], "on_failed": True},
                },
            )
            assert c.status_code == 201, c.text
            launched = await api.post(f"/api/v1/campaigns/{c.json()['id']}/launch")
            assert launched.status_code == 200, launched.text

            async def texted() -> list[dict[str, Any]]:
                async with httpx.AsyncClient(
                    headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/twilio"
                ) as tw:
                    return list((await tw.get("/_sim/sent")).json())

            [text] = await eventually(texted, timeout=30)
            assert dict(text["params"])["To"] == "+14155550124"
            assert dict(text["params"])["Body"] == "Your order shipped"
            [send] = await sent_calls(sim, "send_message")
            assert send["answer"]["status"] == 6
        msgs = await messages(api, conv["id"])
        original = next(
            m for m in msgs if m["direction"] == "out" and m["channel_id"] == viber["id"]
        )
        assert original["status"] == "failed" and "not subscribed" in original["error_reason"]
    finally:
        for task in tasks:
            task.cancel()


async def test_the_senders_avatar_is_kept_on_the_contact(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    avatar = "https://media-direct.cdn.viber.com/download_photo?dlid=abc&fltp=jpg"
    await viber_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        await sim_post(
            sim, "/_sim/inbound", {"user": "Ines", "name": "Ines", "avatar": avatar, "text": "hi"}
        )
        [conv] = await eventually(lambda: conversations(api))

        async def pictured() -> dict[str, Any] | None:
            contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
            return contact if contact["attributes"].get("picture_url") else None

        contact = await eventually(pictured)
        assert contact["attributes"]["picture_url"] == avatar
        assert contact["name"] == "Ines"
        # Asked once, within Viber's 2-per-12-hours limit.
        assert len(await sent_calls(sim, "get_user_details")) == 1
