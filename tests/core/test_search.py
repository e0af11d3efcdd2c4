"""Message full-text search on both stores (PostgreSQL full-text, SQLite FTS5)."""

from __future__ import annotations

import httpx

from tests.conftest import Owner, Server, eventually
from tests.core.test_ingest import api_channel, msg, post_signed


async def test_full_text_search(server: Server, owner: Owner, api: httpx.AsyncClient) -> None:
    channel_id = await api_channel(api)
    texts = [
        "My parcel never arrived",
        "Where is my PARCEL? Tracking says delivered",
        "Can I change my delivery address?",
        "Café au lait — ça coûte combien?",
        "100% not a match for anything",
    ]
    batch = {"messages": [msg(f"s{i}", f"u{i}", t, 1_750_000_000 + i) for i, t in enumerate(texts)]}
    await post_signed(server, channel_id, batch)

    async def search(q: str) -> list[str]:
        resp = await api.get("/api/v1/messages/search", params={"q": q})
        assert resp.status_code == 200, resp.text
        return [m["body"] for m in resp.json()["data"]]

    async def indexed() -> bool:
        return len(await search("parcel")) == 2

    await eventually(indexed)
    # Case-insensitive, newest first, all words required, last word as a prefix.
    assert await search("parcel") == [texts[1], texts[0]]
    assert await search("parcel tracking") == [texts[1]]
    assert await search("deliv") == [texts[2], texts[1]]
    assert await search("never arr") == [texts[0]]
    assert await search("cafe") in ([texts[3]], [])  # accent folding differs per store
    assert await search("café") == [texts[3]]
    assert await search("nothing here at all") == []
    # Query syntax characters are text, not operators.
    assert await search('parcel" OR "address') == []
    assert await search("my* -parcel") == [texts[1], texts[0]]  # symbols are ignored
    blank = await api.get("/api/v1/messages/search", params={"q": "%%%"})
    assert blank.status_code == 422
    assert blank.json()["error"]["message"].startswith("q:")
