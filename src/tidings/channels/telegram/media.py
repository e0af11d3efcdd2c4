"""Telegram files both ways over the Bot API.

Inbound: a message carries a `file_id`; `getFile` answers a File with a `file_path`, and the
bytes are at `{api_base_url}/file/bot<token>/<file_path>` ("bots can download files of up to
20MB in size"; the link is "valid for at least 1 hour", so a new one is asked for on every
attempt). Outbound: a file stored by Tidings goes up as `multipart/form-data` in the send call
itself ("10 MB max size for photos, 50 MB for other files"), with the method that fits its type
(`client.method_for`). These limits are from the Bot API reference (getFile, "Sending files"),
summed up in docs/channels/telegram.md#files.
"""

from __future__ import annotations

import httpx

from tidings.channels.media import OFFICE_TYPES, MediaLocation, MediaUnavailable
from tidings.channels.telegram.client import AUDIO_TYPES, PHOTO_TYPES, call
from tidings.channels.telegram.config import TelegramConfig

_MB = 1024 * 1024
DOWNLOAD_LIMIT = 20 * _MB
PHOTO_UPLOAD_LIMIT = 10 * _MB
UPLOAD_LIMIT = 50 * _MB

_DOCUMENT_TYPES = ("text/plain", "text/csv", "application/pdf", "application/zip", *OFFICE_TYPES)

# What Tidings carries on Telegram, with the upload limits. Downloads stop at 20 MB whatever
# the type (checked on getFile's `file_size` in `locate`).
MEDIA_TYPES: dict[str, int] = {
    **dict.fromkeys(PHOTO_TYPES, PHOTO_UPLOAD_LIMIT),
    "image/gif": UPLOAD_LIMIT,  # sent as a document (sendPhoto would flatten the animation)
    "audio/ogg": UPLOAD_LIMIT,  # voice notes
    "audio/aac": UPLOAD_LIMIT,
    **dict.fromkeys(AUDIO_TYPES, UPLOAD_LIMIT),
    "video/mp4": UPLOAD_LIMIT,
    "video/quicktime": UPLOAD_LIMIT,
    "video/webm": UPLOAD_LIMIT,
    **dict.fromkeys(_DOCUMENT_TYPES, UPLOAD_LIMIT),
}


def _megabytes(size: int) -> str:
    return f"{size / _MB:.1f} MB"


async def locate(
    config: TelegramConfig, file_id: str | None, http: httpx.AsyncClient
) -> MediaLocation:
    if not file_id or not file_id.isascii() or not file_id.isprintable() or " " in file_id:
        raise MediaUnavailable("The Telegram message carries no file id.")
    try:
        status, doc = await call(config, "getFile", {"file_id": file_id}, http)
    except httpx.TimeoutException:
        raise MediaUnavailable("Telegram did not answer in time.", retriable=True) from None
    except httpx.HTTPError:
        raise MediaUnavailable("Could not reach Telegram.", retriable=True) from None
    data = doc if isinstance(doc, dict) else {}
    if status == 429 or status >= 500:
        raise MediaUnavailable(f"Telegram answered {status}; will retry.", retriable=True)
    if status != 200 or data.get("ok") is not True:
        description = str(data.get("description") or f"HTTP {status}")
        if "too big" in description.lower():
            raise MediaUnavailable(
                "Telegram lets bots download files of up to 20 MB; this one is larger."
            )
        raise MediaUnavailable(f"Telegram refused the download: {description}")
    result = data.get("result")
    file_path = result.get("file_path") if isinstance(result, dict) else None
    if not isinstance(file_path, str) or not file_path or ".." in file_path.split("/"):
        raise MediaUnavailable("Telegram gave no file path for this file.")
    assert isinstance(result, dict)
    size = result.get("file_size")
    size_int = size if isinstance(size, int) and not isinstance(size, bool) else None
    if size_int is not None and size_int > DOWNLOAD_LIMIT:
        raise MediaUnavailable(
            f"The file is {_megabytes(size_int)}; Telegram lets bots download files of up to 20 MB."
        )
    return MediaLocation(
        url=f"{config.api_base_url}/file/bot{config.bot_token}/{file_path}",
        size=size_int,
        provider_endpoint=True,
    )
