"""WeChat Official Account end to end over real HTTP: the simulator pushes signed (plain or
AES-encrypted) XML to Tidings, agents reply through the Customer Service API with the
access-token lifecycle, the 48-hour window and the per-window quota."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.factories import simulator, wechat_channel
from tidings.channels.base import OutboundAttachment, OutboundMessage, Permanent, Sent
from tidings.channels.wechat import WeChatAdapter, WeChatConfig, client, crypto
from tidings.domain.enums import MessageKind
from tidings.storage.models import ConversationChannel, InboundEvent, Message
from tidings.storage.types import utcnow

AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def config(server: Server, app_id: str, safe: bool) -> dict[str, Any]:
    values = {
        "app_id": app_id,
        "app_secret": f"secret-of-{app_id}",
        "token": f"token{app_id}",
        "api_base_url": f"{server.url}/sandbox/wechat",
    }
    if safe:
        values["encoding_aes_key"] = AES_KEY
    return values


@pytest.fixture
async def sim(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with simulator(server, "wechat") as c:
        yield c


async def counts(server: Server) -> tuple[int, int]:
    async with server.runtime.db.read() as s:
        events = await s.scalar(select(func.count()).select_from(InboundEvent))
        messages = await s.scalar(select(func.count()).select_from(Message))
    return int(events or 0), int(messages or 0)


async def thread(api: httpx.AsyncClient) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async def first() -> Any:
        return (await api.get("/api/v1/conversations")).json()["data"]

    conv = (await eventually(first))[0]
    msgs = (await api.get(f"/api/v1/conversations/{conv['id']}/messages")).json()["data"]
    return conv, msgs


async def reply_status(api: httpx.AsyncClient, conv_id: int, message_id: int) -> Any:
    async def done() -> Any:
        msgs = (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]
        m = next(m for m in msgs if m["id"] == message_id)
        return m if m["status"] in ("sent", "failed") else None

    return await eventually(done)


async def test_url_verification(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    channel = await wechat_channel(api, server, **config(server, "wxplain0001", False))
    url = f"{server.url}/webhooks/wechat/{channel['id']}"
    ts, nonce = "1714036504", "1514711492"
    good = crypto.signature("tokenwxplain0001", ts, nonce)
    async with httpx.AsyncClient() as http:
        ok = await http.get(
            url,
            params={"signature": good, "timestamp": ts, "nonce": nonce, "echostr": "4375120948"},
        )
        bad = await http.get(
            url, params={"signature": "0" * 40, "timestamp": ts, "nonce": nonce, "echostr": "x"}
        )
    assert (ok.status_code, ok.text, ok.headers["content-type"]) == (
        200,
        "4375120948",
        "text/plain; charset=utf-8",
    )
    assert bad.status_code == 403
    assert bad.json()["error"]["code"] == "bad_signature"


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
async def test_inbound_reply_and_duplicates(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient, mode: str
) -> None:
    app_id = f"wx{mode}0001"
    await wechat_channel(api, server, **config(server, app_id, mode != "plain"))
    # WeChat retries a push it thinks went unanswered: two identical extra deliveries.
    r = await sim.put(f"/_sim/accounts/{app_id}", json={"mode": mode, "duplicates": 2})
    assert r.json()["mode"] == mode
    push = (
        await sim.post(
            "/_sim/inbound", json={"app_id": app_id, "openid": "alice", "text": "你好 <b>there</b>"}
        )
    ).json()
    assert push["delivered"] is True
    assert push["attempts"] == ["accepted", "accepted", "accepted"]
    if mode != "plain":
        assert push["query"]["encrypt_type"] == "aes" and "msg_signature" in push["query"]

    conv, msgs = await thread(api)
    assert [(m["direction"], m["kind"], m["body"]) for m in msgs] == [
        ("in", "text", "你好 <b>there</b>")
    ]
    assert await counts(server) == (1, 1)  # three pushes, one stored event, one message
    contact = (await api.get(f"/api/v1/contacts/{conv['contact_id']}")).json()
    assert [(i["channel_kind"], i["address"]) for i in contact["identities"]] == [
        ("wechat", push["openid"])
    ]

    sent = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "您好!"})
    assert sent.status_code == 201, sent.text
    final = await reply_status(api, conv["id"], sent.json()["id"])
    assert final["status"] == "sent", final
    got = (await sim.get("/_sim/sent", params={"app_id": app_id})).json()
    assert [(e["touser"], e["msgtype"], e["content"]) for e in got] == [
        (push["openid"], "text", "您好!")
    ]
    assert final["provider_message_id"] == str(got[0]["msgid"])


async def test_events_and_other_types_reach_the_thread(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    await wechat_channel(api, server, **config(server, "wxevents001", True))
    for body in (
        {"event": "subscribe", "event_key": "qrscene_spring"},
        {"type": "location", "latitude": 23.13, "longitude": 113.35, "label": "Guangzhou"},
        {
            "type": "image",
            "image_base64": base64.b64encode(PNG).decode(),
            "content_type": "image/png",
        },
        {"event": "LOCATION"},  # periodic report: stored, understood, not shown
    ):
        push = (
            await sim.post("/_sim/inbound", json={"app_id": "wxevents001", "openid": "bob", **body})
        ).json()
        assert push["delivered"] is True, push

    async def four_done() -> Any:
        async with server.runtime.db.read() as s:
            rows = (await s.scalars(select(InboundEvent.state))).all()
        return len(rows) == 4 and all(state == "done" for state in rows)

    await eventually(four_done)
    _conv, msgs = await thread(api)
    assert [m["kind"] for m in msgs] == ["system", "location", "media"]
    assert msgs[0]["body"] == "Followed the Official Account by scanning QR code 'spring'"
    assert msgs[2]["attachments"][0]["kind"] == "image"


async def test_bad_signature_and_hostile_xml_store_nothing(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    channel = await wechat_channel(api, server, **config(server, "wxplain0001", False))
    url = f"{server.url}/webhooks/wechat/{channel['id']}"
    ts, nonce = "1714037059", "486452656"
    good = {
        "signature": crypto.signature("tokenwxplain0001", ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
    }
    text = (
        b"<xml><ToUserName>gh_1</ToUserName><FromUserName>oAAAAAAAAAAAAAAAAAAAAAAAAAAA</FromUserName>"
        b"<CreateTime>1714037059</CreateTime><MsgType>text</MsgType><Content>hi</Content>"
        b"<MsgId>1</MsgId></xml>"
    )
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><xml><ToUserName>gh_1</ToUserName>'
        b"<FromUserName>oAAAAAAAAAAAAAAAAAAAAAAAAAAA</FromUserName><MsgType>text</MsgType>"
        b"<Content>&b;</Content><MsgId>2</MsgId></xml>"
    )
    async with httpx.AsyncClient() as http:
        wrong = await http.post(url, params={**good, "signature": "f" * 40}, content=text)
        missing = await http.post(url, content=text)
        dtd = await http.post(url, params=good, content=bomb)
        huge = await http.post(url, params=good, content=b"<xml>" + b"a" * 70_000 + b"</xml>")
        fake_aes = await http.post(
            url, params={**good, "encrypt_type": "aes", "msg_signature": "0" * 40}, content=text
        )
    assert [r.status_code for r in (wrong, missing, dtd, huge, fake_aes)] == [
        401,
        401,
        401,
        413,
        401,
    ]
    assert dtd.json()["error"]["code"] == "forbidden_xml"
    assert await counts(server) == (0, 0)


async def test_window_closed_is_refused_by_policy(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    await wechat_channel(api, server, **config(server, "wxwindow001", False))
    await sim.post("/_sim/inbound", json={"app_id": "wxwindow001", "openid": "carol", "text": "hi"})
    conv, _ = await thread(api)
    # Two days and an hour pass: move the customer's last message back on both sides.
    await sim.post("/_sim/clock", json={"advance": 49 * 3600})
    old = utcnow() - timedelta(hours=49)
    async with server.runtime.db.write() as s:
        await s.execute(update(ConversationChannel).values(last_inbound_at=old))
    resp = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "late"})
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "window_closed"
    assert "48-hour" in resp.json()["error"]["message"]
    assert (await sim.get("/_sim/sent", params={"app_id": "wxwindow001"})).json() == []


async def test_expired_token_is_refreshed_and_the_send_succeeds(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    await wechat_channel(api, server, **config(server, "wxtoken0001", True))
    await sim.post("/_sim/inbound", json={"app_id": "wxtoken0001", "openid": "dave", "text": "hi"})
    conv, _ = await thread(api)
    first = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "one"})
    assert (await reply_status(api, conv["id"], first.json()["id"]))["status"] == "sent"
    # Our cached token is now expired at WeChat: the next call gets 42001, refetches, retries.
    assert (await sim.post("/_sim/tokens/expire", json={"app_id": "wxtoken0001"})).json() == {
        "expired": 1
    }
    second = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "two"})
    assert (await reply_status(api, conv["id"], second.json()["id"]))["status"] == "sent"
    # Revoked outright (40001): the same.
    await sim.post("/_sim/tokens/revoke", json={"app_id": "wxtoken0001"})
    third = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "three"})
    assert (await reply_status(api, conv["id"], third.json()["id"]))["status"] == "sent"
    got = (await sim.get("/_sim/sent", params={"app_id": "wxtoken0001"})).json()
    assert [e["content"] for e in got] == ["one", "two", "three"]


async def test_quota_used_up_fails_with_a_plain_reason(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    await wechat_channel(api, server, **config(server, "wxquota0001", False))
    await sim.post("/_sim/inbound", json={"app_id": "wxquota0001", "openid": "erin", "text": "hi"})
    conv, _ = await thread(api)
    ids = []
    # One customer message allows 5 replies (docs/channels/wechat.md#customer-service-messages).
    for n in range(6):
        resp = await api.post(
            f"/api/v1/conversations/{conv['id']}/messages", json={"text": f"r{n}"}
        )
        ids.append(resp.json()["id"])
    finals = [await reply_status(api, conv["id"], i) for i in ids]
    assert [m["status"] for m in finals] == ["sent"] * 5 + ["failed"]
    assert finals[5]["error_code"] == "45047"
    assert "quota of messages is used up" in finals[5]["error_reason"]
    assert len((await sim.get("/_sim/sent", params={"app_id": "wxquota0001"})).json()) == 5


async def test_adapter_media_and_window_against_the_simulator(
    server: Server, owner: Owner, api: httpx.AsyncClient, sim: httpx.AsyncClient
) -> None:
    """Media both ways and WeChat's own 45015, through the adapter over real HTTP."""
    await wechat_channel(api, server, **config(server, "wxmedia0001", False))
    cfg = WeChatConfig.model_validate(config(server, "wxmedia0001", safe=False))
    push = (
        await sim.post(
            "/_sim/inbound",
            json={
                "app_id": "wxmedia0001",
                "openid": "frank",
                "type": "image",
                "image_base64": base64.b64encode(PNG).decode(),
                "content_type": "image/png",
            },
        )
    ).json()
    _conv, _msgs = await thread(api)
    async with server.runtime.db.read() as s:
        from tidings.storage.models import Attachment

        att = (await s.scalars(select(Attachment))).one()
    assert att.provider_media_id and att.url
    async with httpx.AsyncClient() as http:
        media = await client.download_media(cfg, http, att.provider_media_id)
        assert isinstance(media, client.Media)
        assert (media.data, media.content_type) == (PNG, "image/png")
        missing = await client.download_media(cfg, http, "no-such-media")
        assert isinstance(missing, Permanent) and missing.code == "40007"

        # Outbound: fetch the picture from its URL, upload it, send it by media_id.
        out = OutboundMessage(
            message_id=990,
            conversation_id=1,
            to=push["openid"],
            kind=MessageKind.MEDIA,
            attachments=(OutboundAttachment(kind="image", url=att.url),),
        )
        outcome = await WeChatAdapter().send(cfg, out, http)
        assert isinstance(outcome, Sent), outcome
        sent = (await sim.get("/_sim/sent", params={"app_id": "wxmedia0001"})).json()
        assert [e["msgtype"] for e in sent] == ["image"]
        uploaded = (await sim.get("/_sim/media", params={"app_id": "wxmedia0001"})).json()
        assert sent[0]["media_id"] in {m["media_id"] for m in uploaded}

        # After 48 hours WeChat itself refuses (45015), whatever our policy thought.
        await sim.post("/_sim/clock", json={"advance": 49 * 3600})
        text = OutboundMessage(
            message_id=991, conversation_id=1, to=push["openid"], kind=MessageKind.TEXT, text="hi"
        )
        late = await WeChatAdapter().send(cfg, text, http)
        assert isinstance(late, Permanent) and late.code == "45015"
        assert "not interacted in the last 48 hours" in late.reason
    client.TOKENS.forget(cfg)


