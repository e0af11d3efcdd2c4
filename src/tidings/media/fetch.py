"""Fetching inbound media from a provider, checked against the channel's limits on the way in.

An adapter says where its media is by implementing `MediaLocator` (WhatsApp: media id ->
`GET /{media-id}` -> short-lived URL -> download with the bearer token; Messenger, Instagram
and Viber: the webhook's CDN URL as given, `cdn_location`); only such adapters' attachments
are queued for this worker (`actions/inbound.py`, `ingest/messages.py`).

Downloads go through the egress policy (tidings/egress.py): a URL from a webhook payload or
from a provider's answer must not reach internal addresses. A locator whose URL is built on the
channel's configured API endpoint (`provider_endpoint=True`: Telegram's file API, WeChat's
media/get) talks to the provider as the adapter's other calls do.
"""

from __future__ import annotations

import asyncio
import mimetypes
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from tidings.channels.base import Capabilities
from tidings.channels.media import MediaLocation, MediaLocator, MediaUnavailable
from tidings.egress import Egress, EgressRefused
from tidings.media import limits
from tidings.media.store import MediaStore, TooLarge, new_key

TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# A whole download, however slowly the far end dribbles it out.
DEADLINE_SECONDS = 300.0
# The most read for a type without a per-channel cap.
MAX_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    state: str  # limits.STORED | TOO_LARGE | NOT_ALLOWED
    reason: str | None = None
    storage_key: str | None = None
    mime_type: str | None = None
    size: int | None = None


async def fetch(
    *,
    adapter: Any,
    config: Any,
    workspace_id: int,
    provider_media_id: str | None,
    url: str | None,
    declared_mime: str | None,
    http: httpx.AsyncClient,
    egress: Egress,
    store: MediaStore,
) -> Fetched:
    """Download one attachment into the store, or say why not. Raises MediaUnavailable."""
    caps: Capabilities = adapter.capabilities
    label: str = adapter.label
    declared = limits.normalise_mime(declared_mime)
    if declared is not None:
        verdict = limits.judge(caps, label, declared, None)
        if verdict.state != limits.STORED:
            # Known from the webhook already: do not even download it.
            return Fetched(verdict.state, verdict.reason, mime_type=declared)
    if isinstance(adapter, MediaLocator):
        where = await adapter.locate_media(config, provider_media_id, url, http)
    elif url and url.startswith(("https://", "http://")):
        where = MediaLocation(url)
    else:
        raise MediaUnavailable("The provider gave no address to download this file from.")
    mime = limits.normalise_mime(where.mime_type) or declared
    if mime is not None:
        verdict = limits.judge(caps, label, mime, where.size)
        if verdict.state != limits.STORED:
            return Fetched(verdict.state, verdict.reason, mime_type=mime, size=where.size)
    if where.provider_endpoint:
        opened = http.stream("GET", where.url, headers=where.headers, timeout=TIMEOUT)
    else:
        opened = egress.stream("GET", where.url, headers=where.headers, timeout=TIMEOUT)
    try:
        async with asyncio.timeout(DEADLINE_SECONDS), opened as resp:
            if resp.status_code in (429,) or resp.status_code >= 500:
                raise MediaUnavailable(
                    f"The provider answered {resp.status_code}; will retry.", retriable=True
                )
            if resp.status_code != 200:
                # Meta's media URLs expire (WhatsApp: 5 minutes, CDN URLs: signed,
                # docs/channels/whatsapp.md#media-limits-and-downloads,
                # docs/channels/messenger.md#attachment-upload).
                raise MediaUnavailable(
                    f"The provider refused the download ({resp.status_code}); the link may "
                    "have expired."
                )
            if where.json_error is not None and "json" in resp.headers.get("content-type", ""):
                body = b""
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > 65536:
                        break
                raise where.json_error(body)
            mime = mime or limits.normalise_mime(resp.headers.get("content-type"))
            mime = mime or limits.normalise_mime(mimetypes.guess_type(urlsplit(where.url).path)[0])
            length = resp.headers.get("content-length")
            size = int(length) if length and length.isdigit() else None
            verdict = limits.judge(caps, label, mime, size)
            if verdict.state != limits.STORED or mime is None:
                return Fetched(verdict.state, verdict.reason, mime_type=mime, size=size)
            cap = limits.max_bytes(caps.media_types, mime) or MAX_BYTES
            try:
                stored = await store.put(new_key(workspace_id), resp.aiter_bytes(), max_bytes=cap)
            except TooLarge:
                verdict = limits.judge(caps, label, mime, cap + 1)
                reason = verdict.reason or f"The file is larger than {cap // 1048576} MB."
                return Fetched(limits.TOO_LARGE, reason, mime_type=mime)
    except EgressRefused as exc:
        raise MediaUnavailable(f"Not fetched: {exc.reason}") from None
    except (httpx.TimeoutException, TimeoutError):
        raise MediaUnavailable("The download timed out; will retry.", retriable=True) from None
    except httpx.TransportError:
        raise MediaUnavailable(
            "Could not reach the provider; will retry.", retriable=True
        ) from None
    return Fetched(limits.STORED, None, stored.key, mime, stored.size)
