"""WhatsApp media over the Cloud API (docs/channels/whatsapp.md#media-limits-and-downloads).

Inbound: a webhook carries a media `id`; `GET /{version}/{media-id}` answers with a `url` that
is valid for 5 minutes, and that URL must be fetched with the same bearer token (without it the
download fails). Outbound: `POST /{version}/{phone-number-id}/media` (multipart:
`messaging_product=whatsapp`, `file`, `type`) returns `{"id": ...}` to send by id, which Meta
recommends over links.
"""

from __future__ import annotations

import logging

import httpx
import orjson

from tidings.channels.base import Permanent, Retriable
from tidings.channels.media import MediaLocation, MediaUnavailable
from tidings.channels.meta_common import graph_error
from tidings.channels.whatsapp.config import WhatsAppConfig

log = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(60.0, connect=5.0)


def _auth(config: WhatsAppConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.access_token}"}


def _graph_message(response: httpx.Response) -> str:
    error = graph_error(response)
    if error.message is None:
        return f"HTTP {response.status_code}"
    return f"{error.message} (code {error.code})"


async def locate(
    config: WhatsAppConfig, media_id: str | None, http: httpx.AsyncClient
) -> MediaLocation:
    if not media_id or not media_id.isascii() or not media_id.isalnum():
        # The webhook's own `url` also needs the token; without an id there is no fresh URL.
        raise MediaUnavailable("The WhatsApp message carries no media id.")
    url = f"{config.api_base_url}/{config.api_version}/{media_id}"
    try:
        response = await http.get(
            url,
            params={"phone_number_id": config.phone_number_id},
            headers=_auth(config),
            timeout=TIMEOUT,
        )
    except httpx.TimeoutException:
        raise MediaUnavailable("WhatsApp did not answer in time.", retriable=True) from None
    except httpx.TransportError:
        raise MediaUnavailable("Could not reach WhatsApp.", retriable=True) from None
    if response.status_code >= 500 or response.status_code == 429:
        raise MediaUnavailable(_graph_message(response), retriable=True)
    if not response.is_success:
        # Webhook media ids can be downloaded for 7 days
        # (docs/channels/whatsapp.md#media-limits-and-downloads); after that, or with a revoked
        # token, Graph answers with an error envelope.
        raise MediaUnavailable(f"WhatsApp refused: {_graph_message(response)}")
    try:
        doc = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise MediaUnavailable("WhatsApp answered with something that is not JSON.") from None
    media_url = doc.get("url") if isinstance(doc, dict) else None
    if not isinstance(media_url, str) or not media_url.startswith(("https://", "http://")):
        raise MediaUnavailable("WhatsApp gave no download URL for this media.")
    size = doc.get("file_size")
    # `file_size` is documented as a string of digits; accept a number too.
    size_int = int(size) if isinstance(size, str) and size.isdigit() else None
    if isinstance(size, int) and not isinstance(size, bool):
        size_int = size
    mime = doc.get("mime_type")
    return MediaLocation(
        url=media_url,
        headers=_auth(config),
        mime_type=mime if isinstance(mime, str) else None,
        size=size_int,
    )


async def upload(
    config: WhatsAppConfig,
    data: bytes,
    mime_type: str,
    filename: str | None,
    http: httpx.AsyncClient,
) -> str | Retriable | Permanent:
    """Upload a file; the media id, or an outcome for the message."""
    url = f"{config.api_base_url}/{config.api_version}/{config.phone_number_id}/media"
    try:
        response = await http.post(
            url,
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename or "file", data, mime_type)},
            headers=_auth(config),
            timeout=TIMEOUT,
        )
    except httpx.TimeoutException:
        return Retriable("WhatsApp did not answer the media upload in time; will retry.")
    except httpx.TransportError as exc:
        log.warning("whatsapp media upload transport error: %r", exc)
        return Retriable("Could not reach WhatsApp to upload the file; will retry.")
    if response.status_code >= 500 or response.status_code == 429:
        return Retriable(f"WhatsApp could not take the file now: {_graph_message(response)}")
    if not response.is_success:
        return Permanent(f"WhatsApp refused the file: {_graph_message(response)}")
    try:
        media_id = orjson.loads(response.content).get("id")
    except (orjson.JSONDecodeError, AttributeError):
        media_id = None
    if not isinstance(media_id, str) or not media_id:
        return Permanent("WhatsApp accepted the file but returned no media id.")
    return media_id
