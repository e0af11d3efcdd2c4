"""WeChat media end to end over real HTTP with the Official Account simulator: a customer's
image and voice message are fetched from the temporary-media API (`GET /cgi-bin/media/get` with
the access token), stored and served to agents; WeChat's 200 + JSON errors are never stored as
a file; uploaded files go up as temporary media and out as Customer Service messages by
media_id; documents, oversized files and captions WeChat cannot carry are refused before
anything is queued."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests import factories
from tests.conftest import Owner, Server, eventually
from tidings.channels.media import MediaUnavailable
from tidings.channels.wechat import WeChatAdapter, WeChatConfig, client
from tidings.media.fetch import fetch
from tidings.media.store import make_store
from tidings.storage.models import Attachment, Delivery, MediaUpload, Message

APP_ID = "wxmediatest01"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
AMR = b"#!AMR\n" + bytes(range(200))
MB = 1024 * 1024


def config(server: Server) -> dict[str, str]:
    return {
        "app_id": APP_ID,
        "app_secret": "secret-media",
        "token": "tokenmedia",
        "api_base_url": f"{server.url}/sandbox/wechat",
    }


async def setup(server: Server, api: httpx.AsyncClient) -> httpx.AsyncClient:
    resp = await api.post(
        "/api/v1/channels", json={"kind": "wechat", "name": "WeChat OA", "config": config(server)}
    )
    assert resp.status_code == 201, resp.text
    return factories.simulator(server, "wechat", timeout=30)


async def push(sim: httpx.AsyncClient, **body: Any) -> None:
    resp = await sim.post("/_sim/inbound", json={"app_id": APP_ID, "user": "dora", **body})
    assert resp.status_code == 200, resp.text
    assert resp.json()["delivered"] is True, resp.json()


async def messages(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    convs = (await api.get("/api/v1/conversations")).json()["data"]
    if not convs:
        return []
    return list((await api.get(f"/api/v1/conversations/{convs[0]['id']}/messages")).json()["data"])


async def settled(api: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        msgs = await messages(api)
        if len(msgs) < count:
            return None
        if any(a["state"] == "pending" for m in msgs for a in m["attachments"]):
            return None
        return msgs

    result: list[dict[str, Any]] = await eventually(check, timeout=30)
    return result


async def rows(server: Server, model: type) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture(autouse=True)
def _fresh_tokens(server: Server) -> Any:
    # Access tokens are cached per process; each test's simulator issues its own.
    yield
    client.TOKENS.forget(WeChatConfig.model_validate(config(server)))


async def test_inbound_image_and_voice_are_downloaded_and_served(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = await setup(server, api)
    await push(
        sim, type="image", image_base64=base64.b64encode(PNG).decode(), content_type="image/png"
    )
    await push(sim, type="voice", data_base64=base64.b64encode(AMR).decode(), format="amr")
    msgs = await settled(api, 2)
    atts = [m["attachments"][0] for m in msgs]
    assert [(a["kind"], a["state"], a["mime_type"], a["size"]) for a in atts] == [
        ("image", "stored", "image/png", len(PNG)),
        ("audio", "stored", "audio/amr", len(AMR)),
    ]
    image = await api.get(f"/api/v1/attachments/{atts[0]['id']}")
    assert image.status_code == 200
    assert (image.content, image.headers["content-type"]) == (PNG, "image/png")
    voice = await api.get(f"/api/v1/attachments/{atts[1]['id']}")
    assert voice.content == AMR
    async with httpx.AsyncClient(base_url=server.url) as anon:
        assert (await anon.get(f"/api/v1/attachments/{atts[0]['id']}")).status_code == 401

    # media/get needs the access token; without it WeChat answers 41001 as JSON.
    media = (await sim.get("/_sim/media", params={"app_id": APP_ID})).json()
    customer = [m for m in media if m["origin"] == "customer" and m["type"] != "thumb"]
    assert len(customer) == 2
    bare = await sim.get("/cgi-bin/media/get", params={"media_id": customer[0]["media_id"]})
    assert bare.json()["errcode"] == 41001


async def test_an_error_answer_is_never_stored_as_the_file(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await setup(server, api)
    adapter = WeChatAdapter()
    cfg = WeChatConfig.model_validate(config(server))
    store = make_store(server.settings)
    async with httpx.AsyncClient() as http:
        # An expired or unknown MediaId: HTTP 200 with {"errcode":40007,...}
        # (docs/channels/wechat.md#temporary-media).
        with pytest.raises(MediaUnavailable) as caught:
            await fetch(
                adapter=adapter,
                config=cfg,
                workspace_id=owner.workspace_id,
                provider_media_id="no-such-media-id",
                url=None,
                declared_mime="audio/amr",
                http=http,
                egress=server.runtime.egress,
                store=store,
            )
    assert "3 days" in caught.value.reason
    assert caught.value.retriable is False
    media_dir = server.settings.data_dir / "media"
    assert not [p for p in media_dir.rglob("*") if p.is_file()]


async def test_uploaded_image_and_video_go_up_as_temporary_media_and_out_by_media_id(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = await setup(server, api)
    await push(sim, type="text", text="请发图片")
    [first] = await settled(api, 1)
    conv_id = first["conversation_id"]
    url = f"/api/v1/conversations/{conv_id}/attachments"
    png = await api.post(url, files={"file": ("shelf.png", PNG, "image/png")})
    assert png.status_code == 201, png.text
    mp4 = b"\x00\x00\x00\x18ftypmp42" + bytes(300)
    video = await api.post(url, files={"file": ("demo.mp4", mp4, "video/mp4")})
    assert video.status_code == 201, video.text
    one = await api.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"attachment_ids": [png.json()["id"]]}
    )
    assert one.status_code == 201, one.text
    two = await api.post(
        f"/api/v1/conversations/{conv_id}/messages",
        json={"text": "How to fit it", "attachment_ids": [video.json()["id"]]},
    )
    assert two.status_code == 201, two.text

    async def both_sent() -> list[dict[str, Any]] | None:
        got = (await sim.get("/_sim/sent", params={"app_id": APP_ID})).json()
        return got if len(got) == 2 else None

    sent = await eventually(both_sent, timeout=30)
    uploads = {
        m["type"]: m
        for m in (await sim.get("/_sim/media", params={"app_id": APP_ID})).json()
        if m["origin"] == "upload"
    }
    assert {t: (m["size"], m["sha256"], m["filename"]) for t, m in uploads.items()} == {
        "image": (len(PNG), hashlib.sha256(PNG).hexdigest(), "shelf.png"),
        "video": (len(mp4), hashlib.sha256(mp4).hexdigest(), "demo.mp4"),
    }
    by_type = {e["msgtype"]: e for e in sent}
    assert by_type["image"]["image"] == {"media_id": uploads["image"]["media_id"]}
    assert by_type["video"]["video"] == {
        "media_id": uploads["video"]["media_id"],
        "title": "How to fit it",
        "description": "How to fit it",
    }

    async def out_sent() -> list[dict[str, Any]] | None:
        out = [m for m in await messages(api) if m["direction"] == "out"]
        return out if len(out) == 2 and all(m["status"] == "sent" for m in out) else None

    out = await eventually(out_sent, timeout=30)
    assert sorted(m["provider_message_id"] for m in out) == sorted(str(e["msgid"]) for e in sent)


async def test_documents_oversized_files_and_captions_are_refused_with_nothing_queued(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = await setup(server, api)
    await push(sim, type="text", text="hello")
    [first] = await settled(api, 1)
    conv_id = first["conversation_id"]
    url = f"/api/v1/conversations/{conv_id}/attachments"
    pdf = await api.post(url, files={"file": ("a.pdf", b"%PDF-1.4\n", "application/pdf")})
    assert pdf.status_code == 422
    assert pdf.json()["error"]["code"] == "not_allowed"
    # Voice is limited to 2 MB and images to 10 MB (docs/channels/wechat.md#temporary-media).
    mp3 = await api.post(url, files={"file": ("v.mp3", b"ID3" + bytes(2 * MB), "audio/mpeg")})
    assert mp3.status_code == 422
    assert mp3.json()["error"]["code"] == "too_large"
    big = await api.post(url, files={"file": ("b.png", PNG + bytes(10 * MB), "image/png")})
    assert big.status_code == 422
    assert big.json()["error"]["code"] == "too_large"
    assert await rows(server, MediaUpload) == 0

    ok = await api.post(url, files={"file": ("shelf.png", PNG, "image/png")})
    assert ok.status_code == 201
    with_text = await api.post(
        f"/api/v1/conversations/{conv_id}/messages",
        json={"text": "look", "attachment_ids": [ok.json()["id"]]},
    )
    assert with_text.status_code == 422
    assert with_text.json()["error"]["code"] == "file_not_sendable"

    assert await rows(server, Delivery) == 0
    assert await rows(server, Message) == 1
    assert await rows(server, Attachment) == 0
    assert (await sim.get("/_sim/sent", params={"app_id": APP_ID})).json() == []
    uploads = (await sim.get("/_sim/media", params={"app_id": APP_ID})).json()
    assert [m for m in uploads if m["origin"] == "upload"] == []