async def test_demo_channel_and_customer_phone(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    """The sandbox demo WeChat account (safe mode) works from the customer-phone page."""
    from tidings.simulators.sandbox import create_demo_channels

    made = await create_demo_channels(server.runtime, owner.workspace_id, owner.agent_id)
    wechat = next(c for c in made if c["kind"] == "wechat")
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=20
    ) as phone:
        listed = (await phone.get("/phone/channels")).json()
        assert wechat["id"] in [c["id"] for c in listed]
        sent = await phone.post(
            "/phone/send",
            json={"channel_id": wechat["id"], "user": "+4915112345678", "text": "Hallo WeChat"},
        )
        assert sent.json()["delivered"] is True
        assert sent.json()["query"]["encrypt_type"] == "aes"
        conv, msgs = await thread(api)
        assert [(m["direction"], m["body"]) for m in msgs] == [("in", "Hallo WeChat")]
        reply = await api.post(f"/api/v1/conversations/{conv['id']}/messages", json={"text": "Hi!"})
        assert (await reply_status(api, conv["id"], reply.json()["id"]))["status"] == "sent"
        seen = (
            await phone.get(
                "/phone/thread", params={"channel_id": wechat["id"], "user": "+4915112345678"}
            )
        ).json()
    assert [(m["direction"], m["text"]) for m in seen] == [("in", "Hallo WeChat"), ("out", "Hi!")]
