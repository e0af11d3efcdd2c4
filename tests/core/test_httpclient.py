"""`httpclient.post`, the send paths' direct route to aiohttp's pool: the same answers and the
same exceptions as `http.post`, against a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from aiohttp import web

from tests.conftest import free_port
from tidings import httpclient


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {"got": body.decode(), "auth": request.headers.get("Authorization")},
        status=201,
        headers={"Retry-After": "7", "X-Fb-Trace-Id": "abc"},
    )


async def zipped(_request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(b'{"zipped": true}'),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )


async def slow(_request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.Response(text="late")


@pytest.fixture
async def site() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_post("/gzip", zipped)
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def hooked(client: httpx.AsyncClient) -> list[str]:
    """Requests that went through httpx's layers (its event hooks run there)."""
    seen: list[str] = []

    async def note(request: httpx.Request) -> None:
        seen.append(str(request.url))

    client.event_hooks["request"] = [note]
    return seen


async def test_same_answer_as_httpx_without_its_layers(site: str) -> None:
    async with httpclient.outbound_client() as http:
        assert isinstance(http, httpclient.OutboundClient) and http.pool is not None
        through_httpx = hooked(http)
        headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
        direct = await httpclient.post(http, f"{site}/echo", content=b'{"a":1}', headers=headers)
        layered = await http.post(f"{site}/echo", content=b'{"a":1}', headers=headers)
        assert through_httpx == [f"{site}/echo"]  # only the plain http.post
        for r in (direct, layered):
            assert r.status_code == 201
            assert r.json() == {"got": '{"a":1}', "auth": "Bearer t"}
            assert r.headers["retry-after"] == "7"
            assert r.headers["X-Fb-Trace-Id"] == "abc"
            assert r.request.method == "POST"
        assert direct.content == layered.content
        zipped_answer = await httpclient.post(http, f"{site}/gzip", content=b"", headers={})
        assert zipped_answer.json() == {"zipped": True}  # decoded once


async def test_errors_are_httpx_errors(site: str) -> None:
    async with httpclient.outbound_client() as http:
        with pytest.raises(httpx.TimeoutException):
            await httpclient.post(
                http,
                f"{site}/slow",
                content=b"x",
                headers={},
                timeout=httpx.Timeout(0.2, connect=1.0),
            )
        with pytest.raises(httpx.TransportError):
            await httpclient.post(
                http, f"http://127.0.0.1:{free_port()}/nobody", content=b"x", headers={}
            )


async def test_httpx_pool_and_proxies_take_the_httpx_path(
    site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_HTTP_POOL", "httpx")
    async with httpclient.outbound_client() as http:
        seen = hooked(http)
        r = await httpclient.post(http, f"{site}/echo", content=b"hi", headers={})
        assert orjson.loads(r.content)["got"] == "hi"
        assert seen == [f"{site}/echo"]
    monkeypatch.setenv("TIDINGS_HTTP_POOL", "aiohttp")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    async with httpclient.outbound_client() as http:
        assert isinstance(http, httpclient.OutboundClient) and http.pool is None
