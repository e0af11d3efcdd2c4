"""The HTTP client Tidings talks to providers with.

Adapters use httpx's API (`rt.http`), but the connection pool underneath is aiohttp's
(`httpx-aiohttp`'s transport): on this class of machine httpx's own pool falls from ~740 to ~330
requests/s as concurrency grows from 1 to 32, while the same client on aiohttp's pool holds
~2,600/s (`bench/campaigns` records both). The delivery worker sends 32 at once, so the pool is
what bounds a campaign's send rate.

`TIDINGS_HTTP_POOL=httpx` switches back to httpx's own pool (for a platform where aiohttp is a
problem); the timeouts and limits are the same either way.
"""

from __future__ import annotations

import os

import httpx
from httpx_aiohttp import AiohttpTransport

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=30.0)


def pool_kind() -> str:
    kind = os.environ.get("TIDINGS_HTTP_POOL", "aiohttp").strip().lower()
    if kind not in ("aiohttp", "httpx"):
        raise ValueError(f"TIDINGS_HTTP_POOL must be 'aiohttp' or 'httpx', not {kind!r}")
    return kind


def outbound_client(timeout: httpx.Timeout = TIMEOUT) -> httpx.AsyncClient:
    """A client for provider APIs and integrators' webhooks (one per process, shared)."""
    if pool_kind() == "httpx":
        return httpx.AsyncClient(timeout=timeout, limits=LIMITS)
    return httpx.AsyncClient(timeout=timeout, transport=AiohttpTransport(limits=LIMITS))
