"""Media in the agent inbox, in a real browser: image/audio/document previews served from the
agent-only attachment endpoint, "too large / not allowed" shown in the thread, escaped file
names and captions; the composer's file button checks the channel's limits before uploading
and sends the file through the simulator."""

from __future__ import annotations

import base64
import re
import struct
import zlib

import httpx
from playwright.async_api import BrowserContext, expect
from sqlalchemy import func, select

from tests.conftest import Owner, Server, eventually, sandbox_headers
from tests.ui.helpers import new_page, screenshot, sign_in, wait_conversations, whatsapp_channel
from tidings.storage.models import MediaUpload

PNID = "100000000000077"
XSS_NAME = '<img src=x onerror=alert("name")>.pdf'
XSS_CAPTION = "<script>alert('caption')</script> look"


def png(width: int = 160, height: int = 90) -> bytes:
    """A real (tiny, red) PNG, so the browser can decode the preview."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def customer(server: Server, **spec: object) -> None:
    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/whatsapp", timeout=20
    ) as sim:
        resp = await sim.post(
            "/_sim/inbound", json={"phone_number_id": PNID, "from": "4915112345678", **spec}
        )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == 200, resp.text


async def settled(api: httpx.AsyncClient, conv_id: int, count: int) -> None:
    async def check() -> bool:
        msgs = (await api.get(f"/api/v1/conversations/{conv_id}/messages")).json()["data"]
        atts = [a for m in msgs for a in m["attachments"]]
        return len(msgs) >= count and all(a["state"] != "pending" for a in atts)

    await eventually(check, timeout=20)


async def test_media_previews_are_served_to_agents_and_escaped(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await whatsapp_channel(api, server)
    image = png()
    await customer(
        server,
        type="image",
        mime_type="image/png",
        media_b64=base64.b64encode(image).decode(),
        text=XSS_CAPTION,
    )
    await customer(
        server,
        type="document",
        mime_type="application/pdf",
        filename=XSS_NAME,
        media_b64=base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode(),
    )
    await customer(server, type="audio")
    await customer(server, type="image", mime_type="image/jpeg", media_size=6 * 1024 * 1024)
    [conv] = await wait_conversations(api, 1)
    await settled(api, conv["id"], 4)

    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.locator("#list .conv").first.click()
    thread = page.locator("#messages")

    img = thread.locator("figure.att-image img")
    await expect(img).to_have_count(1)
    await expect(img).to_have_attribute("src", re.compile(r"^/api/v1/attachments/\d+$"))
    # The browser fetched and decoded it with the agent's session.
    width = await eventually(lambda: img.evaluate("i => i.complete && i.naturalWidth"))
    assert width == 160
    # The caption (WhatsApp's message text) is shown once, as text.
    await expect(thread.locator(".msg:has(figure.att-image) .body")).to_have_text(XSS_CAPTION)
    await expect(thread.locator("figure.att-image figcaption")).to_have_count(0)

    doc = thread.locator("figure.att-file a")
    await expect(doc).to_have_text(XSS_NAME)
    await expect(thread.locator("figure.att-file .att-kind")).to_have_text("pdf")
    await expect(doc).to_have_attribute("download", XSS_NAME)
    await expect(thread.locator("figure.att-audio audio")).to_have_count(1)
    problem = thread.locator(".att-problem")
    await expect(problem).to_have_attribute("data-state", "too_large")
    await expect(problem).to_contain_text("Attachment too large")
    await expect(problem).to_contain_text("5.0 MB")
    await screenshot(page, "thread-media")

    # The session may fetch the file; a visitor without one may not.
    src = await img.get_attribute("src")
    assert src is not None
    mine = await page.request.get(f"{server.url}{src}")
    assert mine.status == 200
    assert await mine.body() == image
    async with httpx.AsyncClient() as anon:
        assert (await anon.get(f"{server.url}{src}")).status_code == 401

    # Nothing in the names or captions ran.
    assert seen.dialogs == []
    assert seen.page_errors == [] and seen.csp_violations == []
    assert await page.locator("#messages script, #messages img[src='x']").count() == 0


async def test_composer_checks_limits_before_upload_and_sends_a_file(
    server: Server, owner: Owner, api: httpx.AsyncClient, context: BrowserContext
) -> None:
    await whatsapp_channel(api, server)
    await customer(server, text="Could you send me the manual?")
    [conv] = await wait_conversations(api, 1)
    page, seen = await new_page(context)
    await sign_in(page, server, "owner@example.com")
    await page.locator("#list .conv").first.click()
    await expect(page.locator("#messages .msg.in")).to_have_count(1)

    # Too large for WhatsApp (images: 5 MB): refused in the page, nothing uploaded.
    await page.set_input_files(
        "#c-file",
        {"name": "huge.png", "mimeType": "image/png", "buffer": b"\x89PNG" + b"\0" * 6_000_000},
    )
    await expect(page.locator("#c-error")).to_contain_text("allows 5.0 MB")
    await page.set_input_files(
        "#c-file", {"name": "x.svg", "mimeType": "image/svg+xml", "buffer": b"<svg/>"}
    )
    await expect(page.locator("#c-error")).to_contain_text("does not allow image/svg+xml")
    async with server.runtime.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(MediaUpload)) == 0

    manual = b"%PDF-1.4\n" + b"manual " * 200
    await page.set_input_files(
        "#c-file", {"name": "manual.pdf", "mimeType": "application/pdf", "buffer": manual}
    )
    chip = page.locator("#c-file-chip")
    await expect(chip).to_contain_text("attached")
    await expect(chip).to_contain_text("manual.pdf")
    await expect(page.locator("#c-error")).to_have_text("")
    await page.fill("#c-text", "Here is the manual")
    await page.click("#c-send")

    out = page.locator("#messages .msg.out")
    await expect(out).to_have_count(1)
    await expect(out.locator("figure.att-file a")).to_have_text("manual.pdf")
    await expect(out.locator(".tick")).to_have_attribute("data-status", "read")
    await expect(chip).to_be_hidden()

    async with httpx.AsyncClient(
        headers=sandbox_headers(server), base_url=f"{server.url}/sandbox/whatsapp", timeout=20
    ) as sim:
        sent = (await sim.get("/_sim/sent")).json()
        media = (await sim.get("/_sim/media")).json()
    [upload] = [m for m in media if m["origin"] == "upload"]
    assert upload["file_size"] == len(manual)
    [doc] = [r["body"] for r in sent if r["body"].get("type") == "document"]
    assert doc["document"] == {
        "id": upload["id"],
        "caption": "Here is the manual",
        "filename": "manual.pdf",
    }
    assert conv["id"] > 0
    assert seen.page_errors == [] and seen.console_errors == [] and seen.csp_violations == []
