"""Messenger and Instagram inbound media over real HTTP: attachments are fetched from their
(simulated) Meta CDN URL without a token, stored and served to agents; an expired CDN link
leaves a visible "could not be downloaded" state; shared posts stay links."""

from __future__ import annotations

from typing import Any

import httpx

from tests import factories
from tests.conftest import Owner, Server, eventually

PAGE_ID = "104857600000001"
PSID = "6543210987654321"
IG_ID = "17841400000000001"
IGSID = "5432109876543210"


async def thread(api: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        convs = (await api.get("/api/v1/conversations")).json()["data"]
        if not convs:
            return None
        msgs = (await api.get(f"/api/v1/conversations/{convs[0]['id']}/messages")).json()["data"]
        if len(msgs) < count:
            return None
        if any(a["state"] == "pending" for m in msgs for a in m["attachments"]):
            return None
        return list(msgs)

    result: list[dict[str, Any]] = await eventually(check, timeout=20)
    return result


async def test_messenger_cdn_media_is_stored_and_an_expired_link_is_shown(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await factories.messenger_channel(
        api,
        server,
        name="Page",
        page_id=PAGE_ID,
        page_access_token="EAAB-page-token",
        app_secret="messenger-media-secret",
    )
    sim = factories.simulator(server, "messenger")
    sent = await sim.post(
        "/_sim/inbound",
        json={
            "account_id": PAGE_ID,
            "from": PSID,
            "type": "attachments",
            "attachments": [{"type": "image"}, {"type": "file"}],
        },
    )
    assert sent.json()["status"] == 200, sent.text
    expired = f"{server.url}/sandbox/messenger/cdn/gone?oh=sim&oe=0"
    sent = await sim.post(
        "/_sim/inbound",
        json={
            "account_id": PAGE_ID,
            "from": PSID,
            "type": "attachments",
            "attachments": [{"type": "video", "payload": {"url": expired}}],
        },
    )
    assert sent.json()["status"] == 200, sent.text

    msgs = await thread(api, 2)
    got = sorted((a["kind"], a["state"], a["mime_type"]) for m in msgs for a in m["attachments"])
    assert got == [
        ("file", "stored", "application/pdf"),
        ("image", "stored", "image/jpeg"),
        ("video", "failed", None),
    ]
    atts = {a["kind"]: a for m in msgs for a in m["attachments"]}
    assert "expired" in atts["video"]["error"]
    image = await api.get(atts["image"]["download_url"])
    assert image.status_code == 200
    assert image.content.startswith(b"\xff\xd8\xff")
    assert image.headers["content-disposition"].startswith("inline;")
    # A PDF is never shown inline: it is offered as a download.
    pdf = await api.get(atts["file"]["download_url"])
    assert pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("attachment;")
    async with httpx.AsyncClient(base_url=server.url) as anon:
        assert (await anon.get(atts["image"]["download_url"])).status_code == 401


async def test_instagram_image_is_stored_and_a_shared_post_stays_a_link(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await factories.instagram_channel(
        api,
        server,
        flavour="instagram_login",
        instagram_account_id=IG_ID,
        access_token="IGAA-token",
        app_secret="ig-media-secret",
        verify_token="verify-me",
    )
    sim = factories.simulator(server, "instagram")
    for attachments in (
        [{"type": "image"}],
        [{"type": "share", "payload": {"url": "https://www.instagram.com/p/abc/"}}],
    ):
        sent = await sim.post(
            "/_sim/inbound",
            json={
                "account_id": IG_ID,
                "from": IGSID,
                "type": "attachments",
                "attachments": attachments,
            },
        )
        assert sent.json()["status"] == 200, sent.text
    msgs = await thread(api, 2)
    got = sorted((a["kind"], a["state"]) for m in msgs for a in m["attachments"])
    # The share is a link to a post: never fetched (and never from outside loopback here).
    assert got == [("image", "stored"), ("share", None)]


async def test_messenger_sends_an_uploaded_image_by_attachment_id(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await factories.messenger_channel(
        api,
        server,
        name="Page",
        page_id=PAGE_ID,
        page_access_token="EAAB-page-token",
        app_secret="messenger-media-secret",
    )
    sim = factories.simulator(server, "messenger")
    sent = await sim.post(
        "/_sim/inbound", json={"account_id": PAGE_ID, "from": PSID, "text": "photo please"}
    )
    assert sent.json()["status"] == 200, sent.text
    [first] = await thread(api, 1)
    conv_id = first["conversation_id"]
    png = b"\x89PNG\r\n\x1a\n" + b"\x01" * 300
    up = await api.post(
        f"/api/v1/conversations/{conv_id}/attachments",
        files={"file": ("shelf.png", png, "image/png")},
    )
    assert up.status_code == 201, up.text
    # The Send API takes text or an attachment, not both: refused before anything is queued.
    both = await api.post(
        f"/api/v1/conversations/{conv_id}/messages",
        json={"text": "here", "attachment_ids": [up.json()["id"]]},
    )
    assert both.status_code == 422
    assert both.json()["error"]["code"] == "file_not_sendable"
    reply = await api.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"attachment_ids": [up.json()["id"]]}
    )
    assert reply.status_code == 201, reply.text

    async def delivered() -> dict[str, Any] | None:
        msgs = await thread(api, 2)
        mine = [m for m in msgs if m["id"] == reply.json()["id"]]
        return mine[0] if mine and mine[0]["status"] in ("delivered", "read") else None

    await eventually(delivered, timeout=20)
    uploads = (await sim.get("/_sim/attachments")).json()
    assert [(u["type"], u["mime_type"], u["size"]) for u in uploads] == [
        ("image", "image/png", len(png))
    ]
    sends = [
        r
        for r in (await sim.get("/_sim/sent")).json()
        if r["path"].endswith("/messages") and "message" in r["body"]
    ]
    [send] = [s for s in sends if "attachment" in s["body"]["message"]]
    assert send["body"]["message"]["attachment"] == {
        "type": "image",
        "payload": {"attachment_id": uploads[0]["attachment_id"]},
    }
    assert send["body"]["recipient"] == {"id": PSID}
