"""Telegram media end to end over real HTTP with the Bot API simulator: a customer's photo,
document and voice note are fetched (file_id -> getFile -> /file/bot<token>/<file_path>),
stored and served to agents; a file over the bots' 20 MB download limit is shown as failed;
uploaded files go out as multipart sendPhoto/sendDocument/sendAudio/sendVideo in the exact
shape; oversized or forbidden uploads are refused with nothing queued."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
from sqlalchemy import func, select

from tests import factories
from tests.conftest import Owner, Server, eventually
from tidings.storage.models import Attachment, Delivery, MediaUpload, Message

TOKEN = "7012345678:AAH-media_token_for_tests"
SECRET = "media-secret_token"
CHAT = 515151
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 8
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + b"1 0 obj <<>> endobj\n" * 50
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
MB = 1024 * 1024


async def setup(server: Server, api: httpx.AsyncClient) -> httpx.AsyncClient:
    config = {
        "bot_token": TOKEN,
        "secret_token": SECRET,
        "api_base_url": f"{server.url}/sandbox/telegram",
    }
    resp = await api.post(
        "/api/v1/channels", json={"kind": "telegram", "name": "Bot", "config": config}
    )
    assert resp.status_code == 201, resp.text
    return factories.simulator(server, "telegram", timeout=30)


async def customer_sends(sim: httpx.AsyncClient, **spec: Any) -> int:
    resp = await sim.post(
        "/_sim/inbound", json={"token": TOKEN, "chat_id": CHAT, "first_name": "Ana", **spec}
    )
    assert resp.status_code == 200, resp.text
    return int(resp.json()["message_id"])


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


async def calls(sim: httpx.AsyncClient, *methods: str) -> list[dict[str, Any]]:
    got = (await sim.get("/_sim/sent", params={"token": TOKEN})).json()
    return [c for c in got if c["method"] in methods]


async def test_inbound_photo_document_and_voice_are_downloaded_and_served(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = await setup(server, api)
    await customer_sends(
        sim, photo={"data_b64": base64.b64encode(JPEG).decode()}, caption="the receipt"
    )
    await customer_sends(
        sim,
        document={
            "file_name": "contract.pdf",
            "mime_type": "application/pdf",
            "data_b64": base64.b64encode(PDF).decode(),
        },
    )
    await customer_sends(sim, voice=True)
    # Over the 20 MB bots may download: getFile answers "file is too big".
    await customer_sends(
        sim,
        document={"file_name": "big.pdf", "mime_type": "application/pdf", "file_size": 25 * MB},
    )
    msgs = await settled(api, 4)
    atts = [m["attachments"][0] for m in msgs]
    assert [(a["kind"], a["state"], a["mime_type"]) for a in atts] == [
        ("image", "stored", "image/jpeg"),
        ("document", "stored", "application/pdf"),
        ("audio", "stored", "audio/ogg"),
        ("document", "failed", "application/pdf"),
    ]
    assert msgs[0]["body"] == "the receipt"
    assert (atts[0]["size"], atts[1]["size"]) == (len(JPEG), len(PDF))
    assert "20 MB" in atts[3]["error"]
    assert atts[3]["download_url"] is None

    photo = await api.get(f"/api/v1/attachments/{atts[0]['id']}")
    assert photo.status_code == 200
    assert photo.content == JPEG
    assert photo.headers["content-type"] == "image/jpeg"
    doc = await api.get(f"/api/v1/attachments/{atts[1]['id']}")
    assert doc.content == PDF
    assert doc.headers["content-disposition"].startswith("attachment;")
    async with httpx.AsyncClient(base_url=server.url) as anon:
        assert (await anon.get(f"/api/v1/attachments/{atts[0]['id']}")).status_code == 401

    # One getFile per file, each for the largest photo size / the file's own id; the too-big
    # one was refused by the simulator as by Telegram.
    got = await calls(sim, "getFile")
    assert len(got) == 4
    assert sorted(str(c.get("ok") or c.get("error_code")) for c in got) == [
        "400",
        "True",
        "True",
        "True",
    ]
    [photo_id] = [c["params"]["file_id"] for c in got if c["params"]["file_id"].startswith("PHOTO")]
    # The download link needs the right bot token in the path.
    path = await sim.post(f"/bot{TOKEN}/getFile", json={"file_id": photo_id})
    file_path = path.json()["result"]["file_path"]
    assert (await sim.get(f"/file/bot{TOKEN}/{file_path}")).content == JPEG
    assert (await sim.get(f"/file/bot7012345678:AAH-other/{file_path}")).status_code == 404


async def test_uploaded_files_go_out_as_multipart_sends(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = await setup(server, api)
    await customer_sends(sim, text="Send me the invoice and a photo, please")
    [first] = await settled(api, 1)
    conv_id = first["conversation_id"]
    url = f"/api/v1/conversations/{conv_id}/attachments"
    pdf = await api.post(url, files={"file": ("Invoice March.pdf", PDF, "application/pdf")})
    assert pdf.status_code == 201, pdf.text
    png = await api.post(url, files={"file": ("shelf.png", PNG, "image/png")})
    assert png.status_code == 201, png.text
    mp3 = await api.post(url, files={"file": ("jingle.mp3", b"ID3\x03" + bytes(500), "audio/mpeg")})
    assert mp3.status_code == 201, mp3.text

    for upload, text in ((pdf, "Here it is"), (png, None), (mp3, None)):
        body: dict[str, Any] = {"attachment_ids": [upload.json()["id"]]}
        if text:
            body["text"] = text
        sent = await api.post(f"/api/v1/conversations/{conv_id}/messages", json=body)
        assert sent.status_code == 201, sent.text

    async def three_sent() -> list[dict[str, Any]] | None:
        got = await calls(sim, "sendDocument", "sendPhoto", "sendAudio")
        return got if len(got) == 3 and all(c.get("ok") for c in got) else None

    got = await eventually(three_sent, timeout=30)
    by_method = {c["method"]: c["params"] for c in got}

    def uploaded_as(name: str, ctype: str, data: bytes) -> dict[str, Any]:
        return {
            "upload": name,
            "content_type": ctype,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    # Multipart form fields are strings on the wire.
    assert by_method["sendDocument"] == {
        "chat_id": str(CHAT),
        "caption": "Here it is",
        "document": uploaded_as("Invoice March.pdf", "application/pdf", PDF),
    }
    assert by_method["sendPhoto"] == {
        "chat_id": str(CHAT),
        "photo": uploaded_as("shelf.png", "image/png", PNG),
    }
    assert by_method["sendAudio"]["audio"]["content_type"] == "audio/mpeg"

    async def all_sent() -> list[dict[str, Any]] | None:
        msgs = [m for m in await messages(api) if m["direction"] == "out"]
        return msgs if len(msgs) == 3 and all(m["status"] == "sent" for m in msgs) else None

    out = await eventually(all_sent, timeout=30)
    assert all(m["provider_message_id"].startswith(f"{CHAT}:") for m in out)
    thread = (await sim.get("/_sim/conversations", params={"token": TOKEN, "chat_id": CHAT})).json()
    assert [t["text"] for t in thread if t["direction"] == "out"] == [
        "Here it is",
        "[photo shelf.png]",
        "[audio jingle.mp3]",
    ]


async def test_oversized_or_forbidden_uploads_are_refused_with_nothing_queued(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    sim = await setup(server, api)
    await customer_sends(sim, text="hello")
    [first] = await settled(api, 1)
    conv_id = first["conversation_id"]
    url = f"/api/v1/conversations/{conv_id}/attachments"
    # Photos go up to 10 MB over multipart.
    big = await api.post(url, files={"file": ("big.png", PNG + bytes(10 * MB), "image/png")})
    assert big.status_code == 422, big.text
    assert big.json()["error"]["code"] == "too_large"
    assert "10.0 MB" in big.json()["error"]["message"]
    exe = await api.post(
        url, files={"file": ("setup.exe", b"MZ\x90\x00", "application/x-msdownload")}
    )
    assert exe.status_code == 422
    assert exe.json()["error"]["code"] == "not_allowed"
    svg = await api.post(url, files={"file": ("x.svg", b"<svg onload=alert(1)>", "image/svg+xml")})
    assert svg.status_code == 422

    assert await rows(server, MediaUpload) == 0
    assert await rows(server, Delivery) == 0
    assert await rows(server, Message) == 1
    assert await rows(server, Attachment) == 0
    assert await calls(sim, "sendPhoto", "sendDocument", "sendAudio", "sendVideo") == []
