"""Which files a channel takes, and how a stored file may be shown to an agent's browser.

Limits come from each adapter's `Capabilities.media_types` (MIME type or `type/` prefix ->
largest size in bytes, from the provider docs), so nothing here branches on the channel kind.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from tidings.channels.base import Capabilities
from tidings.channels.media import OFFICE_TYPES

# Attachment states (the `attachment.state` column); NULL on rows from before media storage.
PENDING = "pending"  # inbound: waiting for the media worker to download it
STORED = "stored"  # the bytes are in the media store
TOO_LARGE = "too_large"
NOT_ALLOWED = "not_allowed"
FAILED = "failed"  # the download failed for good (expired URL, provider error...)

# Shown inline in the thread: types browsers render without running anything. Everything else
# (SVG, HTML, PDF, Office files...) is only ever offered as a download.
PREVIEW_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "audio/aac",
        "audio/mpeg",
        "audio/mp4",
        "audio/ogg",
        "audio/wav",
        "audio/x-m4a",
        "audio/amr",
        "video/mp4",
        "video/3gpp",
        "video/webm",
        "video/ogg",
        "video/quicktime",
    }
)
# Served with their own type but as attachment (downloads): harmless outside a page context.
DOWNLOAD_TYPES = frozenset({"application/pdf", "text/plain", *OFFICE_TYPES})
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")

# What a provider attachment kind becomes when a file is sent (image/audio/video/document).
_KIND_OF_PREFIX = {"image/": "image", "audio/": "audio", "video/": "video"}


def normalise_mime(raw: str | None) -> str | None:
    """`audio/ogg; codecs=opus` -> `audio/ogg`; anything malformed -> None."""
    if not raw:
        return None
    base = raw.split(";", 1)[0].strip().lower()
    return base if _MIME.match(base) else None


def kind_for_mime(mime: str) -> str:
    for prefix, kind in _KIND_OF_PREFIX.items():
        if mime.startswith(prefix):
            return kind
    return "document"


def max_bytes(media_types: Mapping[str, int], mime: str) -> int | None:
    """The size limit for `mime` on a channel, or None when the channel does not take it.
    An exact entry wins over a `type/` prefix entry."""
    if mime in media_types:
        return media_types[mime]
    for key, limit in media_types.items():
        if key.endswith("/") and mime.startswith(key):
            return limit
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    state: str  # STORED (acceptable) | TOO_LARGE | NOT_ALLOWED
    reason: str | None = None


def judge(caps: Capabilities, label: str, mime: str | None, size: int | None) -> Verdict:
    """Whether a file of this type and size may travel on the channel (either way)."""
    if not caps.media_types:
        return Verdict(NOT_ALLOWED, f"{label} does not carry files.")
    if mime is None:
        return Verdict(NOT_ALLOWED, "The file type is unknown.")
    limit = max_bytes(caps.media_types, mime)
    if limit is None:
        return Verdict(NOT_ALLOWED, f"{label} does not allow {mime} files.")
    if size is not None and size > limit:
        return Verdict(
            TOO_LARGE,
            f"The file is {human_size(size)}; {label} allows {human_size(limit)} for {mime}.",
        )
    return Verdict(STORED)


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def safe_filename(name: str | None, fallback: str = "attachment") -> str:
    """A file name fit for a Content-Disposition header and a disk: no directories, control
    characters, quotes or leading dots; at most 150 characters."""
    if not name:
        return fallback
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(
        ch for ch in name if unicodedata.category(ch)[0] != "C" and ch not in '"<>:|?*;'
    )
    cleaned = cleaned.strip().lstrip(".").strip()
    return cleaned[:150] or fallback


def content_disposition(disposition: str, filename: str) -> str:
    """RFC 6266: an ASCII fallback plus the UTF-8 `filename*`."""
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_")
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def serving(mime: str | None) -> tuple[str, str]:
    """(Content-Type, disposition) for serving a stored file to a browser."""
    if mime in PREVIEW_TYPES:
        return mime, "inline"
    if mime in DOWNLOAD_TYPES:
        return mime, "attachment"
    return "application/octet-stream", "attachment"


# Attachment kinds that are files (downloaded and stored); shares of posts, reels, story
# mentions and the like are links and stay links.
FILE_KINDS = frozenset({"image", "audio", "video", "document", "file", "sticker"})
