"""The browser code as native ES modules (docs/architecture.md, "Browser code"), over real HTTP:
each page loads exactly one module script from /static; every module it imports, transitively,
is served as JavaScript and revalidated (`Cache-Control: no-cache`), and exports each name that
is imported from it (Biome does not check this across files; a page whose modules do not link
stays blank); no module sets window globals or parses HTML."""

from __future__ import annotations

import re

import httpx

from tests.conftest import Owner, Server, sandbox_headers
from tests.web.test_web_access import signed_in

PAGES = {
    "/inbox": "/static/inbox.js",
    "/settings": "/static/settings.js",
    "/campaigns": "/static/campaigns.js",
    "/reports": "/static/reports.js",
    "/contacts": "/static/contacts.js",
    "/profile": "/static/profile.js",
    "/sandbox/phone": "/static/phone.js",
    "/api/v1/docs": "/static/api-docs.js",
}
IMPORT = re.compile(r'import\s*\{([^}]*)\}\s*from\s*"([^"]+)"')
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function|const|let|class)\s+([\w$]+)", re.M)


def resolve(base: str, relative: str) -> str:
    assert relative.startswith("./") or relative.startswith("../"), relative
    parts = base.split("/")[:-1]
    for piece in relative.split("/"):
        if piece == "..":
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(parts)


async def test_every_page_is_one_module_whose_imports_link(server: Server, owner: Owner) -> None:
    client = await signed_in(server, "owner@example.com", "correct horse battery")
    sources: dict[str, str] = {}
    try:
        for path, entry in PAGES.items():
            headers = sandbox_headers(server) if path.startswith("/sandbox") else {}
            page = await client.get(path, headers=headers)
            assert page.status_code == 200, path
            ours = re.findall(r'<script([^>]*)\bsrc="(/static/[^"]+)"', page.text)
            assert ours == [(' type="module" ', entry)], (path, ours)

            todo = [entry]
            while todo:
                url = todo.pop()
                if url in sources:
                    continue
                resp = await client.get(url)
                assert resp.status_code == 200, url
                assert "javascript" in resp.headers["content-type"], url
                assert resp.headers["cache-control"] == "no-cache", url
                assert resp.headers.get("etag") or resp.headers.get("last-modified"), url
                sources[url] = resp.text
                todo += [resolve(url, m.group(2)) for m in IMPORT.finditer(resp.text)]
    finally:
        await client.aclose()

    assert {"/static/ui.js", "/static/forms.js", "/static/inbox/list.js"} <= set(sources)
    for url, text in sources.items():
        for m in IMPORT.finditer(text):
            target = resolve(url, m.group(2))
            exported = set(EXPORT.findall(sources[target]))
            names = [n.strip().split(" as ")[0] for n in m.group(1).split(",") if n.strip()]
            missing = [n for n in names if n not in exported]
            assert not missing, f"{url} imports {missing} that {target} does not export"
        assert not re.search(r"\bwindow\.\w+\s*=[^=]", text), url
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, url
        assert not re.search(r"\beval\(|new Function\(", text), url


async def test_static_files_are_revalidated_not_guessed_fresh(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        css = await client.get("/static/tidings.css")
        assert css.status_code == 200
        assert css.headers["cache-control"] == "no-cache"
        again = await client.get(
            "/static/tidings.css", headers={"If-None-Match": css.headers["etag"]}
        )
        assert again.status_code == 304
