"""The WhatsApp simulator's media store
(docs/channels/whatsapp.md#media-limits-and-downloads): ids that live 30 days, URLs valid 5 minutes,
downloads that need the bearer token, 404 otherwise.

- `POST /{version}/{phone-number-id}/media` (multipart `messaging_product=whatsapp`, `file`,
  `type`) -> `{"id": ...}`, checked against the documented types and sizes (131053 otherwise);
- `GET /{version}/{media-id}` -> `{"messaging_product", "url", "mime_type", "sha256",
  "file_size", "id"}`, the URL valid for 5 minutes;
- `GET <url>` with `Authorization: Bearer <token>` -> the bytes; without the token, with
  another account's token, or after the 5 minutes -> 404 (Meta's download failure);
- `DELETE /{version}/{media-id}` -> `{"success": true}`.

Customer media (what a webhook's media id points at) is registered by the simulator itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_MB = 1024 * 1024
_DOCUMENTS = (
    "text/plain",
    "application/pdf",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
)
# Supported types and maximum sizes for sending
# (docs/channels/whatsapp.md#media-limits-and-downloads). Stickers: 100 KB static, 500 KB animated;
# the animated bound is used.
UPLOAD_LIMITS: dict[str, int] = {
    "audio/aac": 16 * _MB,
    "audio/amr": 16 * _MB,
    "audio/mpeg": 16 * _MB,
    "audio/mp4": 16 * _MB,
    "audio/ogg": 16 * _MB,
    "image/jpeg": 5 * _MB,
    "image/png": 5 * _MB,
    "image/webp": 500 * 1024,
    "video/mp4": 16 * _MB,
    "video/3gpp": 16 * _MB,
    **dict.fromkeys(_DOCUMENTS, 100 * _MB),
}
# Customer media over 100 MB arrive as error 131052 (docs/channels/whatsapp.md#inbound-payloads).
INBOUND_MAX = 100 * _MB
URL_TTL_SECONDS = 300.0
ID_TTL_SECONDS = 30 * 24 * 3600.0

# Small but real-looking file heads, so a stored file has the right magic bytes.
_SAMPLES = {
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    "image/png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "audio/ogg": b"OggS\x00\x02" + b"\x00" * 20,
    "audio/mpeg": b"ID3\x03\x00\x00\x00\x00\x00\x00",
    "video/mp4": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    "application/pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
}


def sample_bytes(mime: str, size: int | None = None) -> bytes:
    head = _SAMPLES.get(mime.split(";")[0].strip(), b"sim-media\n")
    size = max(size if size is not None else 512, len(head))
    return head + b"\x00" * (size - len(head))


@dataclass
class SimMedia:
    id: str
    phone_number_id: str
    mime_type: str
    data: bytes
    sha256: str
    created_at: float
    filename: str | None = None
    origin: str = "upload"  # upload (the business) | customer (a webhook's media)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phone_number_id": self.phone_number_id,
            "mime_type": self.mime_type,
            "file_size": len(self.data),
            "sha256": self.sha256,
            "filename": self.filename,
            "origin": self.origin,
        }


class MediaStore:
    """Media ids -> files, with signed, expiring download URLs."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.items: dict[str, SimMedia] = {}
        self._clock = clock
        self._key = secrets.token_bytes(32)

    def add(
        self,
        phone_number_id: str,
        mime_type: str,
        data: bytes,
        *,
        filename: str | None = None,
        origin: str = "upload",
    ) -> SimMedia:
        media_id = str(secrets.randbelow(9 * 10**15) + 10**15)
        item = SimMedia(
            id=media_id,
            phone_number_id=phone_number_id,
            mime_type=mime_type,
            data=data,
            # Base64 of the SHA-256, as webhooks carry it
            # (docs/channels/whatsapp.md#inbound-payloads: "sha256":"4654+8g=").
            sha256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
            created_at=self._clock(),
            filename=filename,
            origin=origin,
        )
        self.items[media_id] = item
        return item

    def get(self, media_id: str) -> SimMedia | None:
        item = self.items.get(media_id)
        if item is None or self._clock() - item.created_at > ID_TTL_SECONDS:
            return None
        return item

    def _sign(self, media_id: str, expires: int) -> str:
        return hmac.new(self._key, f"{media_id}.{expires}".encode(), hashlib.sha256).hexdigest()[
            :32
        ]

    def url(self, base_url: str, media_id: str) -> str:
        expires = int(self._clock() + URL_TTL_SECONDS)
        sig = self._sign(media_id, expires)
        return f"{base_url}/whatsapp_business/attachments/?mid={media_id}&ext={expires}&hash={sig}"

    def check_url(self, media_id: str, ext: str, sig: str) -> SimMedia | None:
        if not ext.isdigit() or not hmac.compare_digest(self._sign(media_id, int(ext)), sig):
            return None
        if self._clock() > int(ext):
            return None
        return self.get(media_id)
