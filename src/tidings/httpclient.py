"""The HTTP client Tidings talks to providers with.

Adapters use httpx's API (`rt.http`), but the connection pool underneath is aiohttp's
(`httpx-aiohttp`'s transport): on this class of machine httpx's own pool falls from ~740 to ~330
requests/s as concurrency grows from 1 to 32, while the same client on aiohttp's pool holds
~2,600/s (`bench/campaigns` records both). The delivery worker sends 32 at once, so the pool is
what bounds a campaign's send rate.

The send paths that run once per message (`post`) go one step further: straight to aiohttp's
session, skipping httpx's request building, cookie jar, auth and redirect layers (as much CPU
as the request itself: aiohttp alone does ~5,500 requests/s here, through httpx's API ~2,600),
and hand the adapter an ordinary `httpx.Response`, with aiohttp's errors mapped to httpx's.

`TIDINGS_HTTP_POOL=httpx` switches back to httpx's own pool (for a platform where aiohttp is a
problem); the timeouts and limits are the same either way.
"""

from __future__ import annotations

import functools
import os
import urllib.request
from collections.abc import Mapping

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=30.0)


def pool_kind() -> str:
    kind = os.environ.get("TIDINGS_HTTP_POOL", "aiohttp").strip().lower()
    if kind not in ("aiohttp", "httpx"):
        raise ValueError(f"TIDINGS_HTTP_POOL must be 'aiohttp' or 'httpx', not {kind!r}")
    return kind


class OutboundClient(httpx.AsyncClient):
    """httpx's client on aiohttp's pool, which `post` may bypass (see the module docstring).
    `pool` is None where it must not: httpx's own pool, or proxies configured in the
    environment (httpx routes those; the direct path would not)."""

    pool: AiohttpTransport | None = None


def outbound_client(
    timeout: httpx.Timeout = TIMEOUT, limits: httpx.Limits = LIMITS
) -> httpx.AsyncClient:
    """A client for provider APIs and integrators' webhooks (one per process, shared)."""
    if pool_kind() == "httpx":
        return httpx.AsyncClient(timeout=timeout, limits=limits)
    transport = AiohttpTransport(limits=limits)
    client = OutboundClient(timeout=timeout, transport=transport)
    if not urllib.request.getproxies():
        client.pool = transport
    return client


async def post(
    http: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: httpx.Timeout | None = None,  # noqa: ASYNC109 (httpx's per-request timeout)
) -> httpx.Response:
    """POST `content` to an absolute `url` and read the whole answer, as `http.post` would:
    the same response type and the same exceptions (`httpx.TimeoutException`,
    `httpx.TransportError`), at about half the CPU on aiohttp's pool."""
    pool = http.pool if isinstance(http, OutboundClient) else None
    if pool is None or not url.startswith(("https://", "http://")):
        return await http.post(
            url, content=content, headers=headers, timeout=timeout or http.timeout
        )
    if not isinstance(pool.client, aiohttp.ClientSession):
        pool.client = pool.get_client()
    t = timeout or http.timeout
    with map_aiohttp_exceptions():
        async with pool.client.post(
            url,
            data=content,
            headers=dict(headers),
            allow_redirects=False,
            auto_decompress=False,  # httpx.Response decodes, as on the httpx path
            timeout=aiohttp.ClientTimeout(sock_connect=t.connect, sock_read=t.read, connect=t.pool),
        ) as answer:
            body = await answer.read()
    return httpx.Response(
        answer.status,
        headers=answer.raw_headers,
        content=body,
        request=_request_for(url),
    )


@functools.lru_cache(maxsize=512)
def _request_for(url: str) -> httpx.Request:
    """The `request` a response names (for `raise_for_status` and error messages). Parsing the
    URL was a sixth of a send's CPU; a send path posts to a handful of URLs, so they are kept."""
    return httpx.Request("POST", url)
