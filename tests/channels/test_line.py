"""LINE end to end over real HTTP: the LINE simulator posts signed webhooks to a running
Tidings, agent replies go out by reply token or push, and consent, quota, profiles, media and
the customer phone work as an inbox user expects."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import line_channel, simulator
from tidings.channels.line.webhook import signature
from tidings.storage.models import Consent, InboundEvent, Message

TOKEN = "e2e-line-channel-access-token"
SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
USER = "U91eeaf62d9e43b1c5fa0d7e2c86b3a14"
CHANNEL = {"channel_secret": SECRET, "channel_access_token": TOKEN}


def sim_client(server: Server) -> httpx.AsyncClient:
    return simulator(server, "line", timeout=10)


async def counts(server: Server) -> tuple[int, int]:
    async with server.runtime.db.read() as s:
        events = await s.scalar(select(func.count()).select_from(InboundEvent))
        msgs = await s.scalar(select(func.count()).select_from(Message))
    return int(events or 0), int(msgs or 0)


async def the_conversation(api: httpx.AsyncClient) -> dict[str, Any]:
    async def one() -> list[Any] | None:
        data = (await api.get("/api/v1/conversations")).json()["data"]
        return data if len(data) == 1 else None

    [conv] = await eventually(one)
    return dict(conv)


async def thread(api: httpx.AsyncClient, conv_id: int, at_least: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        data = (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]
        return data if len(data) >= at_least else None

    return list(await eventually(check))


async def inbound(sim: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    resp = await sim.post("/_sim/inbound", json={"token": TOKEN, "user_id": USER, **body})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_bad_or_missing_signature_is_401_and_nothing_is_stored(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await line_channel(api, server, **CHANNEL)
    event = {
        "type": "message",
        "webhookEventId": "01HX0000000000000000000000",
        "timestamp": 1,
        "source": {"type": "user", "userId": USER},
        "message": {"type": "text", "id": "1", "text": "forged"},
    }
    body = orjson.dumps({"destination": "Ux", "events": [event]})
    async with httpx.AsyncClient() as http:
        for headers in (
            {},
            {"x-line-signature": signature("wrong-secret", body)},
            {"x-line-signature": "not base64 at all"},
        ):
            resp = await http.post(
                channel["webhook_url"],
                content=body,
                headers={"Content-Type": "application/json", **headers},
            )
            assert resp.status_code == 401, resp.text
        assert await counts(server) == (0, 0)
        # Signed but malformed: a 4xx or an acknowledged failed event, never a 5xx.
        for junk in (b"i am not jason", b'{"events": "no"}', b"[" * 5000):
            resp = await http.post(
                channel["webhook_url"],
                content=junk,
                headers={"x-line-signature": signature(SECRET, junk)},
            )
            assert resp.status_code < 500, resp.text
        # The Console's "Verify" probe: signed, empty, answered 200, stores nothing.
        probe = b'{"destination":"Ux","events":[]}'
        resp = await http.post(
            channel["webhook_url"],
            content=probe,
            headers={"x-line-signature": signature(SECRET, probe)},
        )
        assert resp.status_code == 200
    assert (await counts(server))[1] == 0


async def test_reply_token_then_push_once_after_expiry(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await line_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        # Redelivered twice by LINE: one message.
        await inbound(sim, text="こんにちは 🍎", duplicates=2)
        conv = await the_conversation(api)
        [first] = await thread(api, conv["id"], 1)
        assert first["body"] == "こんにちは 🍎"

        reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi!"})
        assert reply.status_code == 201, reply.text

        async def calls() -> list[dict[str, Any]]:
            return list((await sim.get("/_sim/sent", params={"token": TOKEN})).json())

        async def replied() -> list[dict[str, Any]] | None:
            got = await calls()
            return got if got else None

        # The fresh reply token answered it, for free.
        assert [(c["endpoint"], c["status"], c["charged"]) for c in await eventually(replied)] == [
            ("reply", 200, 0)
        ]

        # LINE's minute is over for the next message's token: push, once.
        await sim.post("/_sim/config", json={"token": TOKEN, "reply_token_seconds": 0})
        await inbound(sim, text="still there?")
        await thread(api, conv["id"], 3)
        again = await api.post(
            f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Yes!"}
        )
        assert again.status_code == 201, again.text

        async def pushed() -> list[tuple[str, int]] | None:
            got = [(c["endpoint"], c["status"]) for c in await calls()]
            return got if len(got) == 3 else None

        assert await eventually(pushed) == [("reply", 200), ("reply", 400), ("push", 200)]

        async def sent() -> dict[str, Any] | None:
            msgs = await thread(api, conv["id"], 4)
            ours = next(m for m in msgs if m["id"] == again.json()["id"])
            return ours if ours["status"] == "sent" else None

        await eventually(sent)
        customer_saw = (
            await sim.get("/_sim/conversations", params={"token": TOKEN, "user_id": USER})
        ).json()
        assert [(m["direction"], m["text"]) for m in customer_saw] == [
            ("in", "こんにちは 🍎"),
            ("out", "Hi!"),
            ("in", "still there?"),
            ("out", "Yes!"),
        ]


async def test_unfollow_opts_out_and_follow_opts_back_in(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await line_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        await inbound(sim, text="hello")
        conv = await the_conversation(api)
        await inbound(sim, event="unfollow")

        async def opted_out() -> list[Any] | None:
            async with server.runtime.db.read() as s:
                rows = (await s.scalars(select(Consent.status))).all()
            return list(rows) if rows and set(rows) == {"opted_out"} else None

        await eventually(opted_out)
        refused = await api.post(
            f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Are you there?"}
        )
        assert refused.status_code == 422, refused.text

        await inbound(sim, event="follow", unblocked=True)

        async def opted_in() -> list[Any] | None:
            async with server.runtime.db.read() as s:
                rows = (await s.scalars(select(Consent.status))).all()
            return list(rows) if rows and set(rows) == {"opted_in"} else None

        await eventually(opted_in)
        ok = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Back!"})
        assert ok.status_code == 201, ok.text
        lines = [m["body"] for m in await thread(api, conv["id"], 5) if m["kind"] == "system"]
        assert "Blocked the LINE Official Account" in lines
        assert "Unblocked the LINE Official Account" in lines


async def test_quota_used_up_fails_the_message_with_lines_reason(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await line_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        await sim.post(
            "/_sim/config",
            json={"token": TOKEN, "quota": 10, "quota_used": 10, "reply_token_seconds": 0},
        )
        await inbound(sim, text="hi")
        conv = await the_conversation(api)
        await thread(api, conv["id"], 1)
        reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "x"})
        assert reply.status_code == 201

        async def failed() -> dict[str, Any] | None:
            msgs = await thread(api, conv["id"], 2)
            ours = next(m for m in msgs if m["id"] == reply.json()["id"])
            return ours if ours["status"] == "failed" else None

        ours = await eventually(failed)
        assert "monthly limit" in ours["error_reason"]


async def test_profile_name_picture_and_media(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await line_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        await inbound(
            sim,
            name="Haruka Sato",
            picture_url="https://profile.line-scdn.net/0hxyz",
            image={"mime_type": "image/jpeg"},
        )
        conv = await the_conversation(api)

        async def named() -> dict[str, Any] | None:
            contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
            return contact if contact["name"] == "Haruka Sato" else None

        contact = await eventually(named)
        assert contact["attributes"]["picture_url"] == "https://profile.line-scdn.net/0hxyz"

        async def stored() -> dict[str, Any] | None:
            [msg] = await thread(api, conv["id"], 1)
            atts = msg["attachments"]
            return atts[0] if atts and atts[0]["state"] == "stored" else None

        att = await eventually(stored)
        assert att["mime_type"] == "image/jpeg"


async def test_a_new_customer_chats_from_the_phone_page(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    from tidings.simulators.sandbox import create_demo_channels

    made = await create_demo_channels(server.runtime, owner.workspace_id, owner.agent_id)
    [line] = [c for c in made if c["kind"] == "line"]
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=20
    ) as phone:
        listed = {c["id"]: c for c in (await phone.get("/phone/channels")).json()}
        assert "location" in listed[line["id"]]["can"]
        sent = await phone.post(
            "/phone/send", json={"channel_id": line["id"], "user": "Kenji", "text": "hi from LINE"}
        )
        assert sent.status_code == 200, sent.text
        conv = await the_conversation(api)
        msgs = await thread(api, conv["id"], 2)
        # A new customer first adds the account as a friend, then writes.
        assert [(m["kind"], m["body"]) for m in msgs] == [
            ("system", "Added the account as a friend"),
            ("text", "hi from LINE"),
        ]
        reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "ok"})
        assert reply.status_code == 201

        async def seen() -> list[tuple[str, str]] | None:
            got = (
                await phone.get("/phone/thread", params={"channel_id": line["id"], "user": "Kenji"})
            ).json()
            pairs = [(m["direction"], m["text"]) for m in got]
            return pairs if len(pairs) == 2 else None

        assert await eventually(seen) == [("in", "hi from LINE"), ("out", "ok")]

        # A campaign can target the phone page's customer on LINE.
        created = await api.post(
            "/api/v1/campaigns",
            json={
                "name": "Phone promo",
                "content": {"text": "Promo for LINE friends"},
                "audience": {"contact_ids": [conv["contact_id"]]},
                "channel_ids": [line["id"]],
            },
        )
        assert created.status_code == 201, created.text
        launched = await api.post(f"/api/v1/campaigns/{created.json()['id']}/launch")
        assert launched.status_code == 200, launched.text

        async def promo() -> list[tuple[str, str]] | None:
            got = (
                await phone.get("/phone/thread", params={"channel_id": line["id"], "user": "Kenji"})
            ).json()
            pairs = [(m["direction"], m["text"]) for m in got]
            return pairs if len(pairs) == 3 else None

        assert (await eventually(promo, timeout=20))[-1] == ("out", "Promo for LINE friends")


async def test_setup_shows_the_push_quota_left(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await line_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        await sim.post("/_sim/config", json={"token": TOKEN, "quota": 500, "quota_used": 120})
    setup = (await api.get(f"/api/v1/admin/channels/{channel['id']}/setup")).json()
    assert setup["health"]["provider"] == "380 of 500 push messages left this month"
    async with sim_client(server) as sim:
        await sim.post(
            "/_sim/fail", json={"token": TOKEN, "endpoint": "quota", "status": 401, "times": 5}
        )
    setup = (await api.get(f"/api/v1/admin/channels/{channel['id']}/setup")).json()
    assert "could not ask the provider" in setup["health"]["provider"]
    assert "Reconnect" in setup["health"]["provider"]


async def test_webhook_set_and_verified_through_the_messaging_api(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """What "Webhook URL" and "Verify" in LINE's Console do, through the Messaging API (the
    `python -m tidings.channels.line` commands): LINE's signed empty probe gets 200."""
    from tidings.channels.line import LineConfig, client

    channel = await line_channel(api, server, **CHANNEL)
    base = f"{server.url}/sandbox/line"
    config = LineConfig(
        channel_secret=SECRET, channel_access_token=TOKEN, api_base_url=base, data_api_base_url=base
    )
    async with httpx.AsyncClient() as http:
        await client.set_webhook(config, channel["webhook_url"], http)
        info = await client.webhook_info(config, http)
        assert info == {"endpoint": channel["webhook_url"], "active": True}
        result = await client.test_webhook(config, http)
        assert (result["success"], result["statusCode"], result["reason"]) == (True, 200, "OK")
        wrong = config.model_copy(update={"channel_access_token": "not-ours"})
        try:
            await client.webhook_info(wrong, http)
        except client.LineApiError as exc:
            assert "Reconnect" in exc.reason
        else:
            raise AssertionError("an unknown token was accepted")
    assert await counts(server) == (0, 0)


