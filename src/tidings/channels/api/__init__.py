"""The generic API channel: any system posts signed messages in and receives agent replies on
its webhook (HMAC-SHA256 both ways, `tidings.signing`)."""

from tidings.channels.api.adapter import ApiChannelAdapter, ApiChannelConfig

__all__ = ["ApiChannelAdapter", "ApiChannelConfig"]
