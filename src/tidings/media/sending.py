"""Which channels can send a file an agent uploaded to Tidings, asked before a reply is queued."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from tidings.runtime import ChannelInfo


@runtime_checkable
class FileSender(Protocol):
    """An adapter that sends files stored by Tidings (`OutboundAttachment.load`)."""

    def file_refusal(self, config: Any, *, with_text: bool) -> str | None:
        """Why a stored file (with the reply's text as caption, if `with_text`) cannot go on
        this channel, or None when it can."""
        ...


def refusal(channel: ChannelInfo, *, with_text: bool) -> str | None:
    adapter: Any = channel.adapter
    if not isinstance(adapter, FileSender):
        return f"{channel.adapter.label} cannot send files uploaded to Tidings yet."
    return adapter.file_refusal(channel.config, with_text=with_text)
