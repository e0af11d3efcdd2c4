"""`/api/v1/docs` is served from our origin under the app's CSP (issue #15, item 13): no CDN,
no inline script; Swagger UI's assets come from a pinned package. Over real HTTP, then in
Debian's chromium (as tests/ui does): the explorer renders the API with no CSP violation."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import BrowserContext, expect

from tests.conftest import Server
from tests.ui.helpers import browser, context, new_page

__all__ = ["browser", "context"]


async def test_docs_page_has_the_app_csp_and_only_local_assets(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
        page = await http.get("/api/v1/docs")
        assert page.status_code == 200
        csp = page.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "default-src 'none'" in csp, csp
        assert "unsafe-inline" not in csp
        assert page.headers.get("x-content-type-options") == "nosniff"
        html = page.text
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
        assert scripts, html
        for attrs, inline in scripts:
            assert inline.strip() == "", "inline script"
            assert re.search(r'src="/[^/]', attrs), attrs  # same origin, not //cdn…
        assets = re.findall(r'(?:src|href)="(/[^"]+)"', html)
        assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html)
        assert len(assets) >= 3, assets
        for path in assets:
            got = await http.get(path)
            assert got.status_code == 200, path
            assert got.headers["content-type"].split(";")[0] in (
                "text/css",
                "text/javascript",
                "application/javascript",
            ), (path, got.headers["content-type"])
        openapi = re.search(r'data-openapi-url="([^"]+)"', html)
        assert openapi is not None
        assert (await http.get(openapi.group(1))).json()["info"]["title"] == "Tidings API"


async def test_docs_render_in_a_browser_without_csp_violations(
    server: Server, context: BrowserContext
) -> None:
    page, seen = await new_page(context)
    await page.goto(f"{server.url}/api/v1/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Tidings API")
    await expect(page.locator(".opblock").first).to_be_visible()
    assert seen.csp_violations == []
    assert seen.page_errors == []
