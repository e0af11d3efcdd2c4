"""Which channels can send a file an agent uploaded to Tidings, asked before a reply is queued."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from tidings.runtime import ChannelInfo


@runtime_checkable
class FileSender(Protocol):
    """An adapter that sends files stored by Tidings (`OutboundAttachment.load`)."""

    def file_refusal(self, config: Any, *, kind: str | None, with_text: bool) -> str | None:
        """Why a stored file of `kind` (image/audio/video/document; None: any) — with the
        reply's text as its caption, if `with_text` — cannot go on this channel, or None."""
        ...


def refusal(channel: ChannelInfo, *, kind: str | None = None, with_text: bool) -> str | None:
    adapter: Any = channel.adapter
    if not isinstance(adapter, FileSender):
        return f"{channel.adapter.label} cannot send files uploaded to Tidings yet."
    return adapter.file_refusal(channel.config, kind=kind, with_text=with_text)
