"""Media end to end over real HTTP with the WhatsApp simulator: an inbound image is downloaded
(media id -> GET /{media-id} -> bearer download), stored and served to agents only; files over
the limit or of a forbidden type are shown as such, never dropped; an outbound document is
uploaded to Graph and sent by id in the exact shape, and its statuses come back; an invalid
upload is refused with nothing stored or queued."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from sqlalchemy import func, select

from tests import factories
from tests.conftest import Owner, Server, eventually
from tests.security.test_authz_matrix import make_outsiders
from tidings.storage.models import Attachment, Delivery, MediaUpload, Message

PNID = "106540352242922"
TOKEN = "EAAG-media-test-token"
CUSTOMER = "16505551234"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"1 0 obj <<>> endobj\n" * 50


async def setup(server: Server, api: httpx.AsyncClient) -> httpx.AsyncClient:
    await factories.whatsapp_channel(
        api,
        server,
        phone_number_id=PNID,
        access_token=TOKEN,
        app_secret="wa-media-app-secret",
        display_phone_number="15550783881",
    )
    return factories.simulator(server, "whatsapp", timeout=30)


async def customer_sends(sim: httpx.AsyncClient, **spec: Any) -> str:
    resp = await sim.post("/_sim/inbound", json={"phone_number_id": PNID, "from": CUSTOMER, **spec})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == 200
    return str(resp.json()["id"])


async def messages(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    convs = (await api.get("/api/v1/conversations")).json()["data"]
    if not convs:
        return []
    return list((await api.get(f"/api/v1/conversations/{convs[0]['id']}/messages")).json()["data"])


async def settled(api: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    """The thread once `count` messages are there and no attachment is pending any more."""

    async def check() -> list[dict[str, Any]] | None:
        msgs = await messages(api)
        if len(msgs) < count:
            return None
        if any(a["state"] == "pending" for m in msgs for a in m["attachments"]):
            return None
        return msgs

    result: list[dict[str, Any]] = await eventually(check, timeout=20)
    return result


async def rows(server: Server, model: type) -> int:
    async with server.runtime.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_inbound_image_is_stored_and_served_to_agents_only(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = await setup(server, api)
    wamid = await customer_sends(
        sim,
        type="image",
        text="the broken part",
        mime_type="image/png",
        media_b64=base64.b64encode(PNG).decode(),
    )
    [msg] = await settled(api, 1)
    assert (msg["provider_message_id"], msg["kind"], msg["body"]) == (
        wamid,
        "media",
        "the broken part",
    )
    [att] = msg["attachments"]
    assert (att["state"], att["mime_type"], att["size"], att["error"]) == (
        "stored",
        "image/png",
        len(PNG),
        None,
    )
    assert att["download_url"] == f"/api/v1/attachments/{att['id']}"

    got = await api.get(att["download_url"])
    assert got.status_code == 200
    assert got.content == PNG
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith("inline;")
    assert got.headers["cache-control"].startswith("private")

    # The simulator's download URL only works with the bearer token
    # (docs/channels/whatsapp.md#media-limits-and-downloads).
    media = (await sim.get("/_sim/media")).json()
    assert [(m["origin"], m["file_size"]) for m in media] == [("customer", len(PNG))]
    meta = await sim.get(f"/v25.0/{media[0]['id']}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (await sim.get(meta.json()["url"])).status_code == 404
    with_token = await sim.get(meta.json()["url"], headers={"Authorization": f"Bearer {TOKEN}"})
    assert with_token.content == PNG

    # Nobody else: no credentials, another workspace's owner, an agent outside the inbox.
    tokens = await make_outsiders(server, owner)
    async with httpx.AsyncClient(base_url=server.url) as anon:
        assert (await anon.get(att["download_url"])).status_code == 401
        for token in tokens.values():
            denied = await anon.get(
                att["download_url"], headers={"Authorization": f"Bearer {token}"}
            )
            assert denied.status_code == 404, token
            assert PNG[:16] not in denied.content
        # Never under a public path either.
        assert (await anon.get(f"/static/{att['id']}")).status_code == 404


async def test_too_large_and_forbidden_media_are_shown_not_dropped(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = await setup(server, api)
    # WhatsApp images are limited to 5 MB (docs/channels/whatsapp.md#media-limits-and-downloads);
    # this one is 6 MB.
    await customer_sends(sim, type="image", mime_type="image/jpeg", media_size=6 * 1024 * 1024)
    await customer_sends(
        sim, type="document", mime_type="application/zip", filename="tools.zip", text="see zip"
    )
    await customer_sends(sim, type="audio")  # audio/ogg; codecs=opus: fine
    msgs = await settled(api, 3)
    states = sorted((m["attachments"][0]["state"], m["attachments"][0]["mime_type"]) for m in msgs)
    assert states == [
        ("not_allowed", "application/zip"),
        ("stored", "audio/ogg"),
        ("too_large", "image/jpeg"),
    ]
    by_state = {m["attachments"][0]["state"]: m["attachments"][0] for m in msgs}
    assert "5.0 MB" in by_state["too_large"]["error"]
    assert "application/zip" in by_state["not_allowed"]["error"]
    for state in ("too_large", "not_allowed"):
        assert by_state[state]["download_url"] is None
        refused = await api.get(f"/api/v1/attachments/{by_state[state]['id']}")
        assert refused.status_code == 404
    # The zip was judged on its declared type and never downloaded; nothing but the audio
    # file is in the store.
    media_dir = server.settings.data_dir / "media"
    stored = [p for p in media_dir.rglob("*") if p.is_file()]
    assert len(stored) == 1
    assert await rows(server, Message) == 3


async def test_outbound_document_is_uploaded_and_sent_in_graph_shape(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = await setup(server, api)
    await customer_sends(sim, text="Can you send the invoice?")
    [first] = await settled(api, 1)
    conv_id = first["conversation_id"]

    up = await api.post(
        f"/api/v1/conversations/{conv_id}/attachments",
        files={"file": ("Invoice <March>.pdf", PDF, "application/pdf")},
    )
    assert up.status_code == 201, up.text
    upload = up.json()
    assert (upload["mime_type"], upload["size"], upload["filename"]) == (
        "application/pdf",
        len(PDF),
        "Invoice March.pdf",
    )
    sent = await api.post(
        f"/api/v1/conversations/{conv_id}/messages",
        json={"text": "Here it is", "attachment_ids": [upload["id"]]},
    )
    assert sent.status_code == 201, sent.text
    out = sent.json()
    assert out["kind"] == "media"
    assert [(a["kind"], a["state"]) for a in out["attachments"]] == [("document", "stored")]

    async def read() -> dict[str, Any] | None:
        msgs = await messages(api)
        mine = [m for m in msgs if m["id"] == out["id"]]
        return mine[0] if mine and mine[0]["status"] == "read" else None

    await eventually(read, timeout=20)
    requests = [r for r in (await sim.get("/_sim/sent")).json() if "/messages" in r["path"]]
    [graph] = [r for r in requests if r["body"].get("type") == "document"]
    media = [m for m in (await sim.get("/_sim/media")).json() if m["origin"] == "upload"]
    assert len(media) == 1
    assert media[0]["mime_type"] == "application/pdf"
    assert media[0]["file_size"] == len(PDF)
    assert graph["body"]["document"] == {
        "id": media[0]["id"],
        "caption": "Here it is",
        "filename": "Invoice March.pdf",
    }
    assert graph["body"]["to"] == f"+{CUSTOMER}"
    # The upload was the multipart Graph call, before the send.
    uploads = [r for r in (await sim.get("/_sim/sent")).json() if r["path"].endswith("/media")]
    assert [u["response"]["status"] for u in uploads] == [200]
    assert uploads[0]["body"]["messaging_product"] == "whatsapp"
    # The same upload cannot be sent twice.
    again = await api.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"attachment_ids": [upload["id"]]}
    )
    assert again.status_code == 404


async def test_invalid_uploads_are_refused_with_nothing_queued(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = await setup(server, api)
    await customer_sends(sim, text="hello")
    [first] = await settled(api, 1)
    conv_id = first["conversation_id"]
    url = f"/api/v1/conversations/{conv_id}/attachments"

    zip_file = await api.post(url, files={"file": ("a.zip", b"PK\x03\x04", "application/zip")})
    assert zip_file.status_code == 422
    assert zip_file.json()["error"]["code"] == "not_allowed"
    svg = await api.post(url, files={"file": ("x.svg", b"<svg onload=alert(1)>", "image/svg+xml")})
    assert svg.status_code == 422
    big = await api.post(
        url, files={"file": ("big.png", b"\x89PNG" + b"\x00" * (5 * 1024 * 1024), "image/png")}
    )
    assert big.status_code == 422
    assert big.json()["error"]["code"] == "too_large"
    empty = await api.post(url, files={"file": ("e.pdf", b"", "application/pdf")})
    assert empty.status_code == 422
    unknown = await api.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"attachment_ids": [424242]}
    )
    assert unknown.status_code == 404
    nothing = await api.post(f"/api/v1/conversations/{conv_id}/messages", json={})
    assert nothing.status_code == 422

    assert await rows(server, MediaUpload) == 0
    assert await rows(server, Delivery) == 0
    assert await rows(server, Message) == 1
    assert await rows(server, Attachment) == 0
    assert not [r for r in (await sim.get("/_sim/sent")).json() if r["path"].endswith("/media")]


async def test_audio_with_text_is_refused_and_audio_alone_is_sent(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = await setup(server, api)
    await customer_sends(sim, text="send me the voice note")
    [first] = await settled(api, 1)
    conv_id = first["conversation_id"]
    voice = b"OggS\x00\x02" + b"\x00" * 400
    up = await api.post(
        f"/api/v1/conversations/{conv_id}/attachments",
        files={"file": ("note.ogg", voice, "audio/ogg")},
    )
    assert up.status_code == 201, up.text
    # "`audio` has no caption" (docs/channels/whatsapp.md#sending): the text would be lost, so it is
    # refused.
    both = await api.post(
        f"/api/v1/conversations/{conv_id}/messages",
        json={"text": "listen", "attachment_ids": [up.json()["id"]]},
    )
    assert both.status_code == 422
    assert both.json()["error"]["code"] == "file_not_sendable"
    assert await rows(server, Delivery) == 0
    alone = await api.post(
        f"/api/v1/conversations/{conv_id}/messages", json={"attachment_ids": [up.json()["id"]]}
    )
    assert alone.status_code == 201, alone.text

    async def graph_audio() -> list[dict[str, Any]]:
        sent = (await sim.get("/_sim/sent")).json()
        return [r["body"] for r in sent if r["body"].get("type") == "audio"]

    [body] = await eventually(graph_audio, timeout=20)
    [media] = [m for m in (await sim.get("/_sim/media")).json() if m["origin"] == "upload"]
    assert body["audio"] == {"id": media["id"]}
    assert media["mime_type"] == "audio/ogg"


async def test_hostile_file_names_are_sanitised_in_the_download_headers(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = await setup(server, api)
    nasty = '../../etc/pass"wd\r\nSet-Cookie: stolen=1;\u202ecod.pdf'
    await customer_sends(
        sim,
        type="document",
        mime_type="application/pdf",
        filename=nasty,
        media_b64=base64.b64encode(PDF).decode(),
    )
    await customer_sends(
        sim,
        type="document",
        mime_type="text/plain",
        filename="notes.html",
        media_b64=base64.b64encode(b"<script>alert(1)</script>").decode(),
    )
    msgs = await settled(api, 2)
    by_mime = {m["attachments"][0]["mime_type"]: m["attachments"][0] for m in msgs}
    got = await api.get(by_mime["application/pdf"]["download_url"])
    assert got.status_code == 200
    assert "set-cookie" not in got.headers
    disposition = got.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "\r" not in disposition and "\n" not in disposition and ".." not in disposition
    # Directories, quotes, control and bidi characters, ':' and ';' are gone, so nothing breaks
    # out of the quoted name or fakes another header.
    assert disposition == (
        'attachment; filename="passwdSet-Cookie stolen=1cod.pdf"; '
        "filename*=UTF-8''passwdSet-Cookie%20stolen%3D1cod.pdf"
    )
    # A text file named .html is still served as text/plain, as a download, never as a page.
    text = await api.get(by_mime["text/plain"]["download_url"])
    assert text.headers["content-type"].startswith("text/plain")
    assert text.headers["content-disposition"].startswith("attachment;")
    assert text.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in text.headers["content-security-policy"]
