"""What an adapter says about an inbound attachment: where to download it (`MediaLocation`),
or why it cannot be had (`MediaUnavailable`). The media worker (`media/fetch.py`) does the
download; these types live next to the adapter protocol so that adapters need nothing from the
feature packages above them.

An adapter whose media needs more than a plain GET of the webhook's URL (WhatsApp: media id ->
`GET /{media-id}` -> short-lived URL -> download with the bearer token) implements
`MediaLocator`; any other adapter's attachments are fetched from their URL as given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import httpx


class MediaUnavailable(Exception):
    """The media cannot be fetched. `retriable`: try again later (provider hiccup)."""

    def __init__(self, reason: str, *, retriable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retriable = retriable


@dataclass(frozen=True, slots=True)
class MediaLocation:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    mime_type: str | None = None
    size: int | None = None
    # For providers that answer errors as HTTP 200 + JSON where the file should be (WeChat,
    # docs/channels/wechat.md#error-codes): reads that JSON (at most 64 KB) into the reason the
    # download failed.
    json_error: Callable[[bytes], MediaUnavailable] | None = field(default=None, compare=False)
    # The URL is the channel's configured API endpoint plus provider-given ids, not a URL taken
    # from a payload or an answer: fetched without the egress policy (module docstring).
    provider_endpoint: bool = False


@runtime_checkable
class MediaLocator(Protocol):
    async def locate_media(
        self,
        config: Any,
        provider_media_id: str | None,
        url: str | None,
        http: httpx.AsyncClient,
    ) -> MediaLocation:
        """Where to download one inbound attachment; raises MediaUnavailable."""
        ...


def cdn_location(url: str | None) -> MediaLocation:
    """A signed CDN URL fetched as is, without a token (Messenger and Instagram:
    docs/channels/messenger.md#attachment-upload, docs/channels/instagram.md#media-formats; Meta
    does not say a token is unneeded, it works without). They expire: fetch promptly."""
    if not url or not url.startswith(("https://", "http://")):
        raise MediaUnavailable("The provider gave no address to download this file from.")
    return MediaLocation(url)


# Word, Excel and PowerPoint files (the old formats and OOXML), which providers take as documents.
OFFICE_TYPES = (
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
)
