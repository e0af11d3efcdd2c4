"""The sandbox customer phone sends a location and a photo on WhatsApp; both reach the inbox
through the simulator's signed webhooks (the photo downloaded and served to the agent); a
channel whose simulated customer only sends text offers no such buttons, and bad requests are
refused with a reason."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Owner, Server, eventually, sandbox_headers, sandbox_phone_url
from tests.ui.helpers import api_channel, new_page, whatsapp_channel

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


async def messages(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    convs = (await api.get("/api/v1/conversations")).json()["data"]
    out: list[dict[str, Any]] = []
    for c in convs:
        out += (await api.get(f"/api/v1/conversations/{c['id']}/messages")).json()["data"]
    return out


async def test_phone_sends_location_and_photo(
    server: Server,
    owner: Owner,
    api: httpx.AsyncClient,
    context: BrowserContext,
    tmp_path: Path,
) -> None:
    await whatsapp_channel(api, server)
    await api_channel(api, server, "phone-web")
    phone, seen = await new_page(context)
    await phone.set_viewport_size({"width": 480, "height": 800})
    await phone.goto(sandbox_phone_url(server))
    # The API channel's customer sends text only: no location or file buttons there.
    await phone.select_option("#channel", label="Website phone-web (api)")
    await expect(phone.locator("#share-location")).to_be_hidden()
    await expect(phone.locator("#attach")).to_be_hidden()

    await phone.select_option("#channel", label="WhatsApp (whatsapp)")
    await phone.fill("#user", "+4915199990000")
    await phone.dispatch_event("#user", "change")
    await expect(phone.locator("#share-location")).to_be_visible()
    await phone.click("#share-location")  # no geolocation permission: the fixed sample spot
    await expect(phone.locator("#thread .msg")).to_contain_text(["📍 Alexanderplatz, Berlin"])

    photo = tmp_path / "receipt.png"
    photo.write_bytes(PNG)
    await phone.fill("#text", "my <b>receipt</b>")
    await phone.set_input_files("#file", str(photo))
    await expect(phone.locator("#thread .msg")).to_have_count(2)

    async def arrived() -> list[dict[str, Any]] | None:
        msgs = await messages(api)
        kinds = sorted(m["kind"] for m in msgs)
        media = next((m for m in msgs if m["kind"] == "media"), None)
        stored = media and media["attachments"] and media["attachments"][0]["state"] == "stored"
        return msgs if kinds == ["location", "media"] and stored else None

    msgs = await eventually(arrived, timeout=30)
    media = next(m for m in msgs if m["kind"] == "media")
    (photo_att,) = media["attachments"]
    assert photo_att["kind"] == "image" and photo_att["mime_type"] == "image/png"
    assert media["body"] == "my <b>receipt</b>"  # the caption, kept as text
    download = await api.get(photo_att["download_url"])
    assert download.status_code == 200 and download.content == PNG
    location = next(m for m in msgs if m["kind"] == "location")
    assert location["body"] == "Alexanderplatz, Berlin"
    assert (location["extra"]["latitude"], location["extra"]["longitude"]) == (52.52, 13.405)
    assert seen.page_errors == []


async def test_phone_refuses_bad_requests(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    wa = await whatsapp_channel(api, server)
    web = await api_channel(api, server, "phone-bad")
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox", timeout=20
    ) as sb:
        base = {"channel_id": wa["id"], "user": "+4915199990001"}
        cases = [
            ({**base, "location": {"latitude": 123, "longitude": 0}}, "latitude"),
            ({**base, "location": {"latitude": "x"}}, "numeric"),
            (
                {
                    **base,
                    "file": {
                        "mime_type": "image/svg+xml",
                        "filename": "a.svg",
                        "data_b64": "PHN2Zz4=",
                    },
                },
                "not one of",
            ),
            (
                {
                    **base,
                    "file": {"mime_type": "image/png", "filename": "a.png", "data_b64": "%%%"},
                },
                "base64",
            ),
            (
                {
                    "channel_id": web["id"],
                    "user": "u1",
                    "location": {"latitude": 1, "longitude": 2},
                },
                "only send text",
            ),
        ]
        for body, reason in cases:
            resp = await sb.post("/phone/send", json=body)
            assert resp.status_code == 400, body
            assert reason in resp.json()["error"], resp.json()
        resp = await sb.post("/phone/send", content=b"not json")
        assert resp.status_code == 400
    # Nothing reached the inbox.
    assert (await api.get("/api/v1/conversations")).json()["data"] == []
