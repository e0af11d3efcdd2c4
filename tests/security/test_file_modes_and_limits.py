"""Local files are private, JSON answers are not sniffed, and JSON bodies are bounded before
they are parsed (issue #15, item 14). Real processes and real HTTP: `tidings migrate` and
`tidings serve` on a fresh data dir for the database, its WAL/SHM files and the generated
secret key; the test server and the Messenger simulator for a downloaded attachment."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests import factories
from tests.conftest import (
    TIDINGS,
    Owner,
    Server,
    free_port,
    start_tidings,
    tidings_env,
)
from tests.media.test_media_meta import PAGE_ID, PSID, thread


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_data_dir_database_and_secret_key_are_private(tmp_path: Path) -> None:
    data = tmp_path / "state" / "data"
    port = free_port()
    env = tidings_env(f"sqlite+aiosqlite:///{data / 'tidings.db'}", data, port)
    del env["TIDINGS_SECRET_KEY"]  # generated into the data dir, as `scripts/run` does
    subprocess.run([TIDINGS, "migrate"], env=env, check=True, capture_output=True)
    proc = await start_tidings(env)
    try:
        async with httpx.AsyncClient() as http:  # a write, so the WAL and SHM files exist
            await http.get(f"http://127.0.0.1:{port}/readyz")
        db = data / "tidings.db"
        files = [db, data / "secret_key", db.with_name("tidings.db-wal")]
        files += [p for p in [db.with_name("tidings.db-shm")] if p.exists()]
        assert {str(p.name): oct(mode(p)) for p in files} == {p.name: oct(0o600) for p in files}
        assert oct(mode(data)) == oct(0o700)
        assert oct(mode(data.parent)) == oct(0o700)  # created by Tidings too
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_downloaded_media_is_private(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    await factories.messenger_channel(
        api,
        server,
        name="Page",
        page_id=PAGE_ID,
        page_access_token="EAAB-page-token",
        app_secret="modes-secret",
    )
    async with factories.simulator(server, "messenger") as sim:
        sent = await sim.post(
            "/_sim/inbound",
            json={
                "account_id": PAGE_ID,
                "from": PSID,
                "type": "attachments",
                "attachments": [{"type": "image"}],
            },
        )
    assert sent.json()["status"] == 200, sent.text
    msgs = await thread(api, 1)
    assert msgs[0]["attachments"][0]["state"] == "stored"
    media = server.settings.data_dir / "media"
    paths = [media, *media.rglob("*")]
    stored = [p for p in paths if p.is_file()]
    assert stored
    assert {p: oct(mode(p)) for p in paths if p.is_dir()} == {
        p: oct(0o700) for p in paths if p.is_dir()
    }
    assert {p: oct(mode(p)) for p in stored} == {p: oct(0o600) for p in stored}


async def test_json_answers_carry_nosniff(server: Server, api: httpx.AsyncClient) -> None:
    for resp in (
        await api.get("/api/v1/conversations"),
        await api.get("/api/v1/conversations/999999"),
        await api.post("/api/v1/conversations/999999/messages", json={}),
        await api.get("/healthz"),
    ):
        assert resp.headers.get("x-content-type-options") == "nosniff", resp.request.url


async def big_chunks(total: int) -> AsyncIterator[bytes]:
    yield b'{"text":"'
    for _ in range(total // 65536):
        yield b"a" * 65536
    yield b'"}'


async def test_json_bodies_are_bounded_before_parsing(
    server: Server, owner: Owner, api: httpx.AsyncClient
) -> None:
    url = "/api/v1/conversations/999999/messages"
    # Declared too large: refused from the header, before the body is read.
    declared = await api.post(
        url, content=b'{"text":"' + b"a" * (5 * 1024 * 1024) + b'"}', headers=_json()
    )
    assert declared.status_code == 413, declared.text
    assert declared.json()["error"]["code"] == "too_large"
    # Chunked, no Content-Length: refused once the limit is passed.
    streamed = await api.post(url, content=big_chunks(3 * 1024 * 1024), headers=_json())
    assert streamed.status_code == 413, streamed.text
    # No content type: FastAPI would parse it as JSON, so it is bounded too.
    untyped = await api.post(url, content=b"[" * 10 + b"1" * (2 * 1024 * 1024) + b"]" * 10)
    assert untyped.status_code == 413
    # Deep nesting is a 400, not a 500 from the recursion limit.
    deep = await api.post(
        url, content=b'{"text":' + b"[" * 5000 + b"]" * 5000 + b"}", headers=_json()
    )
    assert deep.status_code == 400, deep.text
    # Under the limit, the route answers as usual (the conversation does not exist).
    small = await api.post(url, json={"text": "hi"})
    assert small.status_code == 404, small.text
    # Uploads keep their own limits: a 1.5 MB CSV is not refused by the JSON limit.
    csv = await api.post(
        "/api/v1/campaigns/999999/audience/csv",
        content=b"phone\n" + b"+14155550100\n" * 120_000,
        headers={"Content-Type": "text/csv"},
    )
    assert csv.status_code not in (413, 500), csv.text


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


async def test_bodies_of_any_type_are_bounded_under_the_api(
    server: Server, api: httpx.AsyncClient
) -> None:
    """Every route under /api/ but the uploads takes JSON; FastAPI reads a body whose type says
    otherwise in full before its 422, so the size limit cannot hang on the content type (a
    60 MB text/plain body was read into memory, signed in or not)."""
    url = "/api/v1/conversations/999999/messages"
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "image/png"):
        typed = {"Content-Type": content_type}
        declared = await api.post(url, content=b"a" * (2 * 1024 * 1024), headers=typed)
        assert declared.status_code == 413, (content_type, declared.text)
        streamed = await api.post(url, content=big_chunks(3 * 1024 * 1024), headers=typed)
        assert streamed.status_code == 413, (content_type, streamed.text)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        resp = await anonymous.post(
            url, content=big_chunks(3 * 1024 * 1024), headers={"Content-Type": "text/plain"}
        )
        assert resp.status_code == 413, resp.text
    # Under the limit, a body of another type is still only the route's 4xx.
    small = await api.post(url, content=b"hi", headers={"Content-Type": "text/plain"})
    assert 400 <= small.status_code < 500 and small.status_code != 413, small.text


async def test_a_multipart_body_to_a_json_route_is_bounded(api: httpx.AsyncClient) -> None:
    """FastAPI reads a multipart body sent to a JSON route in full too: only the upload routes
    (api/guards.py `_UPLOADS`) take big multipart bodies."""
    files = {"file": ("a.bin", b"a" * (2 * 1024 * 1024), "application/octet-stream")}
    resp = await api.post("/api/v1/conversations/999999/messages", files=files)
    assert resp.status_code == 413, resp.text
    upload = await api.post("/api/v1/conversations/999999/attachments", files=files)
    assert upload.status_code != 413, upload.text
