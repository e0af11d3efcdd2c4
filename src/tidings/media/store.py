"""Where media bytes live: a small interface, and the local-disk store used by default.

Keys are made by `new_key` (workspace, month, random id) and never from anything a customer or
provider supplied, so they cannot name a path outside the store. An S3-compatible store only has
to implement `MediaStore` (put a stream with a size cap, read it back as a stream, delete).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tidings.config import Settings
from tidings.storage.files import open_private, private_dir
from tidings.storage.types import utcnow

CHUNK = 64 * 1024
_KEY = re.compile(r"^[0-9]{1,20}/[0-9]{6}/[0-9a-f]{32}$")


class TooLarge(Exception):
    """The stream went past the size cap; nothing was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Stored:
    key: str
    size: int
    sha256: str


class MediaStore(Protocol):
    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> Stored:
        """Store a stream under `key`. Raises TooLarge (keeping nothing) past `max_bytes`."""
        ...

    def open(self, key: str) -> AsyncIterator[bytes]:
        """The stored bytes, in chunks. Raises KeyError when there is no such object."""
        ...

    async def get(self, key: str) -> bytes:
        """All the bytes at once (for provider uploads); KeyError when missing."""
        ...

    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool: ...


def new_key(workspace_id: int) -> str:
    """A fresh, unguessable key: `<workspace>/<yyyymm>/<32 hex>`."""
    return f"{workspace_id}/{utcnow():%Y%m}/{secrets.token_hex(16)}"


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


class LocalDiskStore:
    """Files under one directory. Writes go to a temporary file renamed into place, so a
    reader never sees half a file and a crash leaves no partial object under its key."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise KeyError(key)
        return self.root / key

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> Stored:
        path = self._path(key)
        await asyncio.to_thread(private_dir, path.parent)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        digest = hashlib.sha256()
        size = 0
        handle = await asyncio.to_thread(lambda: os.fdopen(open_private(tmp), "wb"))
        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise TooLarge(max_bytes)
                digest.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(os.replace, tmp, path)
        except BaseException:
            handle.close()
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
            raise
        return Stored(key, size, digest.hexdigest())

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise KeyError(key) from None
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            handle.close()

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise KeyError(key) from None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        try:
            path = self._path(key)
        except KeyError:
            return False
        return await asyncio.to_thread(path.is_file)


def media_dir(settings: Settings) -> Path:
    """TIDINGS_MEDIA_DIR, else `media/` inside the data directory."""
    raw = os.environ.get("TIDINGS_MEDIA_DIR", "").strip()
    return Path(raw).resolve() if raw else settings.data_dir / "media"


def make_store(settings: Settings) -> MediaStore:
    return LocalDiskStore(media_dir(settings))
