"""Customers' profile pictures (issue 18 item 9): served from Tidings' own origin through the
egress policy, only images, only to agents who can see the contact; the list row carries the
same-origin address, and a contact without a picture (or a refused one) is a 404."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.conftest import Owner, Server
from tests.ui.helpers import api_channel, customer_says, wait_conversations
from tidings.storage.models import Contact

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


class _Pictures(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        kind, body = {
            "/me.png": ("image/png", PNG),
            "/page.html": ("text/html", b"<script>alert(1)</script>"),
        }.get(self.path, ("text/plain", b""))
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def pictures() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Pictures)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


async def _set_picture(server: Server, contact_id: int, url: str | None) -> None:
    async with server.runtime.db.write() as s:
        contact = await s.get_one(Contact, contact_id)
        contact.attributes = {**(contact.attributes or {}), "picture_url": url}


async def test_picture_is_served_from_our_origin(
    server: Server, owner: Owner, api: httpx.AsyncClient, pictures: str
) -> None:
    await api_channel(api, server, "pic")
    await customer_says(server, "pic", "cust-1", "hi", name="Lia")
    conv = (await wait_conversations(api, 1))[0]
    cid = conv["contact_id"]
    assert (await api.get(f"/api/v1/contacts/{cid}/picture")).status_code == 404
    row = (await api.get("/api/v1/ui/conversations")).json()["data"][0]
    assert row["contact_picture_url"] is None

    await _set_picture(server, cid, f"{pictures}/me.png")
    row = (await api.get("/api/v1/ui/conversations")).json()["data"][0]
    assert row["contact_picture_url"] == f"/api/v1/contacts/{cid}/picture"
    got = await api.get(row["contact_picture_url"])
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"

    # Not an image, not there, or not an http(s) URL: a 404, and the page shows initials.
    for url in (f"{pictures}/page.html", f"{pictures}/gone.png", "javascript:alert(1)"):
        await _set_picture(server, cid, url)
        assert (await api.get(f"/api/v1/contacts/{cid}/picture")).status_code == 404, url
    async with httpx.AsyncClient(base_url=server.url) as anon:
        assert (await anon.get(f"/api/v1/contacts/{cid}/picture")).status_code == 401