async def test_agent_typing_shows_lines_loading_animation(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """An agent starting a reply shows LINE's loading animation in a one-to-one chat (the phone
    page shows it as "typing…"); our message ends it."""
    channel = await line_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        await inbound(sim, text="anyone there?")
        conv = await the_conversation(api)
        replying = await api.post(
            f"/api/v1/ui/conversations/{conv['id']}/presence", json={"state": "replying"}
        )
        assert replying.status_code == 200, replying.text

        async def loading() -> list[dict[str, Any]]:
            calls = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
            return [c for c in calls if c["endpoint"] == "loading"]

        [started] = await eventually(loading)
        assert (started["to"], started["status"]) == (USER, 202)
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=10
    ) as phone:

        async def typing() -> bool:
            got = await phone.get(
                "/phone/typing", params={"channel_id": channel["id"], "user": USER}
            )
            return bool(got.json()["typing"])

        assert await typing()
        reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Yes"})
        assert reply.status_code == 201

        async def stopped() -> bool:
            return not await typing()

        assert await eventually(stopped)


async def test_a_group_is_one_conversation_named_after_the_group(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    group = "Ca56f94637cc4347f90a25382909b24b9"
    await line_channel(api, server, **CHANNEL)
    async with sim_client(server) as sim:
        await inbound(sim, event="join", group_id=group)
        await inbound(sim, text="who is on duty?", group_id=group)
        await inbound(
            sim, user_id="U00000000000000000000000000000b07", text="me too", group_id=group
        )
        conv = await the_conversation(api)
        msgs = await thread(api, conv["id"], 3)
        assert [(m["kind"], m["body"]) for m in msgs] == [
            ("system", "The LINE account was added to this group"),
            ("text", "who is on duty?"),
            ("text", "me too"),
        ]
        assert msgs[2]["extra"]["speaker"] == "U00000000000000000000000000000b07"

        async def named() -> dict[str, Any] | None:
            contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
            return contact if contact["name"] == "Group a56f94" else None

        contact = await eventually(named)
        assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
            ("line", group)
        ]
        reply = await api.post(
            f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Kenji is."}
        )
        assert reply.status_code == 201

        async def to_group() -> list[str] | None:
            calls = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
            got = [
                c["to"] for c in calls if c["endpoint"] in ("reply", "push") and c["status"] == 200
            ]
            return got or None

        assert await eventually(to_group) == [group]
